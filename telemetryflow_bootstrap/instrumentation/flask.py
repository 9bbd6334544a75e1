"""Flask: every application gets a SERVER span per request, without code changes; or add
``FlaskTelemetryMiddleware(app)`` by hand.

The patch replaces ``Flask.wsgi_app`` on the class, so every application (also one created
before the patch, and whatever server runs it: ``flask run``, gunicorn, uWSGI, the test
client) goes through the WSGI request handling of ``instrumentation.wsgi``: same spans,
attributes and ``http.server.request.duration`` metric as documented there, with
``http.route`` taken from the matched URL rule (``request.url_rule.rule``, prefixed with the
``SCRIPT_NAME`` the application is mounted at) and the span named ``{method} {http.route}``.

Exceptions Flask turns into a 500 page are recorded on the span (exception event,
``error.type``, status ERROR) through the public ``got_request_exception`` signal; ones that
propagate (``PROPAGATE_EXCEPTIONS``, testing) are recorded too and propagate unchanged.

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=flask`` turns it off.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..middleware import REQUEST_KEY, TelemetryMiddleware, _ServerRequest
from .wsgi import TelemetryWSGIMiddleware, WSGIServer

__all__ = ["FlaskTelemetryMiddleware"]

_ORIGINAL = "_telemetryflow_original"
_signal_lock = threading.Lock()
_signal_connected = False

try:  # Flask >= 2.2 keeps the request context in a ContextVar: the cheapest way to it
    from flask.globals import _cv_request

    def _request() -> Any:
        ctx = _cv_request.get(None)
        return ctx.request if ctx is not None else None
except ImportError:  # pragma: no cover - older Flask
    import flask as _flask

    def _request() -> Any:
        return _flask.request._get_current_object() if _flask.has_request_context() else None


def patch(module: Any, context: Any) -> None:
    """Route every ``Flask.wsgi_app`` call through one server span (once per process)."""
    flask_class = module.Flask
    original = flask_class.wsgi_app
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already
    server = WSGIServer(TelemetryMiddleware(context), _route_of)

    @functools.wraps(original)
    def wsgi_app(self: Any, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return server.call(original.__get__(self), environ, start_response)

    setattr(wsgi_app, _ORIGINAL, original)
    flask_class.wsgi_app = wsgi_app
    _connect_exception_signal(module)


class FlaskTelemetryMiddleware(TelemetryWSGIMiddleware):
    """Server spans for one Flask application, added by hand::

        app = Flask(__name__)
        FlaskTelemetryMiddleware(app)          # wraps app.wsgi_app in place

    (``app.wsgi_app = FlaskTelemetryMiddleware(app.wsgi_app)`` works too.) Combined with
    ``telemetryflow-run`` it still makes one span per request.
    """

    def __init__(self, app: Any, client: Any = None) -> None:
        import flask

        if isinstance(app, flask.Flask):
            inner = app.wsgi_app
            app.wsgi_app = self
        else:
            inner = app
        self.app = inner
        self._server = WSGIServer(TelemetryMiddleware(client), _route_of)
        _connect_exception_signal(flask)


def _route_of(environ: dict[str, Any]) -> str | None:
    request = _request()
    if request is None:
        return None
    rule = request.url_rule
    if rule is None:
        return None  # no route matched (404, 405)
    return request.environ.get("SCRIPT_NAME", "") + rule.rule


def _on_exception(sender: Any, exception: BaseException | None = None, **_: Any) -> None:
    """``got_request_exception``: remember what Flask is about to turn into a 500."""
    try:
        request = _request()
        server_request = request.environ.get(REQUEST_KEY) if request is not None else None
        if isinstance(server_request, _ServerRequest) and exception is not None:
            server_request.error = exception
            if server_request.route is None:
                server_request.route = _route_of(request.environ)
    except Exception:  # never disturb Flask's own error handling
        pass


def _connect_exception_signal(flask_module: Any) -> None:
    global _signal_connected
    with _signal_lock:
        if _signal_connected:
            return
        flask_module.got_request_exception.connect(_on_exception, weak=False)
        _signal_connected = True
