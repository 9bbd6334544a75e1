"""``TelemetryMiddleware``: the framework-neutral core every server integration shares.

One request is one SERVER span continuing the caller's trace (global propagator) plus one
``http.server.request.duration`` point. The WSGI and ASGI middlewares
(``instrumentation.wsgi``/``instrumentation.asgi``), the Flask, Django and Starlette/FastAPI
integrations and the hand-added ``FlaskTelemetryMiddleware``/``FastAPITelemetryMiddleware``
all open and close requests here, so the rules live in one place:

- span name ``{method} {http.route}`` (``{method}`` until a route is known; ``HTTP`` for
  methods outside the known set, which are reported as ``_OTHER``);
- 5xx and exceptions set status ERROR and ``error.type`` (the exception's fully-qualified
  class name, ``myapp.errors.PaymentFailed``, a built-in's bare, as every instrumentation
  records it: ``instrumentation._error_type``; else the status code). 4xx is not a server
  error, nor is an exception a framework answered with a 4xx (Http404); but one that
  escapes to the server is, a body that raises while being sent included, whatever status
  went out before it: that response was cut short (the semantic conventions: an error
  "preventing the server from sending the response fully");
- the metric carries only low-cardinality attributes (method, route, status code, scheme,
  error.type), never the path or URL;
- excluded URLs (``TELEMETRYFLOW_EXCLUDED_URLS``) get neither span nor metric;
- a marker (``REQUEST_KEY``) in the WSGI environ / ASGI scope means "already instrumented":
  automatic patching plus a hand-added middleware still make one span.

Hot path: tracer, histogram, exclusions and header capture are fixed when the core is built
(patch time). Per request we build one attribute dict, start one span, record one point.
Environment variables are read once, at construction: ``TELEMETRYFLOW_EXCLUDED_URLS`` (via
the config) and ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``.

If our code fails, the request is served uninstrumented and the failure is reported at most
once a minute; the application's response and exceptions are never changed.

A bad argument to the public API (``start_request``/``end_request``, by hand-written
integrations) is said once, naming the call, the value and what is expected, and the request
is still traced: a ``status_code`` of "200" used to leave the span unended and unexported,
attributes or headers that are not a mapping raised inside the program's request handler,
and a second ``end_request`` logged a traceback. A ``client`` of the wrong type is a
``TelemetryFlowError`` at construction (set-up code, as the builder's errors are).

A ``TelemetryFlowClient`` that is not initialized yet is not an error: building the app
before ``client.initialize()`` is a normal order (FastAPI builds its middleware stack at
the lifespan startup, before a lifespan handler runs; gunicorn initializes in post_fork).
Its providers are taken at the first request after ``initialize()``; a request before it is
served untraced (the caller's trace context still passed on) and said once. It used to go,
silently, to the global OpenTelemetry providers: nowhere for a ``set_global=False`` client,
some other SDK's exporters when another one is global.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as _otel_context
from opentelemetry import propagate as _propagate
from opentelemetry import trace as _trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _diagnostics
from .domain.errors import TelemetryFlowError
from .instrumentation._error_type import error_type as _error_type
from .instrumentation._http_common import (
    DURATION_BUCKETS,
    ExcludedUrls,
    HeaderCapture,
    SamplerShortcut,
    redact_query,
)

if TYPE_CHECKING:
    from .instrumentation.flask import FlaskTelemetryMiddleware
    from .instrumentation.starlette import FastAPITelemetryMiddleware

__all__ = [
    "FastAPITelemetryMiddleware",
    "FlaskTelemetryMiddleware",
    "RequestScope",
    "TelemetryMiddleware",
]

# Where a request's ``_ServerRequest`` lives in the WSGI environ / ASGI scope: the marker that
# stops a second middleware from opening a second server span for the same request. An
# excluded URL is marked ``SKIPPED``, so inner layers leave it alone too.
REQUEST_KEY = "telemetryflow.server_request"
SKIPPED = "skipped"

_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST",
                            "PUT", "QUERY", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ERROR = Status(StatusCode.ERROR)
_SERVER = SpanKind.SERVER
_EMPTY_CONTEXT = Context()
_HOST_CACHE_SIZE = 256

_attach = _otel_context.attach
_detach = _otel_context.detach
_set_span_in_context = _trace.set_span_in_context
_get_textmap = _propagate.get_global_textmap
_perf_counter = time.perf_counter

# (Host header, scheme) → (server.address, server.port). Hosts are few per server (a cache
# hit is one dict lookup); bounded so a client inventing hosts cannot grow it.
_hosts: dict[tuple[str, str], tuple[str, int | None]] = {}


class _LowerCaseGetter(Getter[Mapping[str, str]]):
    """Carrier = {lower-case header name: value}; propagators may ask in any case."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _LowerCaseGetter()


