"""``httpx``: one CLIENT span per request a ``Client``/``AsyncClient`` sends (so ``httpx.get()``,
``client.get()``, ``client.stream()`` and hand-built requests alike, whatever the transport):
each redirect hop and each auth round trip is a span of its own.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds), per request handed to the transport
    (``Client._send_single_request``, which ``send()`` calls once per request it sends).
    The requests after the first one of a ``send()`` (redirects it follows, auth retries)
    carry ``http.request.resend_count`` = 1, 2, ..., as the HTTP semantic conventions ask
    for every resend. A span ends when the transport has answered with the response
    headers; reading the body (inside ``send()`` unless ``stream=True``, or later by the
    caller) is not part of it.
    A WebSocket handshake Starlette's ``TestClient`` sends through httpx (``ws://``) is a
    span too, ended without error when the TestClient's transport hands over its session
    (by raising its internal ``_Upgrade``, which is control flow, not a failure): no
    ``error.type`` and no status code, since the handshake's answer is not known then.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``
    (an internationalised name in its ASCII form, ``xn--bcher-kva.example``, as in
    ``url.full``, on the wire and in the other clients' spans), ``server.port``,
    ``network.protocol.version``, ``http.response.status_code``, ``error.type`` (status
    code for 4xx/5xx, else the exception's fully-qualified class name,
    ``httpx.ConnectTimeout``; status ERROR then, and an exception event),
    ``http.request.resend_count``, captured ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``network.protocol.version``, ``error.type`` — never
    the URL.
The caller's code
    Event hooks and auth flows run between the requests, in the caller's own context: an
    HTTP call they make is a request of its own, with its own span and trace headers.
    The transport runs with the request's span current and the inner HTTP layers standing
    aside (a transport built on urllib3 makes one span, not two).
Headers
    For the transport call only, ``request.headers`` is a copy carrying the trace headers;
    the caller's ``Headers`` object is put back before the response is returned (or the
    exception raised), unchanged, so ``request.headers``, ``response.request`` and an
    exception's ``request`` are the caller's objects as without instrumentation. The same
    request sent twice at once (``asyncio.gather``) still gets its own headers back.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, detach, set_value

from ..infrastructure.current_context import attach, reset
from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import ClientCall, ClientTelemetry, argument, finish

# How many requests the ``send()`` in progress has handed to the transport so far: a list
# of one count, set by the ``send`` wrapper, read by the per-request one. (A ContextVar of
# ours, not the OpenTelemetry context: nothing else needs it, and a nested ``send()`` from an
# event hook sets its own.)
_SENT_SO_FAR: ContextVar[list[int] | None] = ContextVar("telemetryflow_httpx_sent",
                                                        default=None)
# On the copy of the headers the transport is given: the caller's own headers object (so
# a second send of the same request, begun while the first is in flight, copies and puts
# back the caller's headers, not the first one's copy).
_CALLERS_HEADERS = "_telemetryflow_callers_headers"


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "httpx")

    def per_request(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        request = argument(args, kwargs, 0, "request")
        call, sent, token = _begin(telemetry, request)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            _restore(request, sent, token)  # (first: see http_client.call_traced)
            if call is not None:
                call.end(exception=None if _is_upgrade(exc) else exc)
            raise
        _restore(request, sent, token)
        if call is not None:
            finish(call, _outcome, response)
        return response

    async def per_request_async(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:
        request = argument(args, kwargs, 0, "request")
        call, sent, token = _begin(telemetry, request)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _restore(request, sent, token, detach)  # (first: see http_client.call_traced)
            if call is not None:
                call.end(exception=None if _is_upgrade(exc) else exc)
            raise
        _restore(request, sent, token, detach)
        if call is not None:
            finish(call, _outcome, response)
        return response

    def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = _SENT_SO_FAR.set([0])
        try:
            return wrapped(*args, **kwargs)
        finally:
            _SENT_SO_FAR.reset(token)

    async def send_async(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        token = _SENT_SO_FAR.set([0])
        try:
            return await wrapped(*args, **kwargs)
        finally:
            try:
                _SENT_SO_FAR.reset(token)
            except ValueError:  # resumed in another context than it began in: not ours
                _SENT_SO_FAR.set(None)

    single = vars(module.Client).get("_send_single_request")
    single_async = vars(module.AsyncClient).get("_send_single_request")
    if callable(single) and inspect.iscoroutinefunction(single_async):
        wrap_once(module.Client, "send", send, stand_aside=http_suppressed)
        wrap_once(module.AsyncClient, "send", send_async, stand_aside=http_suppressed)
        wrap_once(module.Client, "_send_single_request", per_request,
                  stand_aside=http_suppressed)
        wrap_once(module.AsyncClient, "_send_single_request", per_request_async,
                  stand_aside=http_suppressed)
    else:  # an httpx without the per-request method: one span per send(), hooks included
        wrap_once(module.Client, "send", per_request, stand_aside=http_suppressed)
        wrap_once(module.AsyncClient, "send", per_request_async, stand_aside=http_suppressed)


def _begin(telemetry: ClientTelemetry, request: Any) -> tuple[ClientCall | None, Any, Any]:
    """``(call, headers given to the transport, context token)`` for one request: the span
    started and made current, the trace headers in a copy set on the request. Never raises:
    if our code fails, the request goes out untraced (``(None, None, None)``)."""
    sent_so_far = _SENT_SO_FAR.get()
    resend_count = 0
    if sent_so_far is not None:
        resend_count = sent_so_far[0]
        sent_so_far[0] = resend_count + 1
    call = None
    try:
        url = request.url
        headers = request.headers
        host = url.host
        if not host.isascii():  # (httpx turns a name starting xn-- back into Unicode)
            host = url.raw_host.decode("ascii")
        call = telemetry.begin(request.method, str(url), url.scheme, host, url.port,
                               headers, resend_count)
        if call is None:  # excluded: no span, no trace headers, the inner layers none either
            return None, None, attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
        callers = getattr(headers, _CALLERS_HEADERS, headers)
        sent = callers.copy()
        setattr(sent, _CALLERS_HEADERS, callers)
        call.inject(sent)
        token = attach(call.context)
        request.headers = sent
        return call, sent, token
    except Exception as exc:
        if call is not None:
            call.end()
        telemetry.warn(exc)
        return None, None, None


def _restore(request: Any, sent: Any, token: Any, detach_token: Any = reset) -> None:
    """The caller's headers back on the request (unless another send of it, begun meanwhile,
    has set its own copy there: that one puts them back), and the caller's context."""
    if sent is not None and request.headers is sent:
        request.headers = getattr(sent, _CALLERS_HEADERS)
    if token is not None:
        detach_token(token)


def _is_upgrade(exc: BaseException) -> bool:
    """Starlette's TestClient hands its WebSocket session to ``websocket_connect()`` by
    raising ``starlette.testclient._Upgrade`` from its transport: control flow that means
    the handshake request went out, not a failure. (By name: starlette is not imported for
    this, and only the exception path pays for the check.)"""
    kind = type(exc)
    return kind.__name__ == "_Upgrade" and kind.__module__ == "starlette.testclient"


def _outcome(response: Any) -> tuple[Any, Any, Any]:
    version = response.http_version  # "HTTP/1.1", "HTTP/2"
    return (response.status_code, version[5:] if version.startswith("HTTP/") else None,
            response.headers)
