"""Starlette and FastAPI: every application gets a SERVER span per HTTP request, without code
changes; or add ``FastAPITelemetryMiddleware`` by hand.

Two registry entries: ``starlette`` wraps ``Starlette.__call__`` and ``fastapi`` wraps
``FastAPI.__call__``, on the class, so every
application (also one built before the patch, under uvicorn, hypercorn, gunicorn's uvicorn
worker or the TestClient) goes through the ASGI request handling of
``instrumentation.asgi``: same spans, attributes and ``http.server.request.duration`` metric
as documented there. ``http.route`` is the template of the route the router matched
(``scope["route"].path``), prefixed with the application root (``root_path``: ``uvicorn
--root-path``, ``FastAPI(root_path=...)``, as Flask and Django prefix ``SCRIPT_NAME``) and
the path of the ``Mount`` it sits under; requests no route matched are named ``{method}``
only.

Background tasks (``BackgroundTasks.add_task``, ``Response(background=...)``) run after the
response has gone out, once the server span has ended (its duration, and the duration
point's, are the response's): each runs in an INTERNAL span ``BackgroundTask {function}``
(``code.function.name``: the function's qualified name), a child of the request's server
span that parents the task's own work and records its exception (ERROR, ``error.type``,
an exception event; re-raised unchanged, as Starlette then stops the remaining tasks).

FastAPI (0.16x) has native request telemetry that switches itself on as soon as global
OpenTelemetry providers exist, which the launcher installs: left alone it would make a
second server span and metric for every request. Its ``__call__`` makes that decision before
any middleware runs, so ours runs there and marks the request (``scope["fastapi.telemetry"]
= None``, FastAPI's own opt-out) so FastAPI's native telemetry stands down. An application
the user gave its own providers (``FastAPI(telemetry={"tracer_provider": ...})``) keeps
FastAPI's telemetry and gets none of ours. Disabling the ``fastapi`` entry hands FastAPI
apps back to FastAPI's native telemetry (still one server span: ours steps aside for a
request FastAPI already traces).

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=starlette,fastapi`` turns
both off.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from typing import Any

from opentelemetry.context import attach, detach
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from starlette.routing import Mount

from .. import _diagnostics
from ..middleware import REQUEST_KEY, TelemetryMiddleware
from ._error_type import error_type
from ._http_common import suppressed
from .asgi import (
    FASTAPI_TELEMETRY,
    ASGIApp,
    ASGIServer,
    Receive,
    Scope,
    Send,
    TelemetryASGIMiddleware,
    finish_before_background,
)

__all__ = ["FastAPITelemetryMiddleware"]

_ORIGINAL = "_telemetryflow_original"
_ERROR_TYPE, _CODE_FUNCTION_NAME = "error.type", "code.function.name"
_servers_lock = threading.Lock()
_servers: list[tuple[Any, ASGIServer]] = []


def patch(module: Any, context: Any) -> None:
    """Wrap ``Starlette.__call__`` (the ``starlette`` registry entry)."""
    # Inside the post-import hook the package attribute ``starlette.applications`` is not
    # set yet: take the module from sys.modules.
    applications = sys.modules.get("starlette.applications") \
        or importlib.import_module("starlette.applications")
    _patch_starlette(applications.Starlette, _server_for(context))
    _patch_background(context)


def patch_fastapi(module: Any, context: Any) -> None:
    """Wrap ``FastAPI.__call__`` (the ``fastapi`` registry entry, triggered by the
    ``fastapi`` package: when ``starlette.applications`` is imported on fastapi's behalf,
    ``fastapi.applications`` is still half-initialised)."""
    applications = sys.modules.get("fastapi.applications") \
        or importlib.import_module("fastapi.applications")
    _patch_fastapi(applications.FastAPI, _server_for(context))
    _patch_background(context)  # (FastAPI's BackgroundTasks are Starlette's)
    _no_second_exporters()


def _server_for(context: Any) -> ASGIServer:
    # One core per patch context, shared by the Starlette and FastAPI patches.
    with _servers_lock:
        for known, server in _servers:
            if known is context:
                return server
        server = ASGIServer(TelemetryMiddleware(context), _route_of)
        _servers.append((context, server))
        return server


class FastAPITelemetryMiddleware(TelemetryASGIMiddleware):
    """Server spans for one FastAPI (or Starlette) application, added by hand::

        app = FastAPI()
        app.add_middleware(FastAPITelemetryMiddleware)
        # or, outermost: app = FastAPITelemetryMiddleware(FastAPI())

    Wrapped around the application it also switches FastAPI's native request telemetry off
    for the requests it instruments. Added inside a FastAPI app whose native telemetry is
    already on (global providers configured), it stays out of the way: that request has its
    server span. Combined with ``telemetryflow-run`` it still makes one span per request.
    """

    def __init__(self, app: ASGIApp, client: Any = None) -> None:
        self.app = app
        self._server = ASGIServer(TelemetryMiddleware(client), _route_of)


def _patch_starlette(cls: Any, server: ASGIServer) -> None:
    original = cls.__call__
    if getattr(original, _ORIGINAL, None) is not None:
        return

    @functools.wraps(original)
    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                return await server.websocket(original.__get__(self), scope, receive, send)
            return await original(self, scope, receive, send)
        return await server.call(original.__get__(self), scope, receive, send)

    setattr(__call__, _ORIGINAL, original)
    cls.__call__ = __call__


def _patch_fastapi(cls: Any, server: ASGIServer) -> None:
    original = cls.__call__
    if getattr(original, _ORIGINAL, None) is not None:
        return

    @functools.wraps(original)
    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (REQUEST_KEY not in scope
                                       and FASTAPI_TELEMETRY not in scope
                                       and _has_own_telemetry(self)):
            if scope["type"] == "websocket":  # (FastAPI's native span, if on, runs inside)
                return await server.websocket(original.__get__(self), scope, receive, send)
            return await original(self, scope, receive, send)
        # Runs before FastAPI decides about its native telemetry, which server.call turns
        # off for the requests it instruments.
        return await server.call(original.__get__(self), scope, receive, send)

    setattr(__call__, _ORIGINAL, original)
    cls.__call__ = __call__


def _patch_background(context: Any) -> None:
    """Run each ``BackgroundTask`` (one given to a response, or each of FastAPI's
    ``BackgroundTasks``) in an INTERNAL span of its own. Starlette runs them after the
    response has gone out, in the request's context: the server span has ended by then (its
    duration is the response's), so an exception of theirs was on no span at all, and their
    work (queries, calls) hung off a span that had ended long before."""
    background = sys.modules.get("starlette.background") \
        or importlib.import_module("starlette.background")
    cls = background.BackgroundTask
    original = cls.__call__
    if getattr(original, _ORIGINAL, None) is not None:
        return
    tracer = context.tracer

    @functools.wraps(original)
    async def __call__(self: Any) -> None:
        finish_before_background()
        if suppressed():
            return await original(self)  # type: ignore[no-any-return]
        try:
            span = tracer.start_span(*_task_span(getattr(self, "func", None)))
        except Exception:  # a tracer that fails: the task as it would have run
            return await original(self)  # type: ignore[no-any-return]
        token = attach(set_span_in_context(span))
        try:
            await original(self)
        except BaseException as error:
            span.set_attribute(_ERROR_TYPE, error_type(error))
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            detach(token)
            span.end()

    setattr(__call__, _ORIGINAL, original)
    cls.__call__ = __call__


def _task_span(func: Any) -> tuple[str, None, SpanKind, dict[str, str]]:
    """``start_span`` arguments for a background task running ``func``: named
    ``BackgroundTask {function}``, ``code.function.name`` its qualified name."""
    while isinstance(func, functools.partial):
        func = func.func
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if not isinstance(name, str):
        name = type(func).__qualname__  # (a callable object)
    module = getattr(func, "__module__", None)
    qualified = f"{module}.{name}" if isinstance(module, str) and module else name
    return f"BackgroundTask {name}", None, SpanKind.INTERNAL, {_CODE_FUNCTION_NAME: qualified}


# What FastAPI's automatic export configures per signal: (switch, explicit provider) keys.
_FASTAPI_SIGNALS = (("tracing", "tracer_provider"), ("metrics", "meter_provider"),
                    ("logs", "logger_provider"))


def _no_second_exporters() -> None:
    """FastAPI's automatic export (``FASTAPI_OTEL_AUTO_CONFIGURE=true``, or
    ``telemetry={"auto_configure": True}``) adds OTLP exporters of its own, at lifespan
    start-up, to the global providers: ours, which export already. Every span, metric
    point and log record went out twice. It now adds them only to providers the user gave
    the application (``FastAPI(telemetry={"tracer_provider": ...})``), and says once that
    it did not for ours. FastAPI laid out otherwise is left as it is."""
    try:
        runtime = importlib.import_module("fastapi.telemetry._runtime")
    except ImportError:
        return
    original = getattr(runtime, "_configure_from_environment", None)
    if not callable(original) or getattr(original, _ORIGINAL, None) is not None:
        return

    @functools.wraps(original)
    def _configure_from_environment(config: Any) -> None:
        if not isinstance(config, dict) or not config.get("auto_configure"):
            return original(config)  # type: ignore[no-any-return]
        own = {switch: bool(config.get(switch)) and config.get(provider) is not None
               for switch, provider in _FASTAPI_SIGNALS}
        if not all(own.values()) and _said_once("fastapi-auto-configure"):
            _diagnostics.warn("FASTAPI_OTEL_AUTO_CONFIGURE: FastAPI's own OTLP exporters are "
                              "not added to telemetryflow-run's providers, which export this "
                              "application's telemetry already (everything would go twice)")
        if any(own.values()):
            return original({**config, **own})  # type: ignore[no-any-return]
        return None

    setattr(_configure_from_environment, _ORIGINAL, original)
    runtime._configure_from_environment = _configure_from_environment


_said: set[str] = set()


def _said_once(key: str) -> bool:
    """True the first time ``key`` is asked for (one warning per process)."""
    if key in _said:
        return False
    _said.add(key)
    return True


def _has_own_telemetry(app: Any) -> bool:
    """The user wired FastAPI's native telemetry to providers of their own."""
    config = getattr(app, "_telemetry", None)
    return isinstance(config, dict) and (config.get("tracer_provider") is not None
                                         or config.get("meter_provider") is not None)


def _route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return None
    # root_path is the application root (``uvicorn --root-path``, ``FastAPI(root_path=)``,
    # as SCRIPT_NAME is for WSGI) followed by the path of every Mount that matched (each
    # rewrites it): the route's template is relative to it. The semantic conventions: the
    # route SHOULD include the application root, as the Flask and Django routes do.
    prefix = scope.get("root_path") or ""
    if prefix.endswith("/"):
        prefix = prefix.rstrip("/")
    if isinstance(route, Mount):
        return prefix + "/{path}"  # the Mount itself is the route: static files, a sub-app
    return prefix + path or "/"