class _ServerRequest:
    """One instrumented request: opened by the core, closed once by ``finish``.

    ``finish`` may run on another thread or task than the one that opened the request
    (a streamed body is sent by the server later), so it never touches the context; the
    caller that attached ``context`` detaches it.

    Two kinds of exception reach a request. One that escaped (the application raised it
    to the server, or the body raised it while being sent) is passed to ``finish`` and is
    always the server's error. One a framework caught and answered (Flask's
    ``got_request_exception``, Django's ``process_exception``) is stored in ``error``
    before the status is known, and counts only if the answer was a 5xx (Http404 is the
    client's error).
    """

    __slots__ = ("_core", "context", "done", "error", "method", "name_method",
                 "response_attributes", "route", "scheme", "span", "started", "status_code")

    def __init__(self, core: TelemetryMiddleware, span: Any, context: Context, method: str,
                 name_method: str, scheme: str) -> None:
        self._core = core
        self.span = span
        self.context = context
        self.method = method
        self.name_method = name_method
        self.scheme = scheme
        self.route: str | None = None
        self.status_code: int | None = None
        self.error: BaseException | None = None
        self.response_attributes: dict[str, list[str]] | None = None
        self.done = False
        self.started = _perf_counter()

    # A layer inside ours that copies the scope or environ (hypercorn's ProxyFixMiddleware
    # deep-copies the scope; user middlewares do ``copy.deepcopy(scope)``) copies this as
    # itself: one request, one span (its SDK span and core hold locks, which cannot be
    # copied: the request failed with "cannot pickle '_thread.lock' object"), and the copy
    # still tells the layers inside that the request is ours. (Pickling stays refused: a
    # request is of no use in another process, and no server pickles a scope.)
    def __copy__(self) -> _ServerRequest:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _ServerRequest:
        return self

    def finish(self, error: BaseException | None = None, incomplete: bool = False,
               error_type: str | None = None) -> None:
        """End the span and record the duration; later calls do nothing. ``error``: an
        exception that escaped (see the class docstring). ``error_type``: the request failed
        for that reason, with no exception to say it (uvicorn dropped the response of a
        client that had left: ``CLIENT_DISCONNECT``), or, with ``error``, the value recorded
        in place of the exception's name (the same condition told by an exception)."""
        if self.done:
            return
        self.done = True
        try:
            self._core._finish(self, error, incomplete, error_type)
        except Exception as exc:  # pragma: no cover - defensive: never break the response
            _diagnostics.warn_every_minute(
                "server-finish", f"could not end a server span ({type(exc).__name__}: {exc})")


class RequestScope:
    """What ``TelemetryMiddleware.start_request`` hands to ``end_request``."""

    __slots__ = ("request", "token")

    def __init__(self, request: _ServerRequest, token: Any) -> None:
        self.request = request
        self.token = token

    @property
    def span(self) -> Any:
        return self.request.span


