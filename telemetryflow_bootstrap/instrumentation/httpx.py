"""``httpx``: one CLIENT span per ``Client.send()`` / ``AsyncClient.send()`` (so
``httpx.get()``, ``client.get()``, ``client.stream()`` and hand-built requests alike, whatever
the transport).

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds). Redirects and auth round trips inside
    ``send()`` are part of the one span. With ``stream=True``
    (``client.stream()``) the span ends when the response headers have arrived; reading the
    body afterwards is not part of it.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``,
    ``server.port``, ``network.protocol.version``, ``http.response.status_code``,
    ``error.type`` (status code for 4xx/5xx, else the exception class; status ERROR then, and
    an exception event), captured ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``error.type`` — never the URL.
Headers
    ``request.headers`` is replaced by a copy carrying the trace headers, so a ``Headers``
    object the caller holds is never changed (``httpx.Request`` cannot be copied cheaply:
    its stream does not survive ``copy.copy``); ``response.request.headers`` shows what was
    sent.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

from typing import Any

from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import (
    Adapter,
    ClientCall,
    ClientTelemetry,
    argument,
    call_traced,
    call_traced_async,
)


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "httpx")
    adapter = _HttpxAdapter()

    def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return call_traced(telemetry, adapter, wrapped, instance, args, kwargs)

    async def send_async(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        return await call_traced_async(telemetry, adapter, wrapped, instance, args, kwargs)

    wrap_once(module.Client, "send", send, stand_aside=http_suppressed)
    wrap_once(module.AsyncClient, "send", send_async, stand_aside=http_suppressed)


class _HttpxAdapter(Adapter):
    """``send(request, *, stream=False, auth=..., follow_redirects=...)``."""

    __slots__ = ()

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        request = argument(args, kwargs, 0, "request")
        url = request.url
        return telemetry.begin(request.method, str(url), url.scheme, url.host, url.port,
                               request.headers)

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        request = argument(args, kwargs, 0, "request")
        sent = request.headers.copy()
        call.inject(sent)
        request.headers = sent
        return args, kwargs

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        version = response.http_version  # "HTTP/1.1", "HTTP/2"
        return (response.status_code, version[5:] if version.startswith("HTTP/") else None,
                response.headers)
