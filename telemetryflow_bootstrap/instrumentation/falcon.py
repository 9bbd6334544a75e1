"""Falcon (3.1+): every application, WSGI (``falcon.App``) or ASGI (``falcon.asgi.App``),
gets a SERVER span per request, without code changes, whatever serves it (gunicorn,
uvicorn, waitress, hypercorn, werkzeug's ``run_simple``, ``falcon.testing``).

The patch wraps ``App.__call__`` on both classes, so every application (also one created
before the patch) goes through the request handling of ``instrumentation.wsgi`` /
``instrumentation.asgi``: same spans, attributes and ``http.server.request.duration``
metric as documented there. The responder, middleware and error handlers run with the
span current. ``http.route`` is the URI template of the resource the router matched
(``req.uri_template``, e.g. ``/items/{item_id}``), prefixed with ``SCRIPT_NAME`` under WSGI
(Falcon routes ``PATH_INFO``; Flask's and Django's routes carry the mount point the same
way); under ASGI Falcon routes the scope's whole ``path``, so the template is the route as
it stands. The span is named ``{method} {http.route}``; a request no route matched (404, a
sink, a static route) is named ``{method}`` alone.

Errors: an exception Falcon turns into a response (``HTTPError``, ``HTTPStatus``, or any
other through its default ``Exception`` handler, which answers 500) keeps the status that
response has; with a 5xx it is the request's error (status ERROR, ``error.type`` its
fully-qualified class name, ``falcon.errors.HTTPServiceUnavailable``, ``ValueError``, an
exception event); with a 4xx it is the client's, not recorded. One that escapes Falcon (an
error handler re-raising) is recorded as it passes and propagates unchanged.

How: ``App._get_responder`` (the router lookup, once per request) tells the request's
server span the template it found, and ``App._handle_exception`` the exception it is about
to answer; both find that request in the WSGI environ / ASGI scope (``REQUEST_KEY``), so a
Falcon app inside another instrumented layer (a WSGI middleware of the user's that a server
patch wrapped) still gives that layer's one span its route and error.

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=falcon`` turns it off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from .. import _diagnostics
from ..middleware import REQUEST_KEY, TelemetryMiddleware, _ServerRequest
from .asgi import ASGIServer
from .wsgi import WSGIServer

_ORIGINAL = "_telemetryflow_original"


def patch(module: Any, context: Any) -> None:
    """The ``falcon`` entry (``module``: ``falcon.app``): the WSGI ``App`` now, the ASGI one
    when ``falcon.asgi.app`` is imported (now, if it already is)."""
    from ._import_hooks import when_imported

    app_class = module.App
    if getattr(vars(app_class).get("__call__"), _ORIGINAL, None) is not None:
        return  # patched already (the ASGI hook is registered already too)
    core = TelemetryMiddleware(context)
    # (one unwrapped _get_responder for both variants: the ASGI class inherits it)
    get_responder = app_class._get_responder
    _wrap(app_class, "_get_responder", get_responder, _routing(get_responder, _wsgi_route))
    original = app_class._handle_exception
    _wrap(app_class, "_handle_exception", original, _noting_wsgi(original))
    original = app_class.__call__  # (last: its mark says the class is done)
    _wrap(app_class, "__call__", original, _wsgi_call(original, WSGIServer(core)))

    def patch_asgi(asgi_module: Any) -> None:
        try:
            _patch_asgi(asgi_module.App, get_responder, ASGIServer(core))
        except Exception as exc:  # a post-import hook that raises fails the import
            _diagnostics.warn(f"could not instrument falcon (its ASGI App: "
                              f"{type(exc).__name__}: {exc}); it runs uninstrumented")

    when_imported("falcon.asgi.app", patch_asgi)


def _patch_asgi(app_class: Any, get_responder: Callable[..., Any], server: ASGIServer
                ) -> None:
    if getattr(vars(app_class).get("__call__"), _ORIGINAL, None) is not None:
        return
    _wrap(app_class, "_get_responder", get_responder, _routing(get_responder, _asgi_route))
    original = app_class._handle_exception
    _wrap(app_class, "_handle_exception", original, _noting_asgi(original))
    original = app_class.__call__
    _wrap(app_class, "__call__", original, _asgi_call(original, server))


def _wrap(owner: type, name: str, original: Callable[..., Any],
          wrapper: Callable[..., Any]) -> None:
    setattr(wrapper, _ORIGINAL, original)
    setattr(owner, name, wrapper)


def _wsgi_call(original: Callable[..., Any], server: WSGIServer) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, env: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return server.call(original.__get__(self), env, start_response)

    return __call__


def _asgi_call(original: Callable[..., Any], server: ASGIServer) -> Callable[..., Any]:
    @functools.wraps(original)
    async def __call__(self: Any, scope: MutableMapping[str, Any], receive: Any,
                       send: Any) -> None:
        kind = scope.get("type")
        if kind == "http":
            return await server.call(original.__get__(self), scope, receive, send)
        if kind == "websocket":
            return await server.websocket(original.__get__(self), scope, receive, send)
        return await original(self, scope, receive, send)  # type: ignore[no-any-return]

    return __call__


# ----- the route and the answered exception, told to the request's server span -----------


def _wsgi_route(req: Any, template: str) -> None:
    env = req.env
    request = env.get(REQUEST_KEY)
    if isinstance(request, _ServerRequest) and request.route is None:
        script = env.get("SCRIPT_NAME")
        request.route = script + template if script else template


def _asgi_route(req: Any, template: str) -> None:
    request = req.scope.get(REQUEST_KEY)
    if isinstance(request, _ServerRequest) and request.route is None:
        request.route = template


def _routing(original: Callable[..., Any], tell: Callable[[Any, str], None]
             ) -> Callable[..., Any]:
    """``_get_responder``, telling the request's span the template the router matched."""

    @functools.wraps(original)
    def _get_responder(self: Any, req: Any) -> Any:
        found = original(self, req)
        try:
            template = found[3]
            if template:
                tell(req, template)
        except Exception:  # a router we misread: no route
            pass
        return found

    return _get_responder


def _note(mapping: Any, error: Any) -> None:
    """The exception Falcon is about to answer: the request's error if the answer is a
    5xx (``TelemetryMiddleware``'s rule); the latest one counts, it made the response."""
    try:
        request = mapping.get(REQUEST_KEY)
        if isinstance(request, _ServerRequest) and isinstance(error, BaseException):
            request.error = error
    except Exception:
        pass


def _noting_wsgi(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def _handle_exception(self: Any, req: Any, resp: Any, ex: Any, *args: Any,
                          **kwargs: Any) -> Any:
        _note(getattr(req, "env", None) or {}, ex)
        return original(self, req, resp, ex, *args, **kwargs)

    return _handle_exception


def _noting_asgi(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def _handle_exception(self: Any, req: Any, resp: Any, ex: Any, *args: Any,
                                **kwargs: Any) -> Any:
        _note(getattr(req, "scope", None) or {}, ex)
        return await original(self, req, resp, ex, *args, **kwargs)

    return _handle_exception
