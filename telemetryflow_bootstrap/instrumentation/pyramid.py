"""Pyramid (2.0+): every application (the ``pyramid.router.Router`` that
``config.make_wsgi_app()`` returns) gets a SERVER span per request, without code changes,
whatever serves it (gunicorn, waitress, ``pserve``, werkzeug's ``run_simple``, WebTest).

The patch wraps ``Router.__call__`` on the class, so every application (also one made
before the patch) goes through the request handling of ``instrumentation.wsgi``: same
spans, attributes and ``http.server.request.duration`` metric as documented there; views,
tweens and exception views run with the span current. ``http.route`` is the pattern of the
route the request matched (``request.matched_route.pattern``, e.g. ``/items/{id}``; with a
leading ``/`` when the pattern was added without one, as Pyramid matches it, and prefixed
with ``SCRIPT_NAME`` as Flask's and Django's routes are); the span is named
``{method} {http.route}``. A request that matched no route (a 404; an application that
finds its views by traversal alone) is named ``{method}`` alone.

Errors: an exception an exception view answers (``HTTPException`` subclasses through
Pyramid's default one, anything else through the application's) keeps the status that
response has; with a 5xx it is the request's error (status ERROR, ``error.type`` its
fully-qualified class name, ``pyramid.httpexceptions.HTTPServiceUnavailable``,
``ValueError``, an exception event), with a 4xx (``HTTPNotFound`` raised by a view) it is
the client's, not recorded. One no exception view answers escapes to the server: recorded
as it passes, propagated unchanged.

How: ``Router.invoke_request`` (once per request) tells the request's server span the
matched route once the response is made (or the request failed), and
``Request.invoke_exception_view`` (only when an exception is being answered) the exception;
both find that span in the environ (``REQUEST_KEY``), so a Pyramid app inside another
instrumented layer (a WSGI middleware of the user's that a server patch wrapped) still
gives that layer's one span its route and error.

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=pyramid`` turns it off.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

from ..middleware import REQUEST_KEY, TelemetryMiddleware, _ServerRequest
from .wsgi import WSGIServer

_ORIGINAL = "_telemetryflow_original"


def patch(module: Any, context: Any) -> None:
    """The ``pyramid`` entry (``module``: ``pyramid.router``)."""
    router_class = module.Router
    if getattr(vars(router_class).get("__call__"), _ORIGINAL, None) is not None:
        return  # patched already
    # (pyramid.router imports pyramid.view: it is there, half-way through the hook or not)
    view = sys.modules.get("pyramid.view") or importlib.import_module("pyramid.view")
    mixin = view.ViewMethodsMixin
    original = mixin.invoke_exception_view
    _wrap(mixin, "invoke_exception_view", original, _noting(original))
    original = router_class.invoke_request
    _wrap(router_class, "invoke_request", original, _routing(original))
    original = router_class.__call__  # (last: its mark says the class is done)
    server = WSGIServer(TelemetryMiddleware(context))

    @functools.wraps(original)
    def __call__(self: Any, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return server.call(original.__get__(self), environ, start_response)

    _wrap(router_class, "__call__", original, __call__)


def _wrap(owner: type, name: str, original: Callable[..., Any],
          wrapper: Callable[..., Any]) -> None:
    setattr(wrapper, _ORIGINAL, original)
    setattr(owner, name, wrapper)


def _routing(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def invoke_request(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, request, *args, **kwargs)
        finally:
            _tell_route(request)

    return invoke_request


def _tell_route(request: Any) -> None:
    try:
        route = request.__dict__.get("matched_route")
        if route is None:
            return  # no route matched: a 404, or traversal
        environ = request.environ
        server_request = environ.get(REQUEST_KEY)
        if isinstance(server_request, _ServerRequest) and server_request.route is None:
            pattern = route.pattern
            if not pattern.startswith("/"):
                pattern = "/" + pattern
            server_request.route = environ.get("SCRIPT_NAME", "") + pattern
    except Exception:  # a router we misread: no route
        pass


def _noting(original: Callable[..., Any]) -> Callable[..., Any]:
    """``invoke_exception_view``: remember the exception about to be answered; it is the
    request's error if the answer is a 5xx (``TelemetryMiddleware``'s rule)."""

    @functools.wraps(original)
    def invoke_exception_view(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            exc_info = args[0] if args else kwargs.get("exc_info")
            request = args[1] if len(args) > 1 else kwargs.get("request")
            error = (exc_info or sys.exc_info())[1]
            server_request = (request if request is not None else self).environ.get(
                REQUEST_KEY)
            if isinstance(server_request, _ServerRequest) and isinstance(error, BaseException):
                server_request.error = error
        except Exception:  # arguments we do not understand: the call as it was
            pass
        return original(self, *args, **kwargs)

    return invoke_exception_view
