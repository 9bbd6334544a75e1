"""The tornado instrumentation: a real ``tornado.web.Application`` served by tornado's own
``HTTPServer`` on loopback (in the test's event loop, or in a thread for the blocking
``HTTPClient``), called by tornado's real (instrumented) clients; plus the registry entry
``tornado`` in fresh interpreters.

Patching is global: the module fixture patches tornado once, with in-memory exporters every
test starts empty, and removes the wrappers when the module is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from unittest import mock

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.simple_httpclient
import tornado.web
import tornado.websocket
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tornado.routing import PathMatches, Rule

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _method_wrappers as method_wrappers
from telemetryflow_bootstrap.instrumentation import tornado as tornado_patch
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.middleware import TelemetryMiddleware

from ..e2e.launcher import REPO
from .test_aiohttp_client import Telemetry

_WRAPPED = ((tornado.web._HandlerDelegate, "headers_received"),
            (tornado.web._HandlerDelegate, "execute"),
            (tornado.web._HandlerDelegate, "on_connection_close"),
            (tornado.web.RequestHandler, "finish"),
            (tornado.web.RequestHandler, "_handle_request_exception"),
            (tornado.simple_httpclient.SimpleAsyncHTTPClient, "fetch_impl"),
            (tornado.simple_httpclient._HTTPConnection, "headers_received"),
            (tornado.simple_httpclient._HTTPConnection, "finish"))
_CAPTURE_ENV = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-demo",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "x-answer",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "x-demo",
}
_UNSAMPLED = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                         is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))


@pytest.fixture(scope="module")
def _patched() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    meter_provider = MeterProvider(metric_readers=[reader])
    context = PatchContext(
        tracer=tracer_provider.get_tracer("test"), meter=meter_provider.get_meter("test"),
        logger_provider=None, config=TelemetryConfig(excluded_urls=("/health",)), handler=None)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    with mock.patch.dict(os.environ, _CAPTURE_ENV):  # header capture is read at patch time
        tornado_patch.patch(tornado.web, context)
    try:
        yield Telemetry(exporter, reader, tracer_provider.get_tracer("test-app"), context)
    finally:
        for owner, name in _WRAPPED:
            handle = method_wrappers.our_wrapper(owner, name)
            if handle is not None:
                method_wrappers.unwrap(owner, name, handle)
        propagate.set_global_textmap(previous)
        meter_provider.shutdown()


@pytest.fixture
def telemetry(_patched: Telemetry) -> Iterator[Telemetry]:
    _patched.reset()
    yield _patched
    _patched.reset()


# ----- the application ------------------------------------------------------------------------

class _Item(tornado.web.RequestHandler):
    def get(self, item: str) -> None:
        self.set_header("X-Answer", "yes")
        self.write(f"item {item}")


class _Named(tornado.web.RequestHandler):
    """Listed under two rules: the route must say which one matched."""

    def get(self, *args: str, **kwargs: str) -> None:
        self.write("named")


class _Hop(tornado.web.RequestHandler):
    async def get(self) -> None:
        port = self.application.settings["port"][0]
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/items/7")
        self.write(b"hop -> " + response.body)


class _Boom(tornado.web.RequestHandler):
    def get(self) -> None:
        raise ValueError("boom")


class _Raise(tornado.web.RequestHandler):
    async def get(self, code: str) -> None:
        raise tornado.web.HTTPError(int(code))


class _SendError(tornado.web.RequestHandler):
    def get(self) -> None:
        self.send_error(503)


class _Finish(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("early")
        raise tornado.web.Finish()


class _Stream(tornado.web.RequestHandler):
    async def get(self) -> None:
        for chunk in (b"a", b"b"):
            self.write(chunk)
            await self.flush()
        self.application.settings["written"].append(time.time_ns())


class _BrokenStream(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write(b"partial")
        await self.flush()
        raise RuntimeError("cut short")


class _TraceId(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(f"{trace.get_current_span().get_span_context().trace_id:032x}")


class _Headers(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"traceparent": self.request.headers.get_list("Traceparent")})


class _Redirect(tornado.web.RequestHandler):
    def get(self) -> None:
        self.redirect("/headers")


class _Slow(tornado.web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0.5)
        self.application.settings["written"].append(time.time_ns())
        self.write("late")


class _Socket(tornado.websocket.WebSocketHandler):
    def open(self) -> None:
        self.write_message(f"{trace.get_current_span().get_span_context().trace_id:032x}")


def _app() -> tornado.web.Application:
    return tornado.web.Application([
        (r"/items/([0-9]+)", _Item),
        (r"/named/(?P<name>[a-z]+)$", _Named),
        (r"/other/([a-z]+)", _Named),
        Rule(PathMatches(r"/api/.*"), [(r"/api/v1/(\w+)", _Item)]),
        (r"/hop", _Hop),
        (r"/boom", _Boom),
        (r"/raise/([0-9]+)", _Raise),
        (r"/send-error", _SendError),
        (r"/finish", _Finish),
        (r"/stream", _Stream),
        (r"/broken-stream", _BrokenStream),
        (r"/trace-id", _TraceId),
        (r"/headers", _Headers),
        (r"/redirect", _Redirect),
        (r"/slow", _Slow),
        (r"/health", _TraceId),
        (r"/ws", _Socket),
    ], port=[0], written=[])


def _serve(scenario: Callable[[str, tornado.web.Application], Awaitable[Any]]) -> Any:
    """Serve ``_app()`` on a loopback port in this event loop, run ``scenario(base URL,
    app)`` against it, stop the server."""
    async def main() -> Any:
        app = _app()
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        app.settings["port"][0] = port
        try:
            return await scenario(f"http://127.0.0.1:{port}", app)
        finally:
            server.stop()
            await server.close_all_connections()

    return asyncio.run(main())


@contextlib.contextmanager
def _served_in_a_thread() -> Iterator[str]:
    """``_app()`` served by an IOLoop in a thread of its own: its base URL."""
    started = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            app = _app()
            sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
            server = tornado.httpserver.HTTPServer(app)
            server.add_sockets(sockets)
            app.settings["port"][0] = sockets[0].getsockname()[1]
            state.update(loop=asyncio.get_running_loop(), stop=asyncio.Event(),
                         url=f"http://127.0.0.1:{app.settings['port'][0]}")
            started.set()
            await state["stop"].wait()
            server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


async def _fetch(url: str, **kwargs: Any) -> tornado.httpclient.HTTPResponse:
    return await tornado.httpclient.AsyncHTTPClient().fetch(url, raise_error=False, **kwargs)


def _kinds(telemetry: Telemetry, kind: SpanKind) -> list[Any]:
    return telemetry.spans(kind)


# ----- the server -----------------------------------------------------------------------------

def test_route_named_server_span_continues_the_callers_trace(telemetry: Telemetry) -> None:
    """A request to /items/([0-9]+) is one SERVER span named after the URLSpec's pattern,
    the child of the client's span, with the server attributes, captured headers and a
    duration point carrying method, scheme, route and status."""
    async def scenario(url: str, app: tornado.web.Application) -> int:
        with telemetry.tracer.start_as_current_span("caller"):
            response = await _fetch(f"{url}/items/42?page=2&sig=s3cret",
                                    headers={"X-Demo": "d"})
        return response.code

    assert _serve(scenario) == 200
    [server] = _kinds(telemetry, SpanKind.SERVER)
    [client] = _kinds(telemetry, SpanKind.CLIENT)
    assert server.name == "GET /items/([0-9]+)"
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    attributes = dict(server.attributes)
    port = attributes["server.port"]
    assert attributes == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/items/42",
        "url.query": "page=2&sig=REDACTED", "server.address": "127.0.0.1",
        "server.port": port, "network.protocol.version": "1.1",
        "user_agent.original": f"Tornado/{tornado.version}",
        "client.address": "127.0.0.1", "http.route": "/items/([0-9]+)",
        "http.response.status_code": 200, "http.request.header.x-demo": ("d",),
        "http.response.header.x-answer": ("yes",)}
    assert server.status.status_code is StatusCode.UNSET
    [point] = telemetry.points("http.server.request.duration")
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "http.route": "/items/([0-9]+)",
                                      "http.response.status_code": 200}


def test_the_route_is_the_rule_that_matched(telemetry: Telemetry) -> None:
    """A handler class listed under two rules is named by the one that matched (its
    ``$`` left out); a rule nested in another router by its own, full-path pattern."""
    async def scenario(url: str, app: tornado.web.Application) -> None:
        for path in ("/named/ann", "/other/bob", "/api/v1/users"):
            assert (await _fetch(url + path)).code == 200

    _serve(scenario)
    assert [s.name for s in _kinds(telemetry, SpanKind.SERVER)] == [
        "GET /named/(?P<name>[a-z]+)", "GET /other/([a-z]+)", r"GET /api/v1/(\w+)"]


def test_a_client_call_in_the_handler_is_the_server_spans_child(telemetry: Telemetry) -> None:
    """A coroutine handler runs with its SERVER span current: the AsyncHTTPClient call it
    makes is that span's CLIENT child, and the request it sends is served in the same
    trace."""
    async def scenario(url: str, app: tornado.web.Application) -> bytes:
        return (await _fetch(f"{url}/hop")).body

    assert _serve(scenario) == b"hop -> item 7"
    outer, inner = _kinds(telemetry, SpanKind.SERVER)
    first, second = _kinds(telemetry, SpanKind.CLIENT)
    assert (outer.name, inner.name) == ("GET /hop", "GET /items/([0-9]+)")
    assert outer.parent.span_id == first.context.span_id
    assert second.parent.span_id == outer.context.span_id
    assert inner.parent.span_id == second.context.span_id
    assert len({s.context.trace_id for s in (outer, inner, first, second)}) == 1


@pytest.mark.parametrize(("path", "name", "status", "error_type"), [
    ("/boom", "GET /boom", 500, "ValueError"),
    ("/raise/503", "GET /raise/([0-9]+)", 503, "tornado.web.HTTPError"),
    ("/raise/404", "GET /raise/([0-9]+)", 404, None),
    ("/send-error", "GET /send-error", 503, "503"),
    ("/finish", "GET /finish", 200, None),
    ("/nowhere", "GET", 404, None),
])
def test_exceptions_and_send_error_get_their_status(telemetry: Telemetry, path: str,
                                                    name: str, status: int,
                                                    error_type: str | None) -> None:
    """An uncaught exception is a 500 ERROR span with its error.type and exception event;
    HTTPError and send_error keep their status (a 4xx is no server error; a 5xx without
    an exception is named by its code); Finish is no error; an unmatched path is named by
    its method alone."""
    async def scenario(url: str, app: tornado.web.Application) -> int:
        return (await _fetch(url + path)).code

    assert _serve(scenario) == status
    [span] = _kinds(telemetry, SpanKind.SERVER)
    assert span.name == name
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes.get("error.type") == error_type
    assert (span.status.status_code is StatusCode.ERROR) == (error_type is not None)
    exception_events = [e for e in span.events if e.name == "exception"]
    assert len(exception_events) == (error_type is not None and error_type != "503")
    [point] = telemetry.points("http.server.request.duration")
    assert point.attributes.get("error.type") == error_type


def test_a_streamed_response_ends_its_span_at_finish(telemetry: Telemetry) -> None:
    """A response sent in flush()ed chunks is inside the span; an exception after the
    response started is recorded, with the status that went out (tornado ends the
    response cut short)."""
    async def scenario(url: str, app: tornado.web.Application) -> Any:
        body = (await _fetch(f"{url}/stream")).body
        broken = await _fetch(f"{url}/broken-stream")
        return body, broken.code, app.settings["written"][0]

    body, broken_code, written = _serve(scenario)
    assert body == b"ab"
    assert broken_code == 200
    streamed, broken = _kinds(telemetry, SpanKind.SERVER)
    assert streamed.end_time >= written
    assert streamed.attributes["http.response.status_code"] == 200
    assert "error.type" not in streamed.attributes
    assert broken.attributes["error.type"] == "RuntimeError"
    assert broken.attributes["http.response.status_code"] == 200
    assert broken.status.status_code is StatusCode.ERROR
    assert [e.name for e in broken.events] == ["exception"]


def test_a_client_gone_before_its_response_is_a_client_disconnect(
        telemetry: Telemetry) -> None:
    """A client that closes its connection mid-upload (the span ends then), or while the
    handler works (it ends when the handler finishes): ClientDisconnect, no status code."""
    async def scenario(url: str, app: tornado.web.Application) -> None:
        port = app.settings["port"][0]
        for request in (b"POST /items/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nab",
                        b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
        for _ in range(100):
            if app.settings["written"]:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)

    _serve(scenario)
    upload, slow = _kinds(telemetry, SpanKind.SERVER)
    assert (upload.name, slow.name) == ("POST /items/([0-9]+)", "GET /slow")
    for span in (upload, slow):
        assert span.attributes["error.type"] == "ClientDisconnect"
        assert "http.response.status_code" not in span.attributes
        assert span.status.status_code is StatusCode.ERROR


def test_an_unsampled_request_takes_the_cheap_path(telemetry: Telemetry) -> None:
    """Under an unsampled caller no span is recorded, the handler still runs in the
    caller's trace, and the duration point keeps route and status; an excluded URL gets
    neither span nor point."""
    async def scenario(url: str, app: tornado.web.Application) -> str:
        token = attach(trace.set_span_in_context(NonRecordingSpan(_UNSAMPLED)))
        try:
            return (await _fetch(f"{url}/trace-id")).body.decode()
        finally:
            detach(token)

    assert _serve(scenario) == "0af7651916cd43dd8448eb211c80319c"
    assert telemetry.spans() == []
    server_points = telemetry.points("http.server.request.duration")
    assert [dict(p.attributes) for p in server_points] == [{
        "http.request.method": "GET", "url.scheme": "http", "http.route": "/trace-id",
        "http.response.status_code": 200}]

    async def health(url: str, app: tornado.web.Application) -> int:
        return (await _fetch(f"{url}/health")).code

    telemetry.reset()
    assert _serve(health) == 200
    assert _kinds(telemetry, SpanKind.SERVER) == []
    assert telemetry.points("http.server.request.duration") == []


def test_a_websocket_session_has_no_span_but_runs_in_the_handshakes_trace(
        telemetry: Telemetry) -> None:
    """A WebSocketHandler gets no SERVER span; its handler runs in the trace the
    handshake's traceparent names."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    async def scenario(url: str, app: tornado.web.Application) -> str:
        request = tornado.httpclient.HTTPRequest(f"ws{url[4:]}/ws",
                                                 headers={"traceparent": traceparent})
        connection = await tornado.websocket.websocket_connect(request)
        message = await connection.read_message()
        connection.close()
        return str(message)

    assert _serve(scenario) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert _kinds(telemetry, SpanKind.SERVER) == []


