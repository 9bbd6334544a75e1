"""``requests``: one CLIENT span per ``Session.send()`` (so ``requests.get()``, ``Session``
methods and prepared requests alike).

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds). Redirects followed inside ``send()`` are
    part of the one span, which reports the final status. With ``stream=True`` the span
    ends when the response headers have arrived; reading the body afterwards is not part
    of it.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``,
    ``server.port``, ``network.protocol.version``, ``http.response.status_code``,
    ``error.type`` (status code for 4xx/5xx, else the exception class; status ERROR then, and
    an exception event), captured ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``error.type`` — never the URL.
Layering
    The span is current during the call and urllib3/http.client below stand aside, so a
    request is one span, not three.
Headers
    The trace headers go into a copy of the ``PreparedRequest`` (its headers copied, its
    cookie jar shared): the caller's object is not changed; ``response.request`` is the copy,
    i.e. what was sent.
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
    replace_argument,
)


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "requests")
    adapter = _RequestsAdapter(getattr(getattr(module, "models", None), "PreparedRequest", None),
                               getattr(getattr(module, "structures", None),
                                       "CaseInsensitiveDict", None))

    def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return call_traced(telemetry, adapter, wrapped, instance, args, kwargs)

    wrap_once(module.Session, "send", send, stand_aside=http_suppressed)


class _RequestsAdapter(Adapter):
    """``Session.send(request, **kwargs)`` with a ``PreparedRequest``."""

    __slots__ = ("_headers_type", "_request_type")

    def __init__(self, request_type: Any, headers_type: Any) -> None:
        self._request_type = request_type
        self._headers_type = headers_type

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        request = argument(args, kwargs, 0, "request")
        url = request.url
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # requests itself reports the bad URL
            port = None
        return telemetry.begin(request.method, url, parts.scheme, parts.hostname, port,
                               request.headers)

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sent = self._copy(argument(args, kwargs, 0, "request"))
        call.inject(sent.headers)
        return replace_argument(args, kwargs, 0, "request", sent)

    def _copy(self, request: Any) -> Any:
        """``request.copy()`` but for the cookie jar, which the copy shares: 0.5 µs instead of
        1.9 (the jar copy takes a lock per cookie and builds a policy). Nothing on the send
        path changes a request's jar in place (redirects and auth retries copy the request
        first), so sharing it is safe; only the headers, which we add to, are copied."""
        headers = request.headers
        if type(request) is not self._request_type or type(headers) is not self._headers_type \
                or not isinstance(getattr(headers, "_store", None), dict):
            return request.copy()
        sent = object.__new__(type(request))
        sent.__dict__.update(request.__dict__)
        copied = object.__new__(type(headers))
        copied._store = headers._store.copy()
        sent.headers = copied
        return sent

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        raw = getattr(response, "raw", None)  # absent with mocking adapters
        return response.status_code, getattr(raw, "version", None), response.headers
