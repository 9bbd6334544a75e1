"""WSGI server spans: ``TelemetryWSGIMiddleware`` for any WSGI application, and the request
handling the Flask integration reuses.

Produces one SERVER span per request, named ``{method} {http.route}`` (``{method}`` when the
framework tells no route), continuing the trace of the incoming ``traceparent`` (the global
propagator), and one ``http.server.request.duration`` histogram point (seconds; attributes
``http.request.method``, ``url.scheme``, ``http.route``, ``http.response.status_code``,
``error.type``). Span attributes: ``http.request.method`` (+ ``_original``), ``url.scheme``,
``url.path``, ``url.query`` (signature-like values redacted), ``server.address``,
``server.port``, ``network.protocol.version``, ``user_agent.original``, ``client.address``
(first ``X-Forwarded-For`` entry, else ``REMOTE_ADDR``), ``http.response.status_code``,
``http.route``, ``error.type``, and captured headers when configured.

The span ends when the body has gone out, a streamed one included: when the server has
taken the last chunk or closes the response iterable, whichever comes first. Chunks are
produced with the span current, so work done inside a streaming generator is its child.
An exception the application raises, while it is called or while its body is produced, is
recorded (exception event, ``error.type`` = its fully-qualified class name, status ERROR;
on the duration point too), also when a 2xx status had been sent before it: that response
never completed. The server sees the body as it would unwrapped (``_wsgi_body``): its
``len()`` (waitress and wsgiref send a one-item body with a ``Content-Length``), and a
``wsgi.file_wrapper`` body is the application's own object (gunicorn's sendfile, waitress's
channel, uWSGI's sendfile), its span ending when the server closes it.
Environment variables (read once, at construction): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``.

A request the tracer's sampler drops (sample rate 0; an unsampled ``traceparent`` under the
parent-based default; a new trace whose id a rate such as 0.1 does not keep) builds no span
attributes and skips ``start_span``: the sampler's verdict is known beforehand
(``_http_common.SamplerShortcut``, which draws a new trace's id first when the verdict
depends on it) and the request gets the non-recording span ``start_span`` would have made
(``UnsampledRequest``), so the trace still propagates, unsampled, to what the application
calls. Most of what such a request still costs is its duration point (the SDK's histogram
record). The ASGI and Django integrations share this.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import trace as _trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_SCHEME

from .. import _diagnostics
from ..infrastructure.current_context import attach as _attach
from ..infrastructure.current_context import reset as _reset
from ..infrastructure.fast_histogram import FastHistogram
from ..middleware import (
    _GETTER,
    _KNOWN_METHODS,
    REQUEST_KEY,
    SKIPPED,
    TelemetryMiddleware,
    _ServerRequest,
)
from ._error_type import error_type as error_type_of
from ._http_common import EMPTY_CONTEXT, SPAN_KEY, SamplerShortcut, Verdict, suppressed
from ._wsgi_body import body_classes as _body_classes
from ._wsgi_body import response_body as _response_body

__all__ = ["TelemetryWSGIMiddleware"]

_set_span_in_context = _trace.set_span_in_context
_perf_counter = time.perf_counter
_EXTRA_HEADERS = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}

RouteOf = Callable[[dict[str, Any]], "str | None"]


class TelemetryWSGIMiddleware:
    """Wrap any WSGI application: ``app = TelemetryWSGIMiddleware(app)``.

    ``client``: a ``TelemetryFlowClient`` (default: the one running in this process, else
    the global OpenTelemetry providers). Safe to combine with automatic instrumentation:
    whichever layer sees the request first makes its one server span.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], client: Any = None) -> None:
        self.app = app
        self._server = WSGIServer(TelemetryMiddleware(client))

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._server.call(self.app, environ, start_response)