class TelemetryMiddleware:
    """The server-span core; use it directly from any framework's request hooks.

    ``client`` is a ``TelemetryFlowClient``, the ``PatchContext`` of a patch, or ``None``
    (the client the launcher started, else the global OpenTelemetry providers). A client
    may be initialized after the middleware is built (an app factory, a server's startup
    hook): its providers are used from the first request after ``client.initialize()``;
    a request before it is served untraced, said once.
    """

    def __init__(self, client: Any = None) -> None:
        tracer, meter, excluded_urls = _telemetry_from(client)
        # A TelemetryFlowClient not initialized yet: its providers are taken at the first
        # request after client.initialize() (see _refresh_until_bound); till then requests
        # are served untraced, said once.
        self._waiting_for: Any = None
        if tracer is None:
            self._waiting_for = client
            # (an instance attribute shadowing the method, dropped once bound: every
            # request path calls refresh_propagator first, and the bound core pays nothing)
            self.refresh_propagator = self._refresh_until_bound  # type: ignore[method-assign]
            tracer = _UNTRACED
        self._use(tracer, meter)
        self._excluded = ExcludedUrls(excluded_urls)
        self._excluding = bool(self._excluded)
        self._capture_request = HeaderCapture("server", "request")
        self._capture_response = HeaderCapture("server", "response")
        self.captures_request_headers = bool(self._capture_request)
        self.captures_response_headers = bool(self._capture_response)
        self._propagator: Any = None
        self.environ_keys: tuple[tuple[str, str], ...] = ()
        self.header_names: frozenset[bytes] = frozenset()

    def _use(self, tracer: Any, meter: Any) -> None:
        """Record requests with ``tracer`` and ``meter`` (the duration's ``context``
        flag set last: a request finishing meanwhile on another thread records without)."""
        from .infrastructure.fast_histogram import fast_histogram
        from .infrastructure.leaf_spans import LeafTracer

        self._record_with_context = False
        self._tracer = tracer
        # The SDK tracer's spans without its per-span locks, lists and end-time copy (None:
        # a tracer that is not the SDK's, then tracer.start_span as usual).
        self._leaf = LeafTracer.for_tracer(tracer)
        # The servers' sampler shortcut (see instrumentation.wsgi), made for the tracer in
        # use: a core bound late to its client replaces the placeholder's, which never
        # answers (only the leaf tracer starts a root with an id drawn beforehand).
        self._shortcut = SamplerShortcut(tracer, draws_ids=self._leaf is not None)
        duration = fast_histogram(meter.create_histogram(
            "http.server.request.duration", unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )) if meter is not None else None
        self._duration = duration
        # Recording with the request's context ties exemplars to its trace wherever the
        # request ends (a server thread closing the body has no current span); the
        # ``context`` argument arrived in opentelemetry-api 1.28.
        self._record_with_context = duration is not None and \
            "context" in inspect.signature(duration.record).parameters

    def _refresh_until_bound(self) -> None:
        """``refresh_propagator`` while the client is not initialized: binds to its
        providers once it is; until then says once that requests go untraced, and why.
        (Binding makes the servers' sampler shortcut again, for the client's tracer: the
        placeholder's never answers.)"""
        client = self._waiting_for
        if client is not None:
            with _binding:
                if self._waiting_for is not None:
                    if client.is_initialized:
                        tracer, meter, _ = _telemetry_from(client)
                        self._use(tracer, meter)
                        self._waiting_for = None
                        self.__dict__.pop("refresh_propagator", None)
                    else:
                        _say_once(("TelemetryMiddleware", "client", "not initialized"),
                                  f"TelemetryMiddleware: its TelemetryFlowClient (service "
                                  f"{client.config.service_name!r}) is not initialized: "
                                  "requests are served untraced until client.initialize() "
                                  "is called (before the server starts, or in its startup "
                                  "hook)")
        TelemetryMiddleware.refresh_propagator(self)

    # ----- the public, framework-neutral API ------------------------------------------

    def start_request(self, method: str, path: str, *, route: str | None = None,
                      headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None = None,
                      scheme: str | None = None,
                      attributes: Mapping[str, Any] | None = None) -> RequestScope | None:
        """Open the server span and make it current; ``None`` when the URL is excluded
        (call ``end_request`` with whatever this returned). ``headers``: a mapping, or
        (name, value) pairs of str or bytes (an ASGI scope's)."""
        if not (type(method) is str and type(path) is str and (route is None or type(route)
                is str) and (scheme is None or type(scheme) is str)
                and (attributes is None or isinstance(attributes, Mapping))):
            method, path, route, scheme, attributes = _checked_start(
                method, path, route, scheme, attributes)
        lowered = _lowered_headers(headers) if headers else {}
        self.refresh_propagator()
        request = self.open(
            method, scheme or "http", path, "", lowered.get("host"), None,
            lowered.get("user-agent"), None, None, lowered, lowered.items())
        if request is None:
            return None
        if route:
            request.route = route
        if attributes:
            request.span.set_attributes(attributes)
        return RequestScope(request, _attach(request.context))

    def end_request(self, scope: RequestScope | None, status_code: int | None = None,
                    error: BaseException | None = None) -> None:
        """Set the status, end the span, record the duration, restore the context.

        ``error`` is taken as an exception the framework answered: recorded when the
        status is a 5xx or unknown, not when the framework made a 4xx of it. A second call
        for the same scope is said once and ignored."""
        if type(scope) is not RequestScope:
            if scope is not None:
                _say_once(("end_request", "scope", type(scope).__name__),
                          f"end_request(scope={_shown(scope)}): expected what start_request() "
                          "returned (a RequestScope, or None); ignored")
            return
        if scope.token is _ENDED:
            _say_once(("end_request", "twice"), "end_request() called again for a request "
                      "it already ended; ignored")
            return
        if not (status_code is None or type(status_code) is int):
            status_code = _checked_status(status_code)
        if not (error is None or isinstance(error, BaseException)):
            _say_once(("end_request", "error", type(error).__name__),
                      f"end_request(error=<{type(error).__name__}>): expected an exception "
                      "or None; the request is ended without it")
            error = None
        try:
            request = scope.request
            if status_code is not None:
                request.status_code = status_code
            if error is not None:
                request.error = error
            request.finish()
        finally:
            token, scope.token = scope.token, _ENDED
            _detach(token)

    # ----- for the WSGI/ASGI layers ----------------------------------------------------

    def refresh_propagator(self) -> None:
        """Learn which headers the global propagator reads (when it changes), so requests
        without any of them skip extraction entirely."""
        propagator = _get_textmap()
        if propagator is self._propagator:
            return
        try:
            fields = tuple(sorted({f.lower() for f in propagator.fields}))
        except Exception:
            fields = ()
        self.environ_keys = tuple(("HTTP_" + f.upper().replace("-", "_"), f) for f in fields)
        self.header_names = frozenset(f.encode("latin-1") for f in fields)
        self._propagator = propagator

    def open(self, method: str, scheme: str, path: str, query: str, host: str | None,
             server: tuple[str, int | None] | None, user_agent: str | None,
             client: str | None, protocol: str | None, carrier: Mapping[str, str] | None,
             headers: Iterable[tuple[str, str]] | None, trace_id: int | None = None
             ) -> _ServerRequest | None:
        """Start the server span for one request, or ``None`` (excluded URL).

        ``carrier`` holds the propagation headers found (lower-case names), or ``None``
        when there are none; ``headers`` is only iterated when header capture is on.
        ``trace_id``: a root span's id, already shown to the sampler (``SamplerShortcut``
        keeps what it drew: a second draw would be a second, independent verdict).
        """
        if host:
            address_port = _hosts.get((host, scheme))
            if address_port is None:
                address_port = _split_host(host, scheme)
        else:
            address_port = server
        if self._excluding:
            url = f"{scheme}://{host or (address_port[0] if address_port else '')}{path}"
            if self._excluded.matches(f"{url}?{query}" if query else url):
                return None
        if method in _KNOWN_METHODS:
            name_method = method
            attributes = {HTTP_REQUEST_METHOD: method, URL_SCHEME: scheme, URL_PATH: path}
        else:
            name_method = "HTTP"
            attributes = {HTTP_REQUEST_METHOD: "_OTHER", HTTP_REQUEST_METHOD_ORIGINAL: method,
                          URL_SCHEME: scheme, URL_PATH: path}
        if query:
            attributes[URL_QUERY] = redact_query(query)
        if address_port is not None:
            attributes[SERVER_ADDRESS] = address_port[0]
            if address_port[1] is not None:
                attributes[SERVER_PORT] = address_port[1]
        if protocol:
            attributes[NETWORK_PROTOCOL_VERSION] = protocol
        if user_agent:
            attributes[USER_AGENT_ORIGINAL] = user_agent
        if client:
            attributes[CLIENT_ADDRESS] = client
        if headers is not None and self.captures_request_headers:
            attributes.update(self._capture_request.attributes(headers))
        # (extracted onto an empty context, never the current one: a propagator that starts
        # from the current context (baggage, b3 …) would otherwise make the span of a request
        # whose headers hold no valid parent a child of whatever the serving task carries,
        # the process span of ``telemetryflow-run python app.py`` running uvicorn.run)
        parent = (self._propagator.extract(carrier, context=_EMPTY_CONTEXT, getter=_GETTER)
                  if carrier else _EMPTY_CONTEXT)
        leaf = self._leaf
        span = (leaf.start(name_method, _SERVER, attributes, shared=False, context=parent,
                           trace_id=trace_id)
                if leaf is not None
                else self._tracer.start_span(name_method, parent, _SERVER, attributes))
        return _ServerRequest(self, span, _set_span_in_context(span, parent),
                              attributes[HTTP_REQUEST_METHOD], name_method, scheme)

    def capture_response_headers(self, request: _ServerRequest,
                                 headers: Iterable[tuple[str, str]]) -> None:
        if self._capture_response:
            request.response_attributes = self._capture_response.attributes(headers)

    def _finish(self, request: _ServerRequest, error: BaseException | None,
                incomplete: bool, error_type: str | None = None) -> None:
        span = request.span
        route = request.route
        status_code = request.status_code
        metric = {HTTP_REQUEST_METHOD: request.method, URL_SCHEME: request.scheme}
        extra: dict[str, Any] = {}
        if route:
            metric[HTTP_ROUTE] = extra[HTTP_ROUTE] = route
            span.update_name(f"{request.name_method} {route}")
        if status_code is not None:
            metric[HTTP_RESPONSE_STATUS_CODE] = extra[HTTP_RESPONSE_STATUS_CODE] = status_code
        if request.response_attributes:
            extra.update(request.response_attributes)
        # (ordered so that a success pays for no more tests than before the answered/escaped
        # distinction: it is counted per request)
        if error is not None:  # escaped: the server's error, whatever status went out
            _record_error(span, error, metric, extra, error_type)
        elif error_type is not None:  # failed, no exception saying why (see finish)
            metric[ERROR_TYPE] = extra[ERROR_TYPE] = error_type
            span.set_status(_ERROR)
        elif status_code is not None and status_code >= 500:
            answered = request.error
            if answered is not None:
                _record_error(span, answered, metric, extra)
            else:
                metric[ERROR_TYPE] = extra[ERROR_TYPE] = str(status_code)
                span.set_status(_ERROR)
        elif status_code is None:  # no response started
            answered = request.error
            if answered is not None:
                _record_error(span, answered, metric, extra)
            elif incomplete:
                metric[ERROR_TYPE] = extra[ERROR_TYPE] = "incomplete_response"
                span.set_status(_ERROR)
        # else: below 500, and an exception a framework answered without a 5xx (Http404 →
        # 404, PermissionDenied → 403) is the client's error, not the server's.
        if extra:
            span.set_attributes(extra)
        span.end()
        duration = self._duration
        if duration is not None:
            elapsed = _perf_counter() - request.started
            if self._record_with_context:
                duration.record(elapsed, metric, context=request.context)
            else:
                duration.record(elapsed, metric)


