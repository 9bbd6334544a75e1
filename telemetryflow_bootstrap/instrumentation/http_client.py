"""``http.client`` (and so ``urllib.request``), plus the client-side machinery the other HTTP
client instrumentations (``urllib3``, ``requests``, ``httpx``) share.

Produces
    one CLIENT span per request made with ``HTTPConnection.request()``/``getresponse()``,
    named after the method (``GET``; ``HTTP`` for methods the semantic conventions do not
    know, with ``http.request.method`` = ``_OTHER``), and a point on the histogram
    ``http.client.request.duration`` (seconds).
    The span starts in ``request()`` and ends when ``getresponse()`` has the status line and
    headers: the body is read by the caller afterwards and is not part of it. The low-level
    ``putrequest()``/``putheader()``/``endheaders()`` API on its own is not traced. A request
    whose response is never fetched ends when the connection is closed or sends its next
    request (no status then).
    A redirect ``urllib.request`` follows is a further request: its own span (a sibling of
    the first, under the caller's span) with ``http.request.resend_count`` = 1, 2, ... along
    the chain, as the HTTP semantic conventions ask for every resend (see
    ``_patch_urllib_request``). So is the request urllib.request's auth handlers send
    again after a 401 or 407 challenge (``HTTPBasicAuthHandler``, ``HTTPDigestAuthHandler``
    and their proxy twins).
Span attributes
    ``http.request.method``, ``http.request.method_original`` (unknown methods only),
    ``url.full`` (userinfo and signature-like query values REDACTED), ``server.address``
    (an internationalised name in its ASCII form, ``xn--bcher-kva.example``, as on the wire
    and as every client library here reports it), ``server.port``,
    ``network.protocol.version``, ``http.response.status_code``, ``error.type`` (the status
    code for 4xx/5xx, else the exception's fully-qualified class name, a built-in's bare
    name: ``TimeoutError``), ``http.request.resend_count`` (urllib.request redirects and auth
    retries), captured headers ``http.request.header.<name>``/``http.response.header.<name>``.
Metric attributes (low cardinality: never the URL)
    ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``network.protocol.version`` (when a response
    came), ``error.type``.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS`` (via the config; excluded: no span, no metric, no context
    injected), ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST``/``_RESPONSE`` and
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read once, at patch time).

The context is injected (global propagator: W3C ``traceparent``/``tracestate`` and
``baggage`` by default) into a copy of the caller's headers, replacing a trace header the
caller set in another letter case (urllib.request sends ``Traceparent``), never adding a
second one. Inside a span made by an outer
layer (requests → urllib3 → http.client) the inner layers stand aside
(``http_suppressed()``), and nothing is traced while our exporter runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    Context,
    detach,
    set_value,
)
from opentelemetry.propagate import inject
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_REQUEST_RESEND_COUNT,
    HTTP_RESPONSE_STATUS_CODE,
    HttpRequestMethodValues,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_SCHEME
from opentelemetry.semconv.metrics.http_metrics import HTTP_CLIENT_REQUEST_DURATION
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _diagnostics
from ..infrastructure.current_context import attach, get_current, reset
from ._error_type import error_type as error_type_of
from ._http_common import (
    DURATION_BUCKETS,
    SPAN_KEY,
    ExcludedUrls,
    HeaderCapture,
    SamplerShortcut,
    http_suppressed,
    redact_url,
)
from ._method_wrappers import wrap_once

_OTHER = HttpRequestMethodValues.OTHER.value
# The semantic conventions' default set of known methods: the enum plus QUERY, which they
# name in prose. Matching is exact: ``get`` goes on the wire as ``get`` and is not ``GET``.
_KNOWN_METHODS = frozenset(m.value for m in HttpRequestMethodValues if m.value != _OTHER) | {
    "QUERY"}
# (ws/wss: the scheme of a WebSocket handshake, e.g. Starlette's TestClient through httpx)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_PROTOCOL_VERSIONS = {9: "0.9", 10: "1.0", 11: "1.1", 20: "2", 30: "3"}
_PENDING = "_telemetryflow_call"
# The context key under which a call's own context (``ClientCall.context``) holds the call:
# a library module finds the call in flight from inside the library (requests: see there).
CALL_KEY = "telemetryflow.http_client.call"
# The context key of the ``Resends`` chain that the next request a transport layer (urllib3's
# ``urlopen()``) sends in that context belongs to: a retry urllib3 makes inside ``urlopen()``,
# or the request a requests response hook sends again through the adapter (digest auth).
RESENDS_KEY = "telemetryflow.http_client.resends"
# urllib.request redirects (see _patch_urllib_request): the resend count on the Request a
# redirect made, and the one the request that ``do_open`` is sending carries (0: none).
_RESEND_ATTRIBUTE = "_telemetryflow_resend_count"
_URLLIB_RESEND: ContextVar[int] = ContextVar("telemetryflow_urllib_resend", default=0)


# ----- what every HTTP client instrumentation shares ------------------------------------------

class ClientTelemetry:
    """One library's tracer, histogram and settings, gathered once at patch time so the
    per-request path only reads attributes."""

    __slots__ = ("_duration", "_excluded", "_leaf", "_library", "_request_headers",
                 "_response_headers", "_shortcut", "_tracer")

    def __init__(self, context: Any, library: str) -> None:
        from ..infrastructure.fast_histogram import fast_histogram
        from ..infrastructure.leaf_spans import LeafTracer

        self._library = library
        self._tracer = context.tracer if context.tracer is not None else trace.NoOpTracer()
        # A client span has no children of its own spans: the cheap leaf span (None: a
        # tracer that is not the SDK's, then tracer.start_span as usual).
        self._leaf = LeafTracer.for_tracer(self._tracer)
        # A call the sampler drops (sample rate 0, an unsampled request's call) skips the
        # span's attributes: the verdict is known beforehand (see SamplerShortcut).
        self._shortcut = SamplerShortcut(self._tracer, draws_ids=self._leaf is not None) \
            if self._leaf is not None else None
        meter = context.meter
        # Same name, unit, description and advisory in every library: the SDK hands back the
        # one instrument instead of registering a conflicting second one.
        self._duration = None if meter is None else fast_histogram(meter.create_histogram(
            HTTP_CLIENT_REQUEST_DURATION, unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
        config = context.config
        self._excluded = ExcludedUrls(getattr(config, "excluded_urls", ()) or ())
        self._request_headers = HeaderCapture("client", "request")
        self._response_headers = HeaderCapture("client", "response")

    def begin(self, method: str, url: str, scheme: str, host: str | None, port: int | None,
              headers: Any = None, resend_count: int = 0, parent: Context | None = None
              ) -> ClientCall | None:
        """Start the span for one request; None when the URL is excluded. ``resend_count``:
        this request's ordinal among the resends of one library call (redirects, retries),
        0 for the first; ``parent``: the context the call belongs to, when it is not the
        current one as such (see ``ClientCall``)."""
        excluded = self._excluded
        if excluded and excluded.matches(redact_url(url)):
            return None
        if port is None:
            port = _DEFAULT_PORTS.get(scheme)
        known = method if method in _KNOWN_METHODS else _OTHER
        metric_attributes: dict[str, Any] = {HTTP_REQUEST_METHOD: known, URL_SCHEME: scheme}
        if host:
            host = host.rpartition("@")[2]  # never userinfo, whatever a layer handed us
            metric_attributes[SERVER_ADDRESS] = host
        if port is not None:
            metric_attributes[SERVER_PORT] = port
        trace_id = None
        shortcut = self._shortcut
        if shortcut is not None:
            verdict = shortcut.decide_child(get_current())
            if verdict is not None:
                if not verdict.sampled:
                    return ClientCall(self, shortcut.span(verdict), metric_attributes, False,
                                      parent, resend_count)
                trace_id = verdict.trace_id
        attributes: dict[str, Any] = {HTTP_REQUEST_METHOD: known, URL_FULL: redact_url(url)}
        if host:
            attributes[SERVER_ADDRESS] = host
        if port is not None:
            attributes[SERVER_PORT] = port
        if known is _OTHER:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
        if resend_count:
            attributes[HTTP_REQUEST_RESEND_COUNT] = resend_count
        if self._request_headers and headers is not None:
            attributes.update(self._request_headers.attributes(_header_items(headers)))
        name = "HTTP" if known is _OTHER else method
        leaf = self._leaf
        span = (leaf.start(name, SpanKind.CLIENT, attributes, shared=False, trace_id=trace_id)
                if leaf is not None
                else self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes))
        return ClientCall(self, span, metric_attributes, True, parent, resend_count)

    def warn(self, exc: BaseException) -> None:
        """Our code failed around one request: the request runs untraced; say so once a
        minute, not once per request."""
        _diagnostics.warn_every_minute(
            f"http-client:{self._library}",
            f"{self._library} instrumentation failed ({type(exc).__name__}: {exc}); "
            "requests run untraced while this lasts")


class ClientCall:
    """One request in flight: its span, metric attributes and start time. ``recording``
    False: a span the sampler dropped, which nothing is set on.

    ``context`` is what the library call runs in: ``parent`` (the caller's context) with the
    span current (so hooks the library runs become its children), the suppression key (so the
    inner HTTP layers of the same request stand aside: requests -> urllib3 -> http.client)
    and the call itself under ``CALL_KEY``. A library module whose call goes on running code
    of the caller's after the request (requests' response hooks, its redirects) ends the call
    there and makes ``parent`` current again: that code is not part of this request, and
    an HTTP call it makes is a request of its own. ``sent``: the request object that carries
    the trace headers, when the library module needs to recognise it. ``resend_count``: the
    call's ordinal among the resends of one library call (a further resend the library makes
    inside this call counts on from it: see urllib3). The span ends at the
    time the duration was measured, so span and metric agree; ``end`` runs once, a second
    call does nothing."""

    __slots__ = ("_recording", "_start", "_telemetry", "chain", "context", "ended",
                 "metric_attributes", "parent", "resend_count", "sent", "span")

    def __init__(self, telemetry: ClientTelemetry, span: Any,
                 metric_attributes: dict[str, Any], recording: bool = True,
                 parent: Context | None = None, resend_count: int = 0) -> None:
        self._telemetry = telemetry
        self.resend_count = resend_count
        self.span = span
        self._recording = recording
        self.metric_attributes = metric_attributes
        self.parent = parent = get_current() if parent is None else parent
        self.sent: Any = None
        self.chain: Resends | None = None
        self.ended = False
        # (one copy of the context with every key, not set_value's copy per key; the call
        # refers to its context and the context to the call until ``end`` breaks the cycle)
        self.context: Any = Context(parent, **{SPAN_KEY: span,
                                               _SUPPRESS_HTTP_INSTRUMENTATION_KEY: True,
                                               CALL_KEY: self})
        self._start = time.perf_counter()

    def inject(self, carrier: Any) -> None:
        inject(carrier, context=self.context)

    def resends(self) -> Resends:
        """The chain of resends this call belongs to (begun here when it is the first)."""
        chain = self.chain
        if chain is None:
            chain = self.chain = Resends(self.parent, self.resend_count)
        return chain

    def answered(self, status: Any, version: Any) -> None:
        """Keep the status and protocol version of an answer on a call that will end with an
        exception all the same (a retry that gives up on it). Never raises."""
        if self.ended:
            return
        try:
            if type(status) is int:
                self.metric_attributes[HTTP_RESPONSE_STATUS_CODE] = status
                self.span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
            if version is not None:
                version = protocol_version(version)
                self.metric_attributes[NETWORK_PROTOCOL_VERSION] = version
                self.span.set_attribute(NETWORK_PROTOCOL_VERSION, version)
        except Exception as exc:
            self._telemetry.warn(exc)

    def end(self, status: int | None = None, version: Any = None, headers: Any = None,
            exception: BaseException | None = None) -> None:
        """Finish the span and record the duration. Never raises: this runs after the
        library call, whose outcome must reach the caller untouched."""
        elapsed = time.perf_counter() - self._start
        if self.ended:
            return
        self.ended = True
        self.context = None
        span = self.span
        metric_attributes = self.metric_attributes
        if not self._recording:
            self._record(elapsed, metric_attributes, status, version, exception)
            return
        try:
            error_type = None
            if status is not None:
                metric_attributes[HTTP_RESPONSE_STATUS_CODE] = status
                span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
                if status >= 400:
                    error_type = str(status)
                    span.set_status(Status(StatusCode.ERROR))
            if exception is not None:
                error_type = error_type_of(exception)
                span.record_exception(exception)
                span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exception}"))
            if error_type is not None:
                metric_attributes[ERROR_TYPE] = error_type
                span.set_attribute(ERROR_TYPE, error_type)
            if version is not None:
                version = protocol_version(version)
                metric_attributes[NETWORK_PROTOCOL_VERSION] = version
                span.set_attribute(NETWORK_PROTOCOL_VERSION, version)
            capture = self._telemetry._response_headers
            if capture and headers is not None and span.is_recording():
                span.set_attributes(capture.attributes(_header_items(headers)))
        except Exception as exc:
            self._telemetry.warn(exc)
        finally:
            # At the measured end, not now: formatting an exception's traceback above can
            # take longer than a refused connection did.
            started = getattr(span, "start_time", None)
            span.end(started + int(elapsed * 1e9) if type(started) is int else None)
        duration = self._telemetry._duration
        if duration is not None:
            try:
                duration.record(elapsed, metric_attributes)
            except Exception as exc:
                self._telemetry.warn(exc)

    def _record(self, elapsed: float, metric_attributes: dict[str, Any], status: int | None,
                version: Any, exception: BaseException | None) -> None:
        """``end`` for a dropped span: the duration point alone, with the same attributes."""
        duration = self._telemetry._duration
        if duration is None:
            return
        try:
            if status is not None:
                metric_attributes[HTTP_RESPONSE_STATUS_CODE] = status
            if version is not None:
                metric_attributes[NETWORK_PROTOCOL_VERSION] = protocol_version(version)
            if exception is not None:
                metric_attributes[ERROR_TYPE] = error_type_of(exception)
            elif status is not None and status >= 400:
                metric_attributes[ERROR_TYPE] = str(status)
            duration.record(elapsed, metric_attributes)
        except Exception as exc:
            self._telemetry.warn(exc)


def protocol_version(version: Any) -> Any:
    """``network.protocol.version`` for what a library reports (http.client's ``11``, or a
    string such as ``"2"`` already)."""
    return _PROTOCOL_VERSIONS.get(version, version) if isinstance(version, int) else version


class Resends:
    """The requests a library sends again for one call of the caller's (redirects, auth
    challenges answered, retries), counted along the whole chain whichever layer sends
    them: the caller's context (every request of the chain is a sibling under it) and how
    many were sent so far besides the first. A library module leaves it in the context
    (``RESENDS_KEY`` or a key of its own) for the next request of the chain, which takes
    its resend count with ``next()``."""

    __slots__ = ("count", "parent")

    def __init__(self, parent: Context, count: int = 0) -> None:
        self.parent = parent
        self.count = count

    def next(self) -> int:
        self.count += 1
        return self.count


def _header_items(headers: Any) -> Mapping[str, Any] | Iterable[tuple[str, Any]]:
    """Headers as HeaderCapture wants them, keeping repeated headers (httpx ``Headers`` and
    ``email.message.Message`` are not plain mappings)."""
    multi = getattr(headers, "multi_items", None)
    if multi is not None:
        return multi()
    if isinstance(headers, Mapping):
        return headers
    return headers.items()


class Adapter:
    """What the shared wrapper bodies need to know about one library's request and
    response objects. Subclasses override the three methods; instances hold no state."""

    __slots__ = ()

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        """Start the call with ``telemetry.begin`` (None when the URL is excluded)."""
        raise NotImplementedError

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments to call the library with: the trace headers injected into a copy
        of the request's headers, never into the caller's own mapping."""
        raise NotImplementedError

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        """``(status code, protocol version, headers)`` of a response."""
        raise NotImplementedError


