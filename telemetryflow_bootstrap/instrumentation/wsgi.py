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
Environment variables (read once, at construction): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from opentelemetry import context as _otel_context

from .. import _diagnostics
from ..middleware import REQUEST_KEY, SKIPPED, TelemetryMiddleware, _ServerRequest
from ._http_common import suppressed

__all__ = ["TelemetryWSGIMiddleware"]

_attach = _otel_context.attach
_detach = _otel_context.detach
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
            request = open_environ(self._core, environ)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "wsgi-open", f"WSGI request served uninstrumented ({type(exc).__name__}: {exc})")
            request = None
        if request is None:
            environ[REQUEST_KEY] = SKIPPED
            return app(environ, start_response)
        environ[REQUEST_KEY] = request
        core, route_of = self._core, self._route_of

        def _start_response(status: str, headers: list[tuple[str, str]],
                            exc_info: Any = None) -> Any:
            try:
                request.status_code = int(status[:3])
                if route_of is not None and request.route is None:
                    request.route = route_of(environ)
                if core.captures_response_headers:
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
            _detach(token)
        return _ResponseBody(body, request)


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


class _ResponseBody:
    """The application's iterable, ending the server span once the body has gone out: when
    the server has taken the last chunk (the iterator is exhausted) or closes it, whichever
    comes first. Test clients that read the body but never close the response still get
    their span."""

    __slots__ = ("_body", "_iterator", "_request", "_with_context")

    def __init__(self, body: Iterable[bytes], request: _ServerRequest) -> None:
        self._body = body
        self._request = request
        self._iterator: Iterator[bytes] | None = None
        # Nothing of the application's runs while a list is sent: no context to attach.
        self._with_context = type(body) not in (list, tuple)

    def __iter__(self) -> Iterator[bytes]:
        self._iterator = iter(self._body)
        return self

    def __next__(self) -> bytes:
        if not self._with_context:
            try:
                return next(self._iterator)  # type: ignore[arg-type]
            except StopIteration:
                self._request.finish()
                raise
        token = _attach(self._request.context)
        try:
            return next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:
            self._request.finish()
            raise
        except BaseException as error:
            self._request.error = error
            raise
        finally:
            _detach(token)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as error:
            self._request.finish(error)
            raise
        self._request.finish()


def open_environ(core: TelemetryMiddleware, environ: dict[str, Any], scheme: str | None = None,
          protocol: str | None = None) -> _ServerRequest | None:
    """Open the request an environ describes (Django passes ``request.META``, whose ASGI
    flavour lacks the scheme and protocol: those come as arguments)."""
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
    path = environ.get("PATH_INFO", "")
    script = environ.get("SCRIPT_NAME")
    if script:
        path = script + path
    if not path.isascii():  # PEP 3333 strings are bytes decoded as latin-1
        path = path.encode("latin-1", "replace").decode("utf-8", "replace")
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
        environ.get("REQUEST_METHOD", "GET"),
        scheme or environ.get("wsgi.url_scheme", "http"),
        path or "/", environ.get("QUERY_STRING", ""), host, server,
        environ.get("HTTP_USER_AGENT"),
        forwarded.split(",", 1)[0].strip() if forwarded else environ.get("REMOTE_ADDR"),
        protocol, carrier, environ_headers(environ) if core.captures_request_headers else None)


def environ_headers(environ: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            yield key[5:].replace("_", "-").lower(), value
        elif key in _EXTRA_HEADERS:
            yield _EXTRA_HEADERS[key], value