class _UntracedTracer:
    """The tracer of a core whose client is not initialized yet: spans that record
    nothing and carry the caller's span context (so the request's calls downstream stay
    in the caller's trace), never the global providers'."""

    def start_span(self, name: str, context: Context | None = None, *args: Any,
                   **kwargs: Any) -> Any:
        return _trace.NonRecordingSpan(_trace.get_current_span(context).get_span_context())


_UNTRACED = _UntracedTracer()
_binding = threading.Lock()  # (taken only by cores whose client was not initialized)
_ENDED = object()  # a RequestScope's token once end_request has run
_MAX_SAID = 100
_said: set[tuple[str, ...]] = set()


def _say_once(key: tuple[str, ...], message: str) -> None:
    """Warn about a bad argument once per ``key`` (call, argument, kind of problem)."""
    if key not in _said and len(_said) < _MAX_SAID:
        _said.add(key)
        _diagnostics.warn(f"{message} (said once)")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _checked_start(method: Any, path: Any, route: Any, scheme: Any, attributes: Any
                   ) -> tuple[str, str, str | None, str | None, Mapping[str, Any] | None]:
    """``start_request``'s arguments once a cheap type check failed: each bad one said
    once; a non-str method, path, route or scheme becomes its str(), bad attributes go."""
    texts = []
    for argument, value, optional in (("method", method, False), ("path", path, False),
                                      ("route", route, True), ("scheme", scheme, True)):
        if isinstance(value, str) or (optional and value is None):
            texts.append(value)
            continue
        _say_once(("start_request", argument, type(value).__name__),
                  f"start_request({argument}={_shown(value)}): expected a str"
                  f"{' or None' if optional else ''}; taken as its str()")
        texts.append(_text(value))
    if attributes is not None and not isinstance(attributes, Mapping):
        _say_once(("start_request", "attributes", type(attributes).__name__),
                  f"start_request(attributes={_shown(attributes)}): expected a mapping of "
                  "attribute names to values, or None; the span is started without them")
        attributes = None
    return texts[0], texts[1], texts[2], texts[3], attributes


