"""ASGI server spans: ``TelemetryASGIMiddleware`` for any ASGI application, and the request
handling the Starlette/FastAPI integration reuses.

Only ``http`` scopes are instrumented; ``lifespan`` passes through untouched, and a
``websocket`` session gets no span of ours but runs in the context its handshake carries
(the trace its ``traceparent`` names, else none), never in the serving task's: under
``telemetryflow-run python app.py`` that holds the process span, which would otherwise
gather every session's work for the life of the server.
One server span per request: a request an outer layer already instruments, or that FastAPI's
native telemetry traces, passes through; one we instrument tells FastAPI to stand down
(``scope["fastapi.telemetry"] = None``, FastAPI's own opt-out).
Per request: one SERVER span named ``{method} {http.route}`` (``{method}`` when no route is
known), continuing the incoming ``traceparent`` (global propagator), with the attributes
``http.request.method`` (+ ``_original``), ``url.scheme``, ``url.path``, ``url.query``
(signature-like values redacted), ``server.address``, ``server.port`` (``Host`` header, else
the ASGI ``server``), ``network.protocol.version``, ``user_agent.original``,
``client.address`` (first ``X-Forwarded-For`` entry, else the ASGI ``client``),
``http.response.status_code``, ``http.route``, ``error.type`` and captured headers when
configured; and one ``http.server.request.duration`` point (seconds; method, scheme, route,
status code, error.type).

The span ends after the last ``http.response.body`` (``more_body`` false; after the
trailers or a ``pathsend`` when those are used) has been handed to the server, so work the
application does after its response (Starlette's background tasks: see
``instrumentation.starlette``) is not the response's; a 5xx waits for the application to
return (an error handler re-raises the exception after its 500 page) or for its first
background task to start. The span also ends when the application raises (recorded as the
error it is, also after a 2xx start: a body cut short by an exception is a failed response;
re-raised unchanged) or returns without finishing its response (no response at all: ERROR
``incomplete_response``). A client that goes away is not the server's error: a response
under way is ended as is, with its status and no ``error.type``, whether the application
returns early, its task is cancelled, or the server's ``send`` fails (ASGI 2.4) and the
failure escapes (every SSE stream ends this way, so the semantic conventions' "not sent
fully" error would make each one a failure); gone before any response (Starlette's
``ClientDisconnect`` while reading the body), the request failed with that ``error.type``
but no status code: the 500 an error handler then sends reaches nobody. A task cancelled
before any response failed too (ERROR, ``error.type`` ``CancelledError``, no status code):
uvicorn cancels a request only when it stops (past ``--timeout-graceful-shutdown``, or on a
second Ctrl-C) and then answers 500 itself, past the application, unseen; an in-process
client (httpx's ``ASGITransport``) that stops waiting cancels the handler it runs; a
``CancelledError`` the application makes itself is its error. uvicorn never cancels a handler
whose client has gone: the handler runs on and uvicorn drops its response unseen. That
response was never sent: when uvicorn's request cycle (the ``receive`` it passes) already
knows the client left as the response starts, the request failed with ``error.type``
``ClientDisconnect`` and no status code, as for a client gone mid-upload (one value for that
condition whoever noticed it; an exception the application then raises still names itself).
A server speaking ASGI 2.4 says so instead by failing ``send`` with an OSError: when that
happens before any of the response went out (its start, or its first body message, before
which the spec lets nothing out), it is the same unsent response, recorded the same way
(``ClientDisconnect``, no status code, no exception event), whether the OSError escapes or
the application catches it and returns; a 5xx page that fails so, sent by an error handler
for an exception of the application's (Starlette's), leaves that exception as the error, as
under uvicorn. Only the very OSError the server's ``send`` raised counts: one the
application raises itself (a file it cannot read) names itself.
Any other ``error.type`` of an exception is its fully-qualified class name
(``instrumentation._error_type``). Environment variables (read once, at construction):
``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``.

A request the sampler drops whatever its attributes skips the span attributes and
``start_span`` and keeps its duration point, as in ``instrumentation.wsgi``.
"""

from __future__ import annotations

import contextlib
from asyncio import CancelledError
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from opentelemetry import context as _otel_context
from opentelemetry.trace import get_current_span as _get_current_span