class WSGIServer:
    """Runs one WSGI call inside a server span; ``route_of(environ)`` (a framework's route
    lookup) is asked when the response starts, while the framework still knows it."""

    __slots__ = ("_core", "_route_of")

    def __init__(self, core: TelemetryMiddleware, route_of: RouteOf | None = None) -> None:
        self._core = core
        self._route_of = route_of

    def call(self, app: Callable[..., Iterable[bytes]], environ: dict[str, Any],
             start_response: Callable[..., Any]) -> Iterable[bytes]:
        outer = environ.get(REQUEST_KEY)
        if outer is not None:  # an outer middleware has the span: at most tell it the route
            if outer is SKIPPED or self._route_of is None or outer.route is not None:
                return app(environ, start_response)
            return app(environ, _telling_route(outer, self._route_of, environ, start_response))
        if suppressed():
            return app(environ, start_response)
        try:
            request = open_environ(self._core, environ, shortcut=True)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "wsgi-open", f"WSGI request served uninstrumented ({type(exc).__name__}: {exc})")
            request = None
        if request is None:
            environ[REQUEST_KEY] = SKIPPED
            return app(environ, start_response)
        environ[REQUEST_KEY] = request
        core, route_of = self._core, self._route_of
        # (captured headers go to the span: an unsampled one keeps none)
        captures = core.captures_response_headers and type(request) is not UnsampledRequest

        def _start_response(status: str, headers: list[tuple[str, str]],
                            exc_info: Any = None) -> Any:
            try:
                request.status_code = int(status[:3])
                if route_of is not None and request.route is None:
                    request.route = route_of(environ)
                if captures:
                    core.capture_response_headers(request, headers)
            except Exception:  # a malformed status is the server's to complain about
                pass
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = _attach(request.context)
        try:
            body = app(environ, _start_response)
        except BaseException as error:
            request.finish(error)
            raise
        finally:
            _reset(token)
        body_class = _body_classes.get(type(body))  # (see _wsgi_body)
        if body_class is not None:
            return body_class(body, request)
        return _response_body(body, request, environ)