def _lowered_headers(headers: Any) -> dict[str, str]:
    """{lower-case name: value} from a mapping or (name, value) pairs, str or bytes;
    anything else is said once and ignored (no trace context, host or user agent)."""
    if isinstance(headers, Mapping):
        try:
            return {k.lower(): v for k, v in headers.items()}
        except AttributeError:  # (a name that is not a str: decoded below)
            pass
        pairs: Any = headers.items()
    else:
        pairs = headers
    try:
        return {_latin1(k).lower(): _latin1(v) for k, v in pairs}
    except (TypeError, ValueError):
        _say_once(("start_request", "headers", type(headers).__name__),
                  f"start_request(headers={_shown(headers)}): expected a mapping of header "
                  "names to values, or (name, value) pairs; the headers are ignored")
        return {}


def _latin1(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    raise TypeError(f"a header name or value of type {type(value).__name__}")


def _checked_status(status_code: Any) -> int | None:
    """A ``status_code`` that is not an int: said once; an integral float or a numeric
    str is taken as the int it stands for, anything else as no status."""
    try:
        number = int(status_code) if not isinstance(status_code, bool) else None
        if number is not None and number != float(status_code):
            number = None
    except (TypeError, ValueError, OverflowError):
        number = None
    outcome = f"taken as {number}" if number is not None else "the status is left out"
    _say_once(("end_request", "status_code", type(status_code).__name__),
              f"end_request(status_code={_shown(status_code)}): expected an int (e.g. 200) "
              f"or None; {outcome}")
    return number


def _record_error(span: Any, error: BaseException, metric: dict[str, Any],
                  extra: dict[str, Any], error_type: str | None = None) -> None:
    metric[ERROR_TYPE] = extra[ERROR_TYPE] = error_type or _error_type(error)
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _split_host(host: str, scheme: str) -> tuple[str, int | None]:
    """``Host`` header → (address, port); the scheme's default port when none is given."""
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        address, rest = host[1:end], host[end + 1:]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        address, sep, port_text = host.rpartition(":")
        if not sep:
            address, port_text = host, ""
    port = int(port_text) if port_text.isdigit() else _DEFAULT_PORTS.get(scheme)
    result = (address, port)
    if len(_hosts) >= _HOST_CACHE_SIZE:
        _hosts.clear()
    _hosts[host, scheme] = result
    return result


def _telemetry_from(source: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """(tracer, meter, excluded URL patterns) from a PatchContext, a client, or the
    process-wide SDK; the global OpenTelemetry API when nothing of ours runs (None or a
    NoOpClient). A TelemetryFlowClient not initialized: no tracer or meter (None) yet."""
    from .client import NoOpClient, TelemetryFlowClient, get_client
    from .instrumentation.registry import PatchContext

    if isinstance(source, PatchContext):
        return source.tracer, source.meter, _excluded_urls(source.config)
    if source is None:
        source = get_client()
    elif not isinstance(source, (TelemetryFlowClient, NoOpClient)):
        raise TelemetryFlowError(
            f"TelemetryMiddleware(client={_shown(source)}): expected a TelemetryFlowClient, "
            f"get_client() or None (the client running in this process), got "
            f"{type(source).__name__}")
    if isinstance(source, TelemetryFlowClient):
        if not source.is_initialized:  # (or shut down): tracer None, bound later
            return None, None, _excluded_urls(source.config)
        handler = source.handler
        return handler.tracer, handler.meter, _excluded_urls(source.config)
    # No SDK of ours: the global providers (proxies until somebody sets them).
    from opentelemetry import metrics

    from ._version import __version__

    return (_trace.get_tracer("telemetryflow", __version__),
            metrics.get_meter("telemetryflow", __version__),
            _excluded_urls(_config_from_environment()))


def _excluded_urls(config: Any) -> tuple[str, ...]:
    return tuple(getattr(config, "excluded_urls", ()) or ())


def _config_from_environment() -> Any:
    try:
        from .domain.config import load_config

        return load_config()[0]
    except Exception:
        return None


def __getattr__(name: str) -> Any:
    # The framework classes import their framework; load them only when asked for.
    if name == "FlaskTelemetryMiddleware":
        from .instrumentation.flask import FlaskTelemetryMiddleware

        return FlaskTelemetryMiddleware
    if name == "FastAPITelemetryMiddleware":
        from .instrumentation.starlette import FastAPITelemetryMiddleware

        return FastAPITelemetryMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
