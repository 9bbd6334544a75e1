"""``urllib3`` (1.x and 2.x): one CLIENT span per ``HTTPConnectionPool.urlopen()``, which
``PoolManager``, ``ProxyManager``, ``urllib3.request()`` and ``HTTPSConnectionPool`` all go
through.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds). Retries and same-host redirects urllib3
    makes inside one ``urlopen()`` are part of the one span; a ``PoolManager`` redirect or
    retry is a further ``urlopen()`` and a further span, with ``http.request.resend_count``
    = the number of requests sent before it (the length of the ``Retry`` history it is
    handed). With ``preload_content=False`` the span ends when the response headers have
    arrived.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``,
    ``server.port``, ``network.protocol.version``, ``http.response.status_code``,
    ``error.type`` (status code for 4xx/5xx, else the exception class; status ERROR then, and
    an exception event), ``http.request.resend_count``, captured
    ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``error.type`` — never the URL.
Layering
    Under a ``requests`` span this layer stands aside; its own span makes http.client (urllib3
    1.x sends through ``HTTPConnection.request``) stand aside.
Headers
    The trace headers go into a copy of the ``headers`` argument (or of the pool's default
    headers), keeping its type (``HTTPHeaderDict`` stays multi-valued).
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import (
    Adapter,
    ClientCall,
    ClientTelemetry,
    argument,
    call_traced,
    copy_headers,
    origin,
    replace_argument,
)

# urlopen(self, method, url, body=None, headers=None, retries=None, ...): the same in 1.x
# and 2.x.
_HEADERS_INDEX = 3
_RETRIES_INDEX = 4


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "urllib3")
    adapter = _Urllib3Adapter()

    def urlopen(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        return call_traced(telemetry, adapter, wrapped, instance, args, kwargs)

    wrap_once(module.HTTPConnectionPool, "urlopen", urlopen, stand_aside=http_suppressed)


class _Urllib3Adapter(Adapter):
    __slots__ = ()

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        method = argument(args, kwargs, 0, "method")
        url = argument(args, kwargs, 1, "url")
        if url.startswith(("http://", "https://")):  # absolute form, sent to a proxy
            parts = urlsplit(url)
            scheme, host, port, full = parts.scheme, parts.hostname, parts.port, url
        else:
            scheme, host, port = instance.scheme, instance.host, instance.port
            full = origin(scheme, host, port) + url
        # (a Retry object's history: every request sent for this one before; retries may
        # also be an int, a bool or None)
        history = getattr(argument(args, kwargs, _RETRIES_INDEX, "retries"), "history", None)
        return telemetry.begin(method, full, scheme, host, port, _headers(instance, args, kwargs),
                               len(history) if history else 0)

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sent = copy_headers(_headers(instance, args, kwargs))
        call.inject(sent)
        return replace_argument(args, kwargs, _HEADERS_INDEX, "headers", sent)

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        return response.status, getattr(response, "version", None), response.headers


def _headers(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    headers = argument(args, kwargs, _HEADERS_INDEX, "headers")
    return instance.headers if headers is None else headers  # urllib3's own default