def _prepare(telemetry: ClientTelemetry, adapter: Adapter, instance: Any,
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``(call, args, kwargs, token)`` for one traced call; raises only if our code fails,
    after ending any span it started."""
    call = adapter.begin(telemetry, instance, args, kwargs)
    if call is None:  # excluded: no span, and the inner layers make none either
        return None, args, kwargs, attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        args, kwargs = adapter.with_headers(call, instance, args, kwargs)
        return call, args, kwargs, attach(call.context)
    except BaseException:
        call.end()
        raise


def call_traced(telemetry: ClientTelemetry, adapter: Adapter, wrapped: Any, instance: Any,
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The synchronous wrapper body the libraries share, installed with
    ``wrap_once(..., stand_aside=http_suppressed)``: under another layer's span (or while
    instrumentation is suppressed) the library runs without it."""
    try:
        call, new_args, new_kwargs, token = _prepare(telemetry, adapter, instance, args, kwargs)
    except Exception as exc:
        telemetry.warn(exc)
        return wrapped(*args, **kwargs)
    # The caller's context is put back before the call ends, on either way out: its duration
    # point is recorded there (its exemplar names the caller's span and keeps that context
    # alive, not the call's). (``reset``: set in this same call, see
    # infrastructure.current_context; whatever the library module made current meanwhile,
    # it puts back the caller's context.)
    try:
        response = wrapped(*new_args, **new_kwargs)
    except BaseException as exc:
        reset(token)
        if call is not None:
            call.end(exception=exc)  # (nothing, when the library module ended it already)
        raise
    reset(token)
    if call is not None and not call.ended:
        finish(call, adapter.outcome, response)
    return response


async def call_traced_async(telemetry: ClientTelemetry, adapter: Adapter, wrapped: Any,
                            instance: Any, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
    """``call_traced`` for coroutine functions (httpx ``AsyncClient.send``)."""
    try:
        call, new_args, new_kwargs, token = _prepare(telemetry, adapter, instance, args, kwargs)
    except Exception as exc:
        telemetry.warn(exc)
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*new_args, **new_kwargs)
    except BaseException as exc:
        detach(token)  # (first, as in call_traced)
        if call is not None:
            call.end(exception=exc)
        raise
    detach(token)
    if call is not None and not call.ended:
        finish(call, adapter.outcome, response)
    return response


def finish(call: ClientCall, outcome: Callable[[Any], tuple[Any, Any, Any]],
           response: Any) -> None:
    """End ``call`` with what ``outcome`` reads from the library's response."""
    try:
        status, version, headers = outcome(response)
    except Exception as exc:  # an unexpected response type: end the span without details
        call._telemetry.warn(exc)
        status = version = headers = None
    call.end(status, version, headers)


def replace_argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
                     value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with one of them (given by position or keyword) replaced."""
    if len(args) > index:
        return (*args[:index], value, *args[index + 1:]), kwargs
    return args, {**kwargs, name: value}


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
             default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def copy_headers(headers: Any) -> Any:
    """A copy of the caller's headers of the same kind (case-insensitive and multi-value
    dicts stay what they are); a plain dict when there were none."""
    if headers is None:
        return {}
    copy = getattr(headers, "copy", None)
    return copy() if copy is not None else dict(headers)


def headers_with_context(call: ClientCall, headers: Any) -> Any:
    """A copy of the caller's headers (see ``copy_headers``) with the call's trace headers
    injected, each sent once. Why more than an ``inject``: the propagator writes lower-case
    names, and a plain dict that already has the same header in another case
    (``Traceparent``: urllib.request capitalises every name it is given; or a caller
    propagating by hand) would then send both, the stale one first, and the server would
    read a garbled or wrong parent. Such a name is dropped from the copy; case-insensitive
    header types (urllib3's ``HTTPHeaderDict``) replace it by themselves. Cost: one
    ``lower()`` per header the caller passed, no further copy."""
    sent = copy_headers(headers)
    call.inject(sent)
    if headers and type(sent) is dict:
        for name in headers:
            if type(name) is str:
                lower = name.lower()
                # (ours: the lower-case twin that was not among the caller's headers)
                if lower != name and lower in sent and lower not in headers:
                    del sent[name]
    return sent


def ascii_host(host: str) -> str:
    """An internationalised host name in the ASCII form that goes on the wire and to DNS
    (``bücher.example`` -> ``xn--bcher-kva.example``: what http.client sends, with the same
    codec), the name as it is when it has none."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def origin(scheme: str, host: str, port: int | None) -> str:
    """``scheme://host[:port]`` with the default port left out, as browsers show URLs."""
    shown = _host_for_url(host)
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


# ----- http.client ----------------------------------------------------------------------------

def patch(module: Any, context: Any) -> None:
    """Trace ``HTTPConnection.request()`` … ``getresponse()`` (HTTPSConnection inherits).

    The two calls are separate, so the call in flight waits on the connection object; no
    context is attached in between (nothing below http.client is instrumented)."""
    telemetry = ClientTelemetry(context, "http.client")
    adapter = _HttpClientAdapter(getattr(module, "HTTPSConnection", None))  # None without ssl
    # urllib.request's redirects: patched now, when it is imported, or (when it is what is
    # importing http.client, its classes not defined yet) at the first request.
    waiting = [not _patch_urllib_request_or_wait(telemetry)]
    # ``close`` is wrapped once a request of ours waits for its response, not before: urllib3
    # (under requests) closes a connection per ``requests.get()`` and never has one waiting,
    # so a program that does not call http.client itself does not pay for that wrapper.
    close_wrapped = [False]

    def request(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        if waiting[0]:
            waiting[0] = not _patch_urllib_request_or_wait(telemetry)
        state = getattr(instance, "__dict__", None)
        stale = state.pop(_PENDING, None) if state is not None else None
        if stale is not None:  # the previous response was never fetched
            stale.end()
        if http_suppressed():
            return wrapped(*args, **kwargs)
        call = None
        try:
            call = adapter.begin(telemetry, instance, args, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            sent_args, sent_kwargs = adapter.with_headers(call, instance, args, kwargs)
        except Exception as exc:
            if call is not None:
                call.end()
            telemetry.warn(exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*sent_args, **sent_kwargs)
        except BaseException as exc:
            call.end(exception=exc)
            raise
        if state is None:  # a slotted subclass: we cannot wait for the response
            call.end()
        else:
            state[_PENDING] = call
            if not close_wrapped[0]:
                close_wrapped[0] = True
                try:
                    wrap_once(module.HTTPConnection, "close", close)
                except Exception as exc:  # pragma: no cover - close not found: stays as is
                    telemetry.warn(exc)
        return result

    def getresponse(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        state = getattr(instance, "__dict__", None)
        call = state.pop(_PENDING, None) if state is not None else None
        if call is None:  # not ours (urllib3 2.x sends by itself, then asks http.client)
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exception=exc)
            raise
        finish(call, adapter.outcome, response)
        return response

    def close(wrapped: Any, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        # A request whose response was never fetched: its span ends now, not never.
        state = getattr(instance, "__dict__", None)
        call = state.pop(_PENDING, None) if state else None
        if call is not None:
            call.end()
        return wrapped(*args, **kwargs)

    wrap_once(module.HTTPConnection, "request", request)
    wrap_once(module.HTTPConnection, "getresponse", getresponse)


def _patch_urllib_request_or_wait(telemetry: ClientTelemetry) -> bool:
    """Patch urllib.request's redirects now if it is imported, or arm a post-import hook
    if it is not; False only while it is being imported (the classes to patch are not
    defined yet: ``import urllib.request`` imports http.client near its top, which is the
    usual way this patch runs). Never raises."""
    module = sys.modules.get("urllib.request")
    try:
        if module is None:
            from ._import_hooks import when_imported

            when_imported("urllib.request", _patch_urllib_request)
            return True
        if getattr(module, "HTTPRedirectHandler", None) is None \
                or getattr(module, "AbstractHTTPHandler", None) is None:
            return False
        _patch_urllib_request(module)
    except Exception as exc:
        telemetry.warn(exc)
    return True


def _patch_urllib_request(module: Any) -> None:
    """Count urllib.request's redirects as resends. Why two wrappers: http.client never
    sees urllib's ``Request``, only the method, selector and headers ``do_open`` hands it.
    So ``HTTPRedirectHandler.redirect_request`` (which makes the Request of the next hop)
    marks that Request with its ordinal along the chain, and ``AbstractHTTPHandler.do_open``
    passes a marked Request's ordinal to the one ``HTTPConnection.request()`` it makes (a
    context variable, set only for such a Request). The caller's own Request objects are
    never marked: one sent again later is a first request again.

    An auth handler answering a 401/407 challenge (basic or digest, server or proxy) sends
    the same Request again with ``parent.open``: its ``retry_http_*_auth`` marks the
    Request with the next ordinal while it does, then puts the mark back as it was."""
    wrap_once(module.HTTPRedirectHandler, "redirect_request", _mark_the_next_hop)
    wrap_once(module.AbstractHTTPHandler, "do_open", _open_with_its_resend_count)
    for owner, name, index in (("AbstractBasicAuthHandler", "retry_http_basic_auth", 1),
                               ("AbstractDigestAuthHandler", "retry_http_digest_auth", 0)):
        handler = getattr(module, owner, None)
        if isinstance(handler, type) and callable(vars(handler).get(name)):
            wrap_once(handler, name, _sent_again_with_credentials(index))


def _sent_again_with_credentials(index: int) -> Any:
    """The wrapper of an auth handler's ``retry_http_*_auth`` whose Request argument is at
    ``index`` (basic: ``(host, req, realm)``; digest: ``(req, auth)``)."""

    def retry(wrapped: Any, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        request = argument(args, kwargs, index, "req")
        state = getattr(request, "__dict__", None)
        if state is None:  # pragma: no cover - a Request type that takes no attributes
            return wrapped(*args, **kwargs)
        before = state.get(_RESEND_ATTRIBUTE)
        state[_RESEND_ATTRIBUTE] = (before or 0) + 1
        try:
            return wrapped(*args, **kwargs)
        finally:
            if before is None:
                state.pop(_RESEND_ATTRIBUTE, None)
            else:
                state[_RESEND_ATTRIBUTE] = before

    return retry


def _mark_the_next_hop(wrapped: Any, instance: Any, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:
    # redirect_request(req, fp, code, msg, headers, newurl): the next hop's Request, or None
    new = wrapped(*args, **kwargs)
    if new is not None:
        try:
            count = getattr(argument(args, kwargs, 0, "req"), _RESEND_ATTRIBUTE, 0)
            setattr(new, _RESEND_ATTRIBUTE, count + 1)
        except Exception:  # pragma: no cover - a Request type that takes no attributes
            pass
    return new


def _open_with_its_resend_count(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:
    # do_open(http_class, req, **http_conn_args)
    count = getattr(argument(args, kwargs, 1, "req"), _RESEND_ATTRIBUTE, 0)
    if not count:
        return wrapped(*args, **kwargs)
    token = _URLLIB_RESEND.set(count)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _URLLIB_RESEND.reset(token)


class _HttpClientAdapter(Adapter):
    """``HTTPConnection.request(method, url, body=None, headers={}, *, encode_chunked)``."""

    __slots__ = ("_https_type",)

    def __init__(self, https_type: Any) -> None:
        self._https_type = https_type

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        method = argument(args, kwargs, 0, "method")
        url = argument(args, kwargs, 1, "url")
        https = self._https_type is not None and isinstance(instance, self._https_type)
        scheme = "https" if https else "http"
        if url.startswith(("http://", "https://")):  # absolute form, sent to a proxy
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            scheme, host, port, full = parts.scheme, parts.hostname, parts.port, url
            if host and not host.isascii():  # (the URL itself is left as given)
                host = ascii_host(host)
        else:
            tunnel = getattr(instance, "_tunnel_host", None)  # CONNECT proxy: the real server
            host = tunnel or instance.host
            if host and "@" in host:  # urllib.request leaves URL userinfo in the host
                host = host.rpartition("@")[2]
            if host and not host.isascii():  # (urllib.request passes bücher.example as is)
                host = ascii_host(host)
            port = getattr(instance, "_tunnel_port", None) if tunnel else instance.port
            full = origin(scheme, host, port) + url
        return telemetry.begin(method, full, scheme, host, port,
                               argument(args, kwargs, 3, "headers"), _URLLIB_RESEND.get())

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sent = headers_with_context(call, argument(args, kwargs, 3, "headers"))
        return replace_argument(args, kwargs, 3, "headers", sent)

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        return response.status, response.version, response.msg