from .. import _diagnostics
from ..middleware import _GETTER, REQUEST_KEY, SKIPPED, TelemetryMiddleware, _ServerRequest
from ._error_type import CLIENT_DISCONNECT
from ._http_common import suppressed
from .wsgi import UnsampledRequest, unsampled_request, url_excluded

__all__ = ["TelemetryASGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RouteOf = Callable[[Scope], "str | None"]

_attach = _otel_context.attach
_detach = _otel_context.detach
_EMPTY_CONTEXT = _otel_context.Context()
# Marks a websocket scope whose context a layer of ours has set (see ASGIServer.websocket).
_WEBSOCKET_KEY = "telemetryflow.websocket"
_HOST, _USER_AGENT, _FORWARDED_FOR = b"host", b"user-agent", b"x-forwarded-for"
_ALWAYS_WANTED = frozenset({_HOST, _USER_AGENT, _FORWARDED_FOR})
# FastAPI (0.16x) makes server spans of its own once global providers exist, and skips that
# for a request whose scope has this key; a value that is not None is FastAPI's own
# per-request state: FastAPI traces that request, so we stay out.
FASTAPI_TELEMETRY = "fastapi.telemetry"
# propagation header names → every header name a request is scanned for (one entry per
# propagator configuration the process ever had: one or two)
_wanted: dict[frozenset[bytes], frozenset[bytes]] = {}


class TelemetryASGIMiddleware:
    """Wrap any ASGI application: ``app = TelemetryASGIMiddleware(app)``.

    ``client``: a ``TelemetryFlowClient`` (default: the one running in this process, else
    the global OpenTelemetry providers). Safe to combine with automatic instrumentation:
    whichever layer sees the request first makes its one server span.
    """

    def __init__(self, app: ASGIApp, client: Any = None) -> None:
        self.app = app
        self._server = ASGIServer(TelemetryMiddleware(client))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                return await self._server.websocket(self.app, scope, receive, send)
            return await self.app(scope, receive, send)
        return await self._server.call(self.app, scope, receive, send)


class ASGIServer:
    """Runs one ASGI ``http`` call inside a server span; ``route_of(scope)`` (a framework's
    route lookup) is asked when the request finishes, after routing."""

    __slots__ = ("_core", "_route_of")

    def __init__(self, core: TelemetryMiddleware, route_of: RouteOf | None = None) -> None:
        self._core = core
        self._route_of = route_of

    async def call(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        outer = scope.get(REQUEST_KEY)
        if outer is not None:  # an outer middleware has the span: at most tell it the route
            if outer is SKIPPED or self._route_of is None or outer.route is not None:
                return await app(scope, receive, send)
            return await app(scope, receive, _telling_route(outer, self._route_of, scope, send))
        if scope.get(FASTAPI_TELEMETRY) is not None or suppressed():
            return await app(scope, receive, send)  # (FastAPI's own telemetry has it)
        scope[FASTAPI_TELEMETRY] = None
        try:
            request = _open(self._core, scope, shortcut=True)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "asgi-open", f"ASGI request served uninstrumented ({type(exc).__name__}: {exc})")
            request = None
        if request is None:
            scope[REQUEST_KEY] = SKIPPED
            return await app(scope, receive, send)
        scope[REQUEST_KEY] = request
        core, route_of = self._core, self._route_of
        # (captured headers go to the span: an unsampled one keeps none)
        captures = core.captures_response_headers and type(request) is not UnsampledRequest

        def finish(error: BaseException | None = None, incomplete: bool = False,
                   error_type: str | None = None) -> None:
            if route_of is not None and request.route is None:
                with contextlib.suppress(Exception):  # a framework we misread: no route
                    request.route = route_of(scope)
            if dropped:  # nothing was sent; an exception of the app's own still names it
                request.status_code = None
                if error is None:
                    error_type = CLIENT_DISCONNECT
            request.finish(error, incomplete, error_type)

        async def _send(message: Message) -> None:
            nonlocal trailers, under_way, gone, dropped, send_failure, failed_status
            kind = message["type"]
            if kind == "http.response.start":
                try:
                    request.status_code = int(message["status"])
                    # uvicorn drops what is sent to a client that has left, and tells no
                    # one; its ``receive`` is a method of the request cycle that knows
                    # (``disconnected``; other servers': no such flag). ``finish`` then says
                    # the request failed and clears the status, kept till then so that a
                    # 5xx still waits for the application's exception. (Inline: per request.)
                    dropped = getattr(getattr(receive, "__self__", None), "disconnected",
                                      False) is True
                    if not dropped:
                        trailers = bool(message.get("trailers"))
                        if captures:
                            core.capture_response_headers(
                                request, _decoded(message.get("headers") or ()))
                except Exception:
                    pass
                try:
                    await send(message)
                except OSError as failure:  # the client has gone (ASGI 2.4): none was sent
                    send_failure, failed_status = failure, request.status_code
                    request.status_code = None
                    dropped = True
                    raise
                return
            try:
                await send(message)
            except OSError as failure:  # the server says the client has gone (ASGI 2.4)
                if under_way:  # part of the response went out: ended as is
                    gone = True
                else:  # none went out (the spec: nothing is sent before a body message)
                    send_failure, failed_status = failure, request.status_code
                    request.status_code = None
                    dropped = True
                raise
            if kind == "http.response.body":
                if trailers or message.get("more_body", False):
                    under_way = True
                    return
            elif not ((kind == "http.response.trailers" and not message.get("more_trailers"))
                      or kind == "http.response.pathsend"):
                under_way = True
                return
            status_code = request.status_code
            if status_code is None or status_code < 500:
                finish()
            else:
                # Error handlers (Starlette's ServerErrorMiddleware) send the 500 page and
                # then re-raise: end when the application returns, to record the exception,
                # or when a background task starts (``finish_before_background``), whose
                # time and exceptions are not the response's.
                _awaiting_return[request.span] = finish

        trailers = under_way = gone = dropped = False
        send_failure: OSError | None = None  # what the server's send raised, nothing sent
        failed_status: int | None = None  # the status that response would have had
        token = _attach(request.context)
        try:
            await app(scope, receive, _send)
        except BaseException as error:
            if _awaiting_return:
                _awaiting_return.pop(request.span, None)
            if not request.done:
                status_code = request.status_code
                if status_code is not None and (gone or isinstance(error, CancelledError)):
                    # A response under way, then the client gone (the server's send failed)
                    # or the task cancelled (the server stopping): ended as is, as when the
                    # app returns early. The client going away ends every SSE stream.
                    finish()
                elif error is send_failure:
                    # The server's send failed before anything went out: the client had
                    # gone (ASGI 2.4), what uvicorn records as a dropped response
                    # (ClientDisconnect, see finish). A 5xx page an error handler sent for
                    # the application's exception (Starlette's ServerErrorMiddleware, which
                    # re-raises it once sent, as under uvicorn) is that exception's failure.
                    answered = error.__context__
                    if failed_status is not None and failed_status >= 500 and \
                            isinstance(answered, Exception):
                        finish(answered)
                    else:
                        finish()
                elif _client_disconnect(error):
                    # The client went away before the response: a failed request, but the
                    # 500 an error handler then sent reached nobody (and never was the
                    # server's); a response already under way is ended as is.
                    if status_code is None or status_code >= 500:
                        request.status_code = None
                        finish(error, error_type=CLIENT_DISCONNECT)
                    else:
                        finish()
                else:
                    finish(error)
            raise
        finally:
            _detach(token)
        if not request.done:
            if _awaiting_return:
                _awaiting_return.pop(request.span, None)
            finish(incomplete=True)

    async def websocket(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send
                        ) -> None:
        """Run one ``websocket`` session (no span of ours) in the context its handshake
        carries (``traceparent``, ``baggage``; an empty one without them), as an HTTP
        request's span is: never in the context of the task serving the connection. That
        task carries the process span when ``telemetryflow-run python app.py`` runs
        ``uvicorn.run``: every session's work (and FastAPI's own websocket span) would join
        that one trace for the whole life of the server."""
        if _WEBSOCKET_KEY in scope or suppressed():
            return await app(scope, receive, send)
        scope[_WEBSOCKET_KEY] = True
        try:
            context = _handshake_context(self._core, scope)
        except Exception:  # a propagator that fails: the session as it would have been
            return await app(scope, receive, send)
        token = _attach(context)
        try:
            await app(scope, receive, send)
        finally:
            _detach(token)


# Server spans whose 5xx response has gone out, left open until the application returns
# (see ASGIServer.call): span -> its request's finish. Empty but for such a response.
_awaiting_return: dict[Any, Callable[[], None]] = {}


def finish_before_background() -> None:
    """End the current request's server span if it waits for its application to return
    after a 5xx response: a background task starts (Starlette runs them after the
    response, in the request's context), and neither its time nor its exception is the
    response's. Nothing to do, at the cost of one test, for any other request."""
    if _awaiting_return:
        finish = _awaiting_return.pop(_get_current_span(), None)
        if finish is not None:
            finish()


def _client_disconnect(error: BaseException) -> bool:
    """Starlette's ``ClientDisconnect``: the client went away while the request was read
    (``Request.body()`` got ``http.disconnect``), or while a response was streamed."""
    kind = type(error)
    return kind.__name__ == "ClientDisconnect" and kind.__module__.startswith("starlette.")


def _handshake_context(core: TelemetryMiddleware, scope: Scope) -> Any:
    core.refresh_propagator()
    fields = core.header_names
    carrier: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        if not fields or name in fields:
            carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    if not carrier:
        return _EMPTY_CONTEXT
    return core._propagator.extract(carrier, context=_EMPTY_CONTEXT, getter=_GETTER)


def _telling_route(outer: _ServerRequest, route_of: RouteOf, scope: Scope, send: Send) -> Send:
    async def _send(message: Message) -> None:
        if message["type"] == "http.response.start" and outer.route is None:
            with contextlib.suppress(Exception):  # a framework we misread: no route
                outer.route = route_of(scope)
        await send(message)

    return _send


def _open(core: TelemetryMiddleware, scope: Scope, shortcut: bool = False
          ) -> _ServerRequest | None:
    """Open the request ``scope`` describes; with ``shortcut`` a request the sampler drops
    skips everything only a recorded span would keep (as ``wsgi.open_environ``: the core's
    ``SamplerShortcut``, taken once ``refresh_propagator`` has bound a late core)."""
    core.refresh_propagator()
    fields = core.header_names
    wanted = _wanted.get(fields)
    if wanted is None:
        wanted = _wanted[fields] = _ALWAYS_WANTED | fields
    found: dict[bytes, bytes] = {}
    raw_headers = scope.get("headers") or ()
    for name, value in raw_headers:
        if name in wanted and name not in found:
            found[name] = value
    carrier: dict[str, str] | None = None
    if fields:
        for name in fields:
            value = found.get(name)
            if value is not None:
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
    else:  # a propagator that does not declare its fields: offer every header
        carrier = dict(_decoded(raw_headers))
    host = found.get(_HOST)
    trace_id = None
    sampler_shortcut = core._shortcut if shortcut else None
    verdict = None if sampler_shortcut is None else sampler_shortcut.decide(
        carrier, core._propagator, _GETTER)
    if verdict is not None:
        if verdict.sampled:
            trace_id = verdict.trace_id
        else:
            scheme = scope.get("scheme", "http")
            if core._excluding:
                server = scope.get("server")
                query = scope.get("query_string")
                if url_excluded(core, scheme, host.decode("latin-1") if host else (
                        server[0] if server else ""), scope.get("path") or "/",
                        query.decode("latin-1") if query else ""):
                    return None
            return unsampled_request(core, sampler_shortcut, verdict, scope.get("method", "GET"),
                                     scheme)
    user_agent = found.get(_USER_AGENT)
    forwarded = found.get(_FORWARDED_FOR)
    if forwarded:
        client: str | None = forwarded.decode("latin-1").split(",", 1)[0].strip()
    else:
        peer = scope.get("client")
        client = peer[0] if peer else None
    server = scope.get("server")
    protocol = scope.get("http_version")
    query = scope.get("query_string")
    return core.open(
        scope.get("method", "GET"), scope.get("scheme", "http"), scope.get("path") or "/",
        query.decode("latin-1") if query else "",
        host.decode("latin-1") if host else None,
        (server[0], server[1]) if server and not host else None,
        user_agent.decode("latin-1") if user_agent else None, client, protocol, carrier,
        _decoded(raw_headers) if core.captures_request_headers else None, trace_id)


def _decoded(headers: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[str, str]]:
    for name, value in headers:
        yield name.decode("latin-1"), value.decode("latin-1")