def _telling_route(outer: _ServerRequest, route_of: RouteOf, environ: dict[str, Any],
                   start_response: Callable[..., Any]) -> Callable[..., Any]:
    def _start_response(status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Any:
        if outer.route is None:
            with contextlib.suppress(Exception):  # a framework we misread: no route
                outer.route = route_of(environ)
        if exc_info is None:
            return start_response(status, headers)
        return start_response(status, headers, exc_info)

    return _start_response


def open_environ(core: TelemetryMiddleware, environ: dict[str, Any], scheme: str | None = None,
                 protocol: str | None = None, shortcut: bool = False
                 ) -> _ServerRequest | None:
    """Open the request an environ describes (Django passes ``request.META``, whose ASGI
    flavour lacks the scheme and protocol: those come as arguments). With ``shortcut`` a
    request the sampler drops skips everything only a recorded span would keep (the core's
    ``SamplerShortcut``, taken once ``refresh_propagator`` has run: a core bound late to its
    client makes a new one for the client's tracer there, at its first request)."""
    core.refresh_propagator()
    carrier: dict[str, str] | None = None
    keys = core.environ_keys
    if keys:
        for key, field in keys:
            value = environ.get(key)
            if value is not None:
                if carrier is None:
                    carrier = {}
                carrier[field] = value
    else:  # a propagator that does not declare its fields: offer every header
        carrier = dict(environ_headers(environ))
    if scheme is None:
        scheme = environ.get("wsgi.url_scheme", "http")
    trace_id = None
    if shortcut:
        sampler_shortcut = core._shortcut
        verdict = sampler_shortcut.decide(carrier, core._propagator, _GETTER)
        if verdict is not None:
            if not verdict.sampled:
                if core._excluding and _excluded(core, environ, scheme):
                    return None
                return unsampled_request(core, sampler_shortcut, verdict,
                                         environ.get("REQUEST_METHOD", "GET"), scheme)
            trace_id = verdict.trace_id
    path = _path(environ)
    host = environ.get("HTTP_HOST")
    server = None
    if not host and environ.get("SERVER_NAME"):
        port = str(environ.get("SERVER_PORT", ""))
        server = (environ["SERVER_NAME"], int(port) if port.isdigit() else None)
    if protocol is None:
        server_protocol = environ.get("SERVER_PROTOCOL", "")
        if server_protocol.startswith("HTTP/"):
            protocol = server_protocol[5:]
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    return core.open(
        environ.get("REQUEST_METHOD", "GET"), scheme, path, environ.get("QUERY_STRING", ""),
        host, server, environ.get("HTTP_USER_AGENT"),
        forwarded.split(",", 1)[0].strip() if forwarded else environ.get("REMOTE_ADDR"),
        protocol, carrier, environ_headers(environ) if core.captures_request_headers else None,
        trace_id)


def _path(environ: dict[str, Any]) -> str:
    path = environ.get("PATH_INFO", "")
    script = environ.get("SCRIPT_NAME")
    if script:
        path = script + path
    if not path.isascii():  # PEP 3333 strings are bytes decoded as latin-1
        path = path.encode("latin-1", "replace").decode("utf-8", "replace")
    return path or "/"


def _excluded(core: TelemetryMiddleware, environ: dict[str, Any], scheme: str) -> bool:
    # The URL TelemetryMiddleware.open would search: Host header, else the server name.
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or ""
    return url_excluded(core, scheme, host, _path(environ), environ.get("QUERY_STRING", ""))


# ----- requests the sampler drops --------------------------------------------------------


def url_excluded(core: TelemetryMiddleware, scheme: str, host: str, path: str,
                 query: str) -> bool:
    """``core``'s exclusion test as ``TelemetryMiddleware.open`` makes it, for a dropped
    request that never gets there: an excluded URL gets no duration point either."""
    url = f"{scheme}://{host}{path}"
    return core._excluded.matches(f"{url}?{query}" if query else url)


def unsampled_request(core: TelemetryMiddleware, shortcut: SamplerShortcut,
                      verdict: Verdict, method: str, scheme: str) -> UnsampledRequest:
    """The request for a drop ``SamplerShortcut.decide`` answered: its non-recording span
    current in its context, so what the application calls downstream still carries the
    trace (not sampled)."""
    parent = verdict.parent
    span = shortcut.span(verdict)
    # (set_span_in_context copies the parent: a new trace's has nothing to copy)
    context = Context({SPAN_KEY: span}) if parent is EMPTY_CONTEXT \
        else _set_span_in_context(span, parent)
    if method in _KNOWN_METHODS:
        return UnsampledRequest(core, span, context, method, method, scheme)
    return UnsampledRequest(core, span, context, "_OTHER", "HTTP", scheme)


class UnsampledRequest(_ServerRequest):
    """A request whose span the sampler dropped: finishing it records only the
    ``http.server.request.duration`` point (metrics count every request), with the
    attributes ``TelemetryMiddleware`` gives it; the span records nothing, so nothing is
    set on it."""

    __slots__ = ()

    def finish(self, error: BaseException | None = None, incomplete: bool = False,
               error_type: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            core = self._core
            duration = core._duration
            if duration is None:
                return
            elapsed = _perf_counter() - self.started
            # (a dict built per request: a cached one measured no cheaper, the SDK copies
            # and hashes it either way)
            attributes = {HTTP_REQUEST_METHOD: self.method, URL_SCHEME: self.scheme}
            route = self.route
            if route:
                attributes[HTTP_ROUTE] = route
            status_code = self.status_code
            if status_code is not None:
                attributes[HTTP_RESPONSE_STATUS_CODE] = status_code
            # (the rules, and the order, of TelemetryMiddleware._finish)
            if error_type is not None:
                attributes[ERROR_TYPE] = error_type
            elif error is not None:
                attributes[ERROR_TYPE] = error_type_of(error)
            elif status_code is not None and status_code >= 500:
                answered = self.error
                attributes[ERROR_TYPE] = str(status_code) if answered is None \
                    else error_type_of(answered)
            elif status_code is None:
                answered = self.error
                if answered is not None:
                    attributes[ERROR_TYPE] = error_type_of(answered)
                elif incomplete:
                    attributes[ERROR_TYPE] = "incomplete_response"
            if type(duration) is FastHistogram:  # (which need not ask the span)
                duration.record(elapsed, attributes, self.context, False)
            elif core._record_with_context:
                duration.record(elapsed, attributes, context=self.context)
            else:
                duration.record(elapsed, attributes)
        except Exception as exc:  # pragma: no cover - defensive: never break the response
            _diagnostics.warn_every_minute(
                "server-finish", f"could not record a request duration ({type(exc).__name__}: "
                f"{exc})")


def environ_headers(environ: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), value
        elif key in _EXTRA_HEADERS:
            yield _EXTRA_HEADERS[key], value
