"""``aiohttp`` server: every ``aiohttp.web.Application`` (and the low-level ``web.Server``)
served by aiohttp's own server (``web.run_app``, ``AppRunner``/``TCPSite``, the test server,
gunicorn's aiohttp worker) gets a SERVER span per HTTP request, without code changes.

Produces
    one SERVER span per request, named ``{method} {http.route}`` (``{method}`` when no route
    matched, a 404 or 405 of aiohttp's router), continuing the incoming ``traceparent``
    (global propagator), and one ``http.server.request.duration`` point (seconds;
    ``http.request.method``, ``url.scheme``, ``http.route``, ``http.response.status_code``,
    ``error.type``). ``http.route`` is the canonical path of the resource the router
    matched (``/items/{id}``; a sub-application's prefix included; a static directory's
    prefix).
Attributes
    the ones ``instrumentation.asgi`` records: ``http.request.method`` (+ ``_original``),
    ``url.scheme``, ``url.path``, ``url.query`` (signature-like values redacted),
    ``server.address``, ``server.port`` (``Host`` header), ``network.protocol.version``,
    ``user_agent.original``, ``client.address`` (first ``X-Forwarded-For`` entry, else the
    peer), ``http.response.status_code``, ``http.route``, ``error.type``, captured headers
    when configured.
When it ends
    After aiohttp has sent the response (prepared it and written its end): a streamed
    ``StreamResponse`` the handler writes itself is inside the span. The handler, its
    middlewares and whatever they call run with the span current, so an HTTP call made
    there is its child.
Errors
    An ``HTTPException`` raised as the answer (``raise web.HTTPNotFound()``) gives its
    status code; a 4xx is not the server's error, a 5xx is (``error.type`` the exception's
    fully-qualified class name). Any other exception, which aiohttp answers with a 500 (a
    504 for ``TimeoutError``), is recorded (exception event, status ERROR, ``error.type``
    its fully-qualified class name, a built-in's bare). One raised after a streamed
    response had started (aiohttp then drops the connection) is recorded too, without a
    status code. A client that goes away while the response is sent is not an error.
Not traced
    A request aiohttp could not parse (answered 400 by aiohttp itself); a WebSocket
    session (``Upgrade: websocket``) gets no span of ours, which would last as long as the
    session, but its handler runs in the trace its handshake names (none without one),
    never in the serving task's.
Cost
    A request the sampler drops (sample rate 0, an unsampled ``traceparent``) builds no
    span attributes and starts no span (``_http_common.SamplerShortcut``): it keeps its
    duration point, and a non-recording span carrying the trace to what it calls.
How
    ``web_protocol.RequestHandler._handle_request`` (one call per request, in a task of its
    own, from reading the handler's answer to the end of sending it) is wrapped, and
    ``RequestHandler.handle_error`` (which turns a handler's exception into the 500 page)
    tells the request in flight which exception it answers.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

from .. import _diagnostics
from ..infrastructure.current_context import attach, reset
from ..middleware import _GETTER, TelemetryMiddleware, _ServerRequest
from ._http_common import EMPTY_CONTEXT, suppressed
from .http_client import argument
from .wsgi import UnsampledRequest, unsampled_request, url_excluded

# The request whose handler runs in this task (set by the ``_handle_request`` wrapper for
# ``handle_error``; each request is handled in a task of its own).
_SERVING: ContextVar[_ServerRequest | None] = ContextVar("telemetryflow_aiohttp_serving",
                                                         default=None)
_VERSIONS = {(1, 1): "1.1", (1, 0): "1.0", (2, 0): "2", (0, 9): "0.9"}
_WEBSOCKET = "websocket"


def patch(module: Any, context: Any) -> None:
    """Wrap ``RequestHandler._handle_request`` and ``handle_error`` (``module``:
    ``aiohttp.web_protocol``)."""
    from ._method_wrappers import wrap_once

    core = TelemetryMiddleware(context)
    handler_class = module.RequestHandler
    unparsable = getattr(module, "ERROR", None)  # the message of a request aiohttp rejected

    async def handle_request(wrapped: Any, instance: Any, args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
        # _handle_request(request, start_time, request_handler) -> (response, reset)
        if len(args) != 3 or kwargs or suppressed():
            return await wrapped(*args, **kwargs)
        request = args[0]
        try:
            message = request._message
            if message is unparsable:
                return await wrapped(*args, **kwargs)
            if message.upgrade and request.headers.get("Upgrade", "").lower() == _WEBSOCKET:
                served: Any = _handshake_context(core, request)
            else:
                served = _open(core, request)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "aiohttp-open", f"aiohttp request served uninstrumented ({type(exc).__name__}: "
                f"{exc})")
            served = None
        if served is None:
            return await wrapped(*args, **kwargs)
        if not isinstance(served, _ServerRequest):  # a WebSocket session: its context only
            token = attach(served)
            try:
                return await wrapped(*args, **kwargs)
            finally:
                reset(token)
        token = attach(served.context)
        serving = _SERVING.set(served)
        try:
            outcome = await wrapped(*args, **kwargs)
        except BaseException as error:
            with contextlib.suppress(Exception):  # an aiohttp we misread: no route
                served.route = _route_of(request)
            served.status_code = None  # (nothing went out whole)
            served.finish(served.error or error)
            raise
        finally:
            _SERVING.reset(serving)
            reset(token)
        try:
            _answered(core, served, request, outcome)
        except Exception as exc:  # pragma: no cover - defensive: the response is sent
            _diagnostics.warn_every_minute(
                "aiohttp-finish", f"aiohttp request ended without its details "
                f"({type(exc).__name__}: {exc})")
        served.finish()
        return outcome

    def handle_error(wrapped: Any, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        # handle_error(request, status=500, exc=None, message=None)
        served = _SERVING.get()
        if served is not None and served.error is None:
            error = argument(args, kwargs, 2, "exc")
            if isinstance(error, BaseException):
                served.error = error
        return wrapped(*args, **kwargs)

    wrap_once(handler_class, "_handle_request", handle_request)
    wrap_once(handler_class, "handle_error", handle_error)


def _answered(core: TelemetryMiddleware, served: _ServerRequest, request: Any,
              outcome: Any) -> None:
    """What the response sent says: its status, the route, an ``HTTPException`` that was
    the answer (raised by the handler: a 5xx one is the server's error)."""
    served.route = _route_of(request)
    response = outcome[0]
    status = getattr(response, "status", None)
    if type(status) is int:
        served.status_code = status
    if isinstance(response, BaseException) and served.error is None:
        served.error = response
    if core.captures_response_headers and type(served) is not UnsampledRequest:
        headers = getattr(response, "headers", None)
        if headers is not None:
            core.capture_response_headers(served, headers.items())


def _route_of(request: Any) -> str | None:
    match_info = getattr(request, "_match_info", None)
    if match_info is None:
        return None
    resource = match_info.route.resource  # (None: aiohttp's own 404/405 answer)
    return None if resource is None else resource.canonical


def _open(core: TelemetryMiddleware, request: Any) -> _ServerRequest | None:
    """Open the request's span (``None``: an excluded URL); a request the sampler drops
    gets the cheap ``UnsampledRequest``, as in ``instrumentation.asgi``."""
    core.refresh_propagator()
    headers = request.headers
    carrier: dict[str, str] | None = None
    keys = core.environ_keys
    if keys:
        for _, field in keys:
            value = headers.get(field)
            if value is not None:
                if carrier is None:
                    carrier = {}
                carrier[field] = value
    else:  # a propagator that does not declare its fields: offer every header
        carrier = {name.lower(): value for name, value in headers.items()}
    method = request.method
    scheme = request.scheme
    host = headers.get("Host")
    trace_id = None
    verdict = core._shortcut.decide(carrier, core._propagator, _GETTER)
    if verdict is not None:
        if not verdict.sampled:
            if core._excluding and url_excluded(core, scheme, host or "", request.path,
                                                request.raw_path.partition("?")[2]):
                return None
            return unsampled_request(core, core._shortcut, verdict, method, scheme)
        trace_id = verdict.trace_id
    forwarded = headers.get("X-Forwarded-For")
    client = forwarded.split(",", 1)[0].strip() if forwarded else request.remote
    version = request.version
    return core.open(
        method, scheme, request.path, request.raw_path.partition("?")[2], host, None,
        headers.get("User-Agent"), client, _VERSIONS.get(version) if version else None,
        carrier, headers.items() if core.captures_request_headers else None, trace_id)


def _handshake_context(core: TelemetryMiddleware, request: Any) -> Any:
    """The context a WebSocket session runs in: its handshake's trace, else none."""
    core.refresh_propagator()
    headers = request.headers
    carrier = {field: headers[field] for _, field in core.environ_keys if field in headers}
    if not carrier:
        return EMPTY_CONTEXT
    return core._propagator.extract(carrier, context=EMPTY_CONTEXT, getter=_GETTER)
