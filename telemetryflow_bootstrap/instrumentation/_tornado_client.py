"""``tornado`` client (the ``tornado`` entry's other half, see ``instrumentation.tornado``):
one CLIENT span per request tornado's ``SimpleAsyncHTTPClient`` sends, the default
``AsyncHTTPClient`` (``await AsyncHTTPClient().fetch(...)``) and the one the blocking
``HTTPClient`` runs; each redirect it follows is a request, and a span, of its own.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds), per request sent. The requests of a redirect
    chain after the first carry ``http.request.resend_count`` = 1, 2, ... and are siblings
    under the caller's span, as for the other HTTP clients (tornado sends each redirect
    through ``fetch()`` again, from its connection's callback: we see every hop, its own
    status code included, ``302`` first, then the final one). A span starts when ``fetch()``
    hands the request over (time waiting in tornado's ``max_clients`` queue included,
    connecting too) and ends when the response headers have arrived, as for every other
    HTTP client here (tornado reads the body before ``fetch()`` returns; that reading is
    not part of the span). ``raise_error=False`` changes what the caller sees, not the span.
Errors
    a 4xx/5xx answer: ``error.type`` the status code (``HTTPClientError`` is how tornado
    reports it to the caller), status ERROR. A request that got no answer (tornado's code
    599): ``error.type`` the exception the caller gets, by its fully-qualified class name
    (``ConnectionRefusedError``, ``tornado.simple_httpclient.HTTPTimeoutError``,
    ``tornado.simple_httpclient.HTTPStreamClosedError``), with an exception event.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``
    (an internationalised name in its ASCII form), ``server.port``,
    ``network.protocol.version``, ``http.response.status_code``, ``error.type``,
    ``http.request.resend_count``, captured ``http.request.header.*``/
    ``http.response.header.*``. metric: ``http.request.method``,
    ``http.response.status_code``, ``url.scheme``, ``server.address``, ``server.port``,
    ``network.protocol.version``, ``error.type`` — never the URL.
Headers
    ``traceparent`` (and whatever the global propagator writes) goes into the copy of the
    headers ``fetch()`` makes for each request (tornado adds ``Host``, ``Connection`` …
    there too; it is set on the ``HTTPRequest`` passed in, replacing the caller's mapping,
    never changing it). A ``Traceparent`` the caller set, or a previous fetch of the same
    ``HTTPRequest`` left there, is replaced (tornado's headers are case-insensitive), never
    sent twice.
Not traced
    ``CurlAsyncHTTPClient`` (libcurl follows redirects on its own, out of sight),
    ``tornado.websocket.websocket_connect``'s handshake (it drives the connection itself,
    not through ``fetch()``), and any request while instrumentation is suppressed (our
    exporter).
How
    ``SimpleAsyncHTTPClient.fetch_impl`` (one call per request, redirects included) starts
    the span, injects the headers and wraps the callback tornado calls with the response
    (which ends a span still open: no answer came); ``_HTTPConnection.headers_received``
    ends it with the status line and headers; ``_HTTPConnection.finish`` (where tornado
    follows a redirect) tells the next ``fetch_impl`` it is a resend of that chain.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from ..infrastructure.current_context import attach, reset
from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import ClientCall, ClientTelemetry, argument, ascii_host, finish

# On the request tornado's connection holds (a ``_RequestProxy`` made per fetch): its call.
_CALL = "_telemetryflow_call"
# Set by ``_HTTPConnection.finish`` while tornado may follow a redirect from there: the call
# whose answer was the redirect. The next ``fetch_impl`` in that context takes it (and
# clears it), so only the redirect's request counts as its resend.
_REDIRECTED_FROM: ContextVar[ClientCall | None] = ContextVar(
    "telemetryflow_tornado_redirected_from", default=None)


def patch_client(module: Any, context: Any) -> None:
    """Wrap ``SimpleAsyncHTTPClient.fetch_impl`` and ``_HTTPConnection.headers_received``/
    ``finish`` (``module``: ``tornado.simple_httpclient``)."""
    telemetry = ClientTelemetry(context, "tornado")
    connection_class = module._HTTPConnection

    def fetch_impl(wrapped: Any, instance: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        # fetch_impl(request, callback)
        if len(args) != 2 or kwargs or http_suppressed():
            return wrapped(*args, **kwargs)
        request, callback = args
        call = _begin(telemetry, request)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            return wrapped(request, functools.partial(_answered, call, callback))
        except BaseException as exc:
            call.end(exception=exc)
            raise

    def connection_finish(wrapped: Any, instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
        call = getattr(instance.request, "__dict__", {}).get(_CALL)
        if call is None:
            return wrapped(*args, **kwargs)
        token = _REDIRECTED_FROM.set(call)
        try:
            return wrapped(*args, **kwargs)
        finally:
            _REDIRECTED_FROM.reset(token)

    def headers_arrived(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        call = getattr(instance.request, "__dict__", {}).get(_CALL)
        if call is None or call.ended:
            return
        first_line = argument(args, kwargs, 0, "first_line")
        code = getattr(first_line, "code", None)
        if type(code) is not int or code < 200:  # (an interim 1xx: the answer is to come)
            return
        version = getattr(first_line, "version", None)
        call.end(code, version[5:] if isinstance(version, str) and
                 version.startswith("HTTP/") else None, argument(args, kwargs, 1, "headers"))

    async def headers_received_async(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                     kwargs: dict[str, Any]) -> Any:
        headers_arrived(instance, args, kwargs)
        return await wrapped(*args, **kwargs)

    def headers_received(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        headers_arrived(instance, args, kwargs)
        return wrapped(*args, **kwargs)

    received = vars(connection_class).get("headers_received")
    wrap_once(module.SimpleAsyncHTTPClient, "fetch_impl", fetch_impl)
    wrap_once(connection_class, "headers_received",
              headers_received_async if inspect.iscoroutinefunction(received)
              else headers_received)
    wrap_once(connection_class, "finish", connection_finish)


def _begin(telemetry: ClientTelemetry, request: Any) -> ClientCall | None:
    """Start the span of ``request`` (a ``_RequestProxy``), inject the trace headers into
    the headers ``fetch()`` copied for it, and leave the call on it for the connection.
    Never raises: if our code fails, the request goes out untraced."""
    redirected_from = _REDIRECTED_FROM.get()
    call = None
    try:
        url = request.url
        parts = urlsplit(url)
        host = parts.hostname
        if host and not host.isascii():
            host = ascii_host(host)
        if redirected_from is None:
            call = telemetry.begin(request.method, url, parts.scheme, host, parts.port,
                                   request.headers)
        else:
            _REDIRECTED_FROM.set(None)  # (this request alone is the redirect's)
            chain = redirected_from.resends()
            # (a sibling under the caller's span, whatever context the connection runs in)
            token = attach(chain.parent)
            try:
                call = telemetry.begin(request.method, url, parts.scheme, host, parts.port,
                                       request.headers, chain.next(), chain.parent)
            finally:
                reset(token)
            if call is not None:
                call.chain = chain
        if call is None:  # excluded: no span, no trace headers
            return None
        call.inject(request.headers)
        request.__dict__[_CALL] = call
        return call
    except Exception as exc:
        if call is not None:
            call.end()
        telemetry.warn(exc)
        return None


def _answered(call: ClientCall, callback: Any, response: Any) -> None:
    """tornado's callback with the response: a span still open got no answer (connection
    refused, timeout, connection closed before the headers), unless the answer arrived
    some way we did not see."""
    if not call.ended:
        error = getattr(response, "error", None)
        if error is not None and not getattr(response, "_error_is_response_code", False):
            call.end(exception=error)
        else:
            finish(call, _outcome, response)
    callback(response)


def _outcome(response: Any) -> tuple[Any, Any, Any]:
    return response.code, None, response.headers
