"""``urllib3`` (1.x and 2.x): one CLIENT span per ``HTTPConnectionPool.urlopen()``, which
``PoolManager``, ``ProxyManager``, ``urllib3.request()`` and ``HTTPSConnectionPool`` all go
through.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds), per request that goes out. Every resend is a
    span of its own, with its own ``traceparent`` and ``http.request.resend_count`` = the
    number of requests sent before it, as the HTTP semantic conventions ask: a
    ``PoolManager`` redirect or retry (a further ``urlopen()``, handed the ``Retry`` history),
    and equally the retries and same-pool redirects ``urlopen()`` makes inside itself, also
    under a ``requests`` call (``HTTPAdapter(max_retries=Retry(...))``), and the request a
    ``requests`` response hook sends again through the adapter (``HTTPDigestAuth``). With
    ``preload_content=False`` the span ends when the response headers have arrived. A
    redirect the pool will not follow to another host (``HostChangedError``, raised before
    anything is sent) is no request: no span.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``,
    ``server.port``, ``network.protocol.version``, ``http.response.status_code`` (also on the
    last attempt of a ``Retry`` that gives up raising ``MaxRetryError``: the answer it got,
    with its ``network.protocol.version``), ``error.type`` (status code for 4xx/5xx, else
    the exception's fully-qualified class name, ``urllib3.exceptions.ConnectTimeoutError``;
    status ERROR then, and an exception event), ``http.request.resend_count``, captured
    ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``network.protocol.version``, ``error.type`` — never
    the URL.
Layering
    Under a ``requests`` span this layer stands aside; its own span makes http.client (urllib3
    1.x sends through ``HTTPConnection.request``) stand aside.
Resends inside ``urlopen()``
    urllib3 decides on a resend in ``Retry.increment()`` (which raises when none is left) and
    then calls ``urlopen()`` again from inside the first one. So ``Retry.increment`` is
    wrapped (it runs only when a request is to be resent, never on the usual path): when it
    returns, the request in flight (this layer's call, or the requests call above it) ends
    there with the answer or error that caused the resend, and the caller's context is made
    current again with the call's chain of resends (``http_client.Resends`` under
    ``RESENDS_KEY``), which the next ``urlopen()`` in that context takes: it starts the next
    attempt's span under the caller's span, with the next resend count of the chain, and
    injects that span's ``traceparent`` into a copy of the headers. (requests leaves the same
    note while its response hooks run.) The caller's context comes back when the outermost
    traced call returns.
Headers
    The trace headers go into a copy of the ``headers`` argument (or of the pool's default
    headers), keeping its type (``HTTPHeaderDict`` stays multi-valued); a trace header the
    caller set in another letter case (``Traceparent``) is replaced, never sent twice.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opentelemetry.context import Context

from ..infrastructure.current_context import attach, get_current
from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import (
    CALL_KEY,
    RESENDS_KEY,
    Adapter,
    ClientCall,
    ClientTelemetry,
    argument,
    call_traced,
    finish,
    headers_with_context,
    origin,
    replace_argument,
)

# urlopen(self, method, url, body=None, headers=None, retries=None, ...): the same in 1.x
# and 2.x.
_HEADERS_INDEX = 3
_RETRIES_INDEX = 4
# Retry.increment(method=None, url=None, response=None, error=None, _pool=None, ...)
_RESPONSE_INDEX = 2
_ERROR_INDEX = 3
_ASSERT_SAME_HOST_INDEX = 6


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "urllib3")
    adapter = _Urllib3Adapter()

    def urlopen(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        return call_traced(telemetry, adapter, wrapped, instance, args, kwargs)

    def increment(wrapped: Any, instance: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        # (first: when it raises, no resend follows, and the attempt in flight ends with
        # that exception where it was traced, with the answer's status when there was one)
        try:
            retries = wrapped(*args, **kwargs)
        except BaseException:
            try:
                _keep_the_answer_of_the_last_attempt(args, kwargs)
            except Exception as exc:
                telemetry.warn(exc)
            raise
        try:
            _end_the_attempt_in_flight(adapter, args, kwargs)
        except Exception as exc:
            telemetry.warn(exc)
        return retries

    wrap_once(module.HTTPConnectionPool, "urlopen", urlopen, stand_aside=http_suppressed)
    retry = getattr(getattr(module, "util", None), "Retry", None) or getattr(module, "Retry",
                                                                             None)
    if isinstance(retry, type) and callable(vars(retry).get("increment")):
        wrap_once(retry, "increment", increment)


def _keep_the_answer_of_the_last_attempt(args: tuple[Any, ...], kwargs: dict[str, Any]
                                         ) -> None:
    """Retries are exhausted (``Retry(raise_on_status=True)``, the default: a 503 retried
    until none is left raises ``MaxRetryError``): the attempt in flight did get an answer,
    whose status and protocol version its span and duration point keep next to that
    exception's ``error.type`` (the semantic conventions: the status code whenever one was
    received; the version as for any other answer)."""
    response = argument(args, kwargs, _RESPONSE_INDEX, "response")
    status = getattr(response, "status", None)
    if type(status) is not int:
        return
    call = get_current().get(CALL_KEY)
    if call is not None:
        call.answered(status, getattr(response, "version", None))


def _end_the_attempt_in_flight(adapter: _Urllib3Adapter, args: tuple[Any, ...],
                               kwargs: dict[str, Any]) -> None:
    """urllib3 is about to resend: end the request in flight with what caused it, and leave
    the next ``urlopen()`` a note to start the next attempt (see the module)."""
    call = get_current().get(CALL_KEY)
    if call is None or call.ended:  # not inside a traced request (or not ours to end)
        return
    chain = call.resends()
    # The caller's context first, as for any call's end: its duration point is recorded
    # there. No token: the outermost traced call resets the context when it returns.
    attach(Context(chain.parent, **{RESENDS_KEY: chain}))
    response = argument(args, kwargs, _RESPONSE_INDEX, "response")
    if response is not None:
        finish(call, adapter.outcome, response)
    else:
        call.end(exception=argument(args, kwargs, _ERROR_INDEX, "error"))


class _Urllib3Adapter(Adapter):
    __slots__ = ()

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        method = argument(args, kwargs, 0, "method")
        url = argument(args, kwargs, 1, "url")
        if url.startswith(("http://", "https://")):  # absolute form, sent to a proxy
            if _refused_as_another_host(instance, args, kwargs, url):
                return None
            parts = urlsplit(url)
            scheme, host, port, full = parts.scheme, parts.hostname, parts.port, url
        else:
            scheme, host, port = instance.scheme, instance.host, instance.port
            full = origin(scheme, host, port) + url
        headers = _headers(instance, args, kwargs)
        chain = get_current().get(RESENDS_KEY)
        if chain is not None:  # a further request of a chain whose last one has ended
            call = telemetry.begin(method, full, scheme, host, port, headers, chain.next(),
                                   chain.parent)
            if call is not None:
                call.chain = chain
            return call
        # (a Retry object's history: every request sent for this one before; retries may
        # also be an int, a bool or None)
        history = getattr(argument(args, kwargs, _RETRIES_INDEX, "retries"), "history", None)
        return telemetry.begin(method, full, scheme, host, port, headers,
                               len(history) if history else 0)

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sent = headers_with_context(call, _headers(instance, args, kwargs))
        return replace_argument(args, kwargs, _HEADERS_INDEX, "headers", sent)

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        return response.status, getattr(response, "version", None), response.headers


def _refused_as_another_host(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                             url: str) -> bool:
    """Will ``urlopen()`` raise ``HostChangedError`` before sending anything? (a pool told
    to follow a redirect to another server, or handed another host's URL, with
    ``assert_same_host``, its default.) Then there is no request to trace: no span, rather
    than a failed one with a resend count for a request that never went out. Only asked of
    an absolute URL (a proxy's are sent with ``assert_same_host=False``)."""
    if not argument(args, kwargs, _ASSERT_SAME_HOST_INDEX, "assert_same_host", True):
        return False
    try:
        return not instance.is_same_host(url)
    except Exception:  # the pool says so itself when it checks
        return False


def _headers(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    headers = argument(args, kwargs, _HEADERS_INDEX, "headers")
    return instance.headers if headers is None else headers  # urllib3's own default
