"""``aiohttp`` client: one CLIENT span per request a ``ClientSession`` sends (``session.get()``
awaited or used as ``async with``, ``session.request()``, ``ws_connect()``'s handshake):
each redirect hop, each retry on a stale keep-alive connection and each request a client
middleware sends again (``DigestAuthMiddleware`` answering a 401) is a span of its own.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds), per request sent. The requests after the
    first one of a ``session.request()`` carry ``http.request.resend_count`` = 1, 2, ..., as
    the HTTP semantic conventions ask for every resend. A span starts when the request asks
    the connector for a connection (so the time to connect, and a refused connection, are
    part of it) and ends when the response headers have arrived, as for every other HTTP
    client here: reading the body (``await resp.text()``, ``resp.content`` streamed) is not
    part of it, so the duration metric means the same thing whatever library recorded it.
    A request that fails ends with the exception ``session.request()`` raised, as the caller
    sees it (``aiohttp.client_exceptions.ClientConnectorError``,
    ``aiohttp.client_exceptions.ConnectionTimeoutError``); one that fails and is sent again
    (a retry aiohttp or a middleware makes) ends with the exception that attempt raised.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED; the query as
    sent, ``params=`` included), ``server.address`` (an internationalised name in its
    ASCII form, as on the wire), ``server.port``, ``network.protocol.version``,
    ``http.response.status_code``, ``error.type`` (status code for 4xx/5xx, else the
    exception's fully-qualified class name; status ERROR then, and an exception event),
    ``http.request.resend_count``, captured ``http.request.header.*``/
    ``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``network.protocol.version``, ``error.type`` — never
    the URL.
Headers
    ``traceparent`` (and whatever the global propagator writes) goes into the
    ``ClientRequest``'s own header multidict, which aiohttp builds for each request from
    the session's and the caller's headers: the caller's mapping is never changed. A
    ``Traceparent`` the caller set in any letter case is replaced (the multidict is
    case-insensitive), never sent twice.
How
    ``ClientSession._request`` (what every session method awaits) marks the call in
    flight (a context variable of ours); ``BaseConnector.connect``, which aiohttp calls once
    per request it sends, starts that request's span and injects the headers; and
    ``ClientResponse.start`` (the headers read) ends it. Outside a session call (a connector
    used by hand) nothing is traced. Under instrumentation suppression (our exporter) the
    session call runs unwrapped.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from typing import Any

from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import ClientCall, ClientTelemetry, argument, finish


class _Flight:
    """One ``session.request()`` in progress: the request of it whose response is awaited
    (``call``), how many were sent so far, and the exception its last attempt raised, kept
    until we know whether aiohttp gives up (then the caller's exception names it) or sends
    again."""

    __slots__ = ("call", "error", "sent")

    def __init__(self) -> None:
        self.call: ClientCall | None = None
        self.sent = 0
        self.error: BaseException | None = None

    def close(self, exception: BaseException | None = None) -> None:
        call = self.call
        if call is not None:
            self.call = None
            call.end(exception=exception or self.error)
        self.error = None


_FLIGHT: ContextVar[_Flight | None] = ContextVar("telemetryflow_aiohttp_flight", default=None)


def patch(module: Any, context: Any) -> None:
    """Wrap ``ClientSession._request``, ``BaseConnector.connect`` and
    ``ClientResponse.start`` (``module``: the ``aiohttp`` package)."""
    client = sys.modules.get("aiohttp.client") or module.client
    session_class = client.ClientSession
    connector_class = client.BaseConnector
    response_class = client.ClientResponse
    telemetry = ClientTelemetry(context, "aiohttp")

    async def request(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        # (None under suppression: a session call inside a traced one's middleware, made
        # while instrumentation is suppressed, must not be counted as the outer call's)
        flight = None if http_suppressed() else _Flight()
        token = _FLIGHT.set(flight)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if flight is not None:
                flight.close(exc)
            raise
        finally:
            try:
                _FLIGHT.reset(token)
            except ValueError:  # resumed in another context than it began in: not ours
                _FLIGHT.set(None)
        if flight is not None and flight.call is not None:  # (a response never started)
            flight.close()
        return response

    async def connect(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        flight = _FLIGHT.get()
        if flight is None:
            return await wrapped(*args, **kwargs)
        if flight.call is not None:  # the previous attempt failed and is sent again
            flight.close()
        _begin(telemetry, flight, argument(args, kwargs, 0, "req"))
        try:
            return await wrapped(*args, **kwargs)
        except BaseException as exc:
            flight.error = exc
            raise

    async def start(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        flight = _FLIGHT.get()
        call = None if flight is None else flight.call
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            flight.error = exc  # type: ignore[union-attr]
            raise
        flight.call = None  # type: ignore[union-attr]
        finish(call, _outcome, instance)
        return response

    wrap_once(session_class, "_request", request)
    wrap_once(connector_class, "connect", connect)
    wrap_once(response_class, "start", start)


def _begin(telemetry: ClientTelemetry, flight: _Flight, req: Any) -> None:
    """Start the span of the request ``req`` and put the trace headers in its own header
    multidict. Never raises: if our code fails, the request goes out untraced."""
    resend_count = flight.sent
    flight.sent = resend_count + 1
    call = None
    try:
        url = req.url
        call = telemetry.begin(req.method, str(url), url.scheme, url.raw_host, url.port,
                               req.headers, resend_count)
        if call is not None:
            call.inject(req.headers)
            flight.call = call
    except Exception as exc:
        if call is not None:
            call.end()
        flight.call = None
        telemetry.warn(exc)


def _outcome(response: Any) -> tuple[Any, Any, Any]:
    version = response.version  # HttpVersion(major, minor)
    return (response.status, None if version is None else f"{version[0]}.{version[1]}",
            response.headers)