def test_a_failure_in_our_code_serves_the_request_untraced(
        telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    """If opening the span fails, the request is still served, and a warning says so."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    _diagnostics.reset_for_tests()
    monkeypatch.setattr(TelemetryMiddleware, "refresh_propagator", broken)

    async def scenario(url: str, app: tornado.web.Application) -> int:
        return (await _fetch(f"{url}/items/1")).code

    assert _serve(scenario) == 200
    assert _kinds(telemetry, SpanKind.SERVER) == []
    assert any("instrumentation bug" in m for _, m in _diagnostics.recorded())


# ----- the client -----------------------------------------------------------------------------

def test_each_redirect_is_a_sibling_span_with_its_resend_count(telemetry: Telemetry) -> None:
    """A redirect tornado follows is a second CLIENT span under the caller's span
    (resend_count 1, the 302 on the first); each request carries its own span's
    traceparent once, replacing the one the caller set, and the caller's header dict is
    left as it was."""
    headers = {"Traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}

    async def scenario(url: str, app: tornado.web.Application) -> Any:
        with telemetry.tracer.start_as_current_span("caller"):
            return await _fetch(f"{url}/redirect", headers=headers)

    response = _serve(scenario)
    assert headers == {"Traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
    [caller] = [s for s in telemetry.spans(SpanKind.INTERNAL) if s.name == "caller"]
    first, second = _kinds(telemetry, SpanKind.CLIENT)
    assert (first.parent.span_id, second.parent.span_id) == (caller.context.span_id,) * 2
    assert first.attributes["http.response.status_code"] == 302
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.response.status_code"] == 200
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["url.full"].endswith("/headers")
    [sent] = json.loads(response.body)["traceparent"]
    assert sent.startswith(f"00-{caller.context.trace_id:032x}-{second.context.span_id:016x}-")
    redirect_server, headers_server = _kinds(telemetry, SpanKind.SERVER)
    assert redirect_server.parent.span_id == first.context.span_id
    assert headers_server.parent.span_id == second.context.span_id
    points = telemetry.points("http.client.request.duration")
    assert sorted(p.attributes["http.response.status_code"] for p in points) == [200, 302]


def test_status_and_connection_errors_set_error_type(telemetry: Telemetry) -> None:
    """A 4xx answer with raise_error=False, a 5xx raised as HTTPClientError, a refused
    connection and a request timeout: each CLIENT span has the error.type other clients
    give (the code, else the exception the caller gets)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/"

    async def scenario(url: str, app: tornado.web.Application) -> list[str]:
        client = tornado.httpclient.AsyncHTTPClient()
        seen = [str((await _fetch(f"{url}/raise/404")).code)]
        for target, options in ((f"{url}/boom", {}), (refused, {}),
                                (f"{url}/slow", {"request_timeout": 0.2})):
            try:
                await client.fetch(target, **options)
            except Exception as exc:
                seen.append(type(exc).__name__)
        return seen

    assert _serve(scenario) == ["404", "HTTPClientError", "ConnectionRefusedError",
                                "HTTPTimeoutError"]
    spans = _kinds(telemetry, SpanKind.CLIENT)
    assert [s.attributes.get("error.type") for s in spans] == [
        "404", "500", "ConnectionRefusedError", "tornado.simple_httpclient.HTTPTimeoutError"]
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    assert [len(s.events) for s in spans] == [0, 0, 1, 1]  # (exception events)
    assert "http.response.status_code" not in spans[2].attributes
    points = telemetry.points("http.client.request.duration")
    assert sorted(p.attributes["error.type"] for p in points) == sorted(
        s.attributes["error.type"] for s in spans)


def test_suppressed_fetches_are_not_traced(telemetry: Telemetry) -> None:
    """While instrumentation is suppressed (our exporter's own traffic), a fetch has no
    span and sends no traceparent."""
    async def scenario(url: str, app: tornado.web.Application) -> Any:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            return json.loads((await _fetch(f"{url}/headers")).body)
        finally:
            detach(token)

    assert _serve(scenario) == {"traceparent": []}
    assert _kinds(telemetry, SpanKind.CLIENT) == []
    assert telemetry.points("http.client.request.duration") == []


def test_the_blocking_http_client_is_traced_in_its_callers_context(
        telemetry: Telemetry) -> None:
    """``HTTPClient.fetch`` (tornado's blocking client, its own IOLoop) is a CLIENT span
    under the calling thread's current span, and its request is served in that trace."""
    with _served_in_a_thread() as url, telemetry.tracer.start_as_current_span("caller"):
        client = tornado.httpclient.HTTPClient()
        try:
            body = client.fetch(f"{url}/items/5").body
        finally:
            client.close()
    assert body == b"item 5"
    [caller] = [s for s in telemetry.spans(SpanKind.INTERNAL) if s.name == "caller"]
    [client_span] = _kinds(telemetry, SpanKind.CLIENT)
    [server_span] = _kinds(telemetry, SpanKind.SERVER)
    assert client_span.parent.span_id == caller.context.span_id
    assert server_span.parent.span_id == client_span.context.span_id


# ----- the registry entry, in fresh interpreters ----------------------------------------------

_PROGRAM = textwrap.dedent("""
    import asyncio, json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import tornado.web, tornado.httpclient
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import registry
    from telemetryflow_bootstrap.instrumentation import _catalog_http_servers as s

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    entries = tuple(e for e in s.ENTRIES if e.name == "tornado")
    registry.arm(context, entries)
    if order == "twice":
        registry.arm(context, entries)
    if order == "client-first":  # the client's import fires the entry; the server's later
        import tornado.httpclient
    import tornado.httpclient, tornado.httpserver, tornado.netutil, tornado.web
    if order == "twice":  # a second patch call must not wrap a second time
        from telemetryflow_bootstrap.instrumentation import tornado as ours
        ours.patch(tornado.web, context)

    class Hello(tornado.web.RequestHandler):
        def get(self, name):
            self.write("hi")

    async def main():
        app = tornado.web.Application([(r"/hello/(\\w+)", Hello)])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hello/x"
        await tornado.httpclient.AsyncHTTPClient().fetch(url)
        server.stop()

    asyncio.run(main())
    print(json.dumps({
        "spans": sorted(f"{s.kind.name} {s.name}" for s in exporter.get_finished_spans()),
        "status": {n: st for n, (st, _) in registry.status().items()}}))
""")
_SCENARIOS = {"import-first": ("import-first", ""), "client-first": ("client-first", ""),
              "twice": ("twice", ""), "disabled": ("arm-first", "tornado")}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every scenario's outcome; the interpreters run side by side."""
    processes = {name: subprocess.Popen([sys.executable, "-c", _PROGRAM, *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, args in _SCENARIOS.items()}
    outcomes = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, f"{name}: {stderr}"
            outcomes[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return outcomes


@pytest.mark.parametrize("scenario", ["import-first", "client-first", "twice"])
def test_the_entry_patches_once_whatever_the_order(results: dict[str, Any],
                                                   scenario: str) -> None:
    """Imported before or after arming, the client's module first, even armed twice and
    patched again by hand: one CLIENT and one SERVER span per request."""
    assert results[scenario]["spans"] == [r"CLIENT GET", r"SERVER GET /hello/(\w+)"]
    assert results[scenario]["status"] == {"tornado": "applied"}


def test_the_entry_disabled_by_name_leaves_tornado_alone(results: dict[str, Any]) -> None:
    """Disabling ``tornado`` by name: neither server nor client spans."""
    assert results["disabled"]["spans"] == []
    assert results["disabled"]["status"] == {"tornado": "disabled"}
