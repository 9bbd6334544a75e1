"""The aiohttp server instrumentation: a real ``web.Application`` served by aiohttp's
``AppRunner`` on loopback, called by the real (instrumented) aiohttp client; plus the two
registry entries (``aiohttp-client``, ``aiohttp-server``) in fresh interpreters."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.context import attach, detach
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.middleware import TelemetryMiddleware

from ..side_by_side import run_scenarios
from .test_aiohttp_client import Telemetry, patched_aiohttp


@pytest.fixture(scope="module")
def _patched() -> Iterator[Telemetry]:
    with patched_aiohttp() as telemetry:
        yield telemetry


@pytest.fixture
def telemetry(_patched: Telemetry) -> Iterator[Telemetry]:
    _patched.reset()
    yield _patched
    _patched.reset()


_PORT = web.AppKey("port", list)
_WRITTEN = web.AppKey("written", list)


async def _items(request: web.Request) -> web.Response:
    return web.Response(text=request.match_info.get("id", "-"))


async def _boom(request: web.Request) -> web.Response:
    raise ValueError("boom")


async def _not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


async def _server_error(request: web.Request) -> web.Response:
    raise web.HTTPInternalServerError()


async def _hop(request: web.Request) -> web.Response:
    """Calls /items/7 on this same server: the CLIENT span must be this request's child."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{request.app[_PORT][0]}/items/7") as response:
        return web.Response(text=await response.text())


async def _stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for chunk in (b"a", b"b"):
        await response.write(chunk)
    await response.write_eof()
    request.app[_WRITTEN].append(time.time_ns())
    return response


async def _broken_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"partial")
    raise RuntimeError("cut short")


async def _trace_id(request: web.Request) -> web.Response:
    context = trace.get_current_span().get_span_context()
    return web.Response(text=f"{context.trace_id:032x}")


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    context = trace.get_current_span().get_span_context()
    await ws.send_str(f"{context.trace_id:032x}")
    await ws.close()
    return ws


def _app() -> web.Application:
    app = web.Application()
    app[_PORT] = [0]
    app[_WRITTEN] = []
    app.router.add_get("/items/{id}", _items)
    app.router.add_get("/boom", _boom)
    app.router.add_get("/not-found", _not_found)
    app.router.add_get("/server-error", _server_error)
    app.router.add_get("/hop", _hop)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/broken-stream", _broken_stream)
    app.router.add_get("/trace-id", _trace_id)
    app.router.add_get("/health", _items)
    app.router.add_get("/ws", _websocket)
    sub = web.Application()
    sub.router.add_get("/users/{name}", _items)
    app.add_subapp("/admin", sub)
    return app


def _serve(scenario: Callable[[aiohttp.ClientSession, str, web.Application], Awaitable[Any]]
           ) -> Any:
    """Serve ``_app()`` with AppRunner on a loopback port, run ``scenario(session, base
    URL, app)`` against it, clean up."""
    async def main() -> Any:
        app = _app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        app[_PORT][0] = port
        try:
            async with aiohttp.ClientSession() as session:
                return await scenario(session, f"http://127.0.0.1:{port}", app)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url) as response:
        await response.read()
        return response.status


def _server_spans(telemetry: Telemetry) -> list[Any]:
    return telemetry.spans(SpanKind.SERVER)


def test_route_named_server_span_continues_the_callers_trace(telemetry: Telemetry) -> None:
    """A request to /items/{id} is one SERVER span named after the route's canonical
    pattern, the child of the client's span, with the server attributes and a duration
    point carrying method, scheme, route and status."""
    port: list[int] = []

    async def scenario(session: aiohttp.ClientSession, url: str, app: web.Application) -> int:
        port.append(app[_PORT][0])
        async with session.get(f"{url}/items/42?page=2&sig=s3cret",
                               headers={"X-Demo": "d"}) as response:
            return response.status

    assert _serve(scenario) == 200
    [server] = _server_spans(telemetry)
    [client] = telemetry.spans(SpanKind.CLIENT)
    assert server.name == "GET /items/{id}"
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    attributes = dict(server.attributes)
    assert attributes.pop("user_agent.original").startswith("Python/")
    assert attributes == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/items/42",
        "url.query": "page=2&sig=REDACTED", "server.address": "127.0.0.1",
        "server.port": port[0], "network.protocol.version": "1.1",
        "client.address": "127.0.0.1", "http.route": "/items/{id}",
        "http.response.status_code": 200, "http.request.header.x-demo": ("d",)}
    [point] = telemetry.points("http.server.request.duration")
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "http.route": "/items/{id}",
                                      "http.response.status_code": 200}


def test_a_client_call_in_the_handler_is_the_server_spans_child(telemetry: Telemetry) -> None:
    """The handler runs with its SERVER span current: the aiohttp call it makes is that
    span's CLIENT child, and the request it sends is served in the same trace."""
    assert _serve(lambda session, url, app: _status(session, f"{url}/hop")) == 200
    outer, inner = _server_spans(telemetry)
    first, second = telemetry.spans(SpanKind.CLIENT)
    assert (outer.name, inner.name) == ("GET /hop", "GET /items/{id}")
    assert second.parent.span_id == outer.context.span_id
    assert inner.parent.span_id == second.context.span_id
    assert len({s.context.trace_id for s in (outer, inner, first, second)}) == 1


@pytest.mark.parametrize(("path", "name", "status", "error_type"), [
    ("/boom", "GET /boom", 500, "ValueError"),
    ("/server-error", "GET /server-error", 500, "aiohttp.web_exceptions.HTTPInternalServerError"),
    ("/not-found", "GET /not-found", 404, None),
    ("/nowhere", "GET", 404, None),
])
def test_exceptions_and_http_exceptions_get_their_status(telemetry: Telemetry, path: str,
                                                         name: str, status: int,
                                                         error_type: str | None) -> None:
    """A handler's exception is a 500 ERROR span with its error.type and exception event;
    a raised HTTPException has its own status (a 4xx is no server error); an unmatched
    path is named by its method alone."""
    assert _serve(lambda session, url, app: _status(session, url + path)) == status
    [span] = _server_spans(telemetry)
    assert span.name == name
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes.get("error.type") == error_type
    assert (span.status.status_code is StatusCode.ERROR) == (error_type is not None)
    if error_type is not None:
        assert [e.name for e in span.events] == ["exception"]
    [point] = telemetry.points("http.server.request.duration")
    assert point.attributes.get("error.type") == error_type


def test_a_streamed_response_ends_its_span_after_the_last_chunk(telemetry: Telemetry) -> None:
    """A StreamResponse the handler writes itself is inside the span; an exception after
    the response started is recorded without a status code (the response was cut)."""
    async def scenario(session: aiohttp.ClientSession, url: str, app: web.Application) -> Any:
        async with session.get(f"{url}/stream") as response:
            body = await response.read()
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(f"{url}/broken-stream") as response:
                await response.read()
        await asyncio.sleep(0.05)  # (the server side finishes after the client gave up)
        return body, app[_WRITTEN][0]

    body, written = _serve(scenario)
    assert body == b"ab"
    streamed, broken = _server_spans(telemetry)
    assert streamed.end_time >= written
    assert streamed.attributes["http.response.status_code"] == 200
    assert broken.attributes["error.type"] == "RuntimeError"
    assert "http.response.status_code" not in broken.attributes


def test_sub_application_routes_include_their_prefix(telemetry: Telemetry) -> None:
    """A sub-application's route is named with the prefix it is mounted under."""
    assert _serve(lambda session, url, app: _status(session, f"{url}/admin/users/ann")) == 200
    [span] = _server_spans(telemetry)
    assert span.name == "GET /admin/users/{name}"


def test_an_unsampled_request_takes_the_cheap_path(telemetry: Telemetry) -> None:
    """Under an unsampled caller no SERVER span is recorded, the handler still runs in the
    caller's trace, and the duration point keeps route and status; an excluded URL gets
    neither span nor point."""
    parent = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.DEFAULT))

    async def scenario(session: aiohttp.ClientSession, url: str, app: web.Application) -> str:
        token = attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            async with session.get(f"{url}/trace-id") as response:
                return await response.text()
        finally:
            detach(token)

    assert _serve(scenario) == "0af7651916cd43dd8448eb211c80319c"
    assert telemetry.spans() == []
    [point] = telemetry.points("http.server.request.duration")
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "http.route": "/trace-id",
                                      "http.response.status_code": 200}
    assert _serve(lambda session, url, app: _status(session, f"{url}/health")) == 200
    assert _server_spans(telemetry) == []
    assert telemetry.points("http.server.request.duration") == []


def test_a_websocket_session_has_no_span_but_runs_in_the_handshakes_trace(
        telemetry: Telemetry) -> None:
    """A WebSocket session (which may last hours) gets no SERVER span; its handler runs in
    the trace the handshake carried (the client's handshake span, status 101)."""
    async def scenario(session: aiohttp.ClientSession, url: str, app: web.Application) -> str:
        async with session.ws_connect(f"{url}/ws") as ws:
            return (await ws.receive()).data

    seen = _serve(scenario)
    assert _server_spans(telemetry) == []
    [handshake] = telemetry.spans(SpanKind.CLIENT)
    assert handshake.attributes["http.response.status_code"] == 101
    assert seen == f"{handshake.context.trace_id:032x}"


def test_a_failure_in_our_code_serves_the_request_untraced(
        telemetry: Telemetry, monkeypatch: pytest.MonkeyPatch) -> None:
    """If opening the span fails, the request is still served, and a warning says so."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    _diagnostics.reset_for_tests()
    monkeypatch.setattr(TelemetryMiddleware, "refresh_propagator", broken)
    assert _serve(lambda session, url, app: _status(session, f"{url}/items/1")) == 200
    assert _server_spans(telemetry) == []
    assert any("instrumentation bug" in m for _, m in _diagnostics.recorded())


# ----- the registry entries, in fresh interpreters ------------------------------------------

_PROGRAM = textwrap.dedent("""
    import asyncio, json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import aiohttp, aiohttp.web
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import registry
    from telemetryflow_bootstrap.instrumentation import _catalog_http_clients as c
    from telemetryflow_bootstrap.instrumentation import _catalog_http_servers as s

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    entries = tuple(e for e in (*c.ENTRIES, *s.ENTRIES) if e.name.startswith("aiohttp"))
    registry.arm(context, entries)
    if order == "twice":
        registry.arm(context, entries)
    import aiohttp, aiohttp.web, aiohttp.web_protocol
    from aiohttp import web
    if order == "twice":  # a second patch call must not wrap a second time
        from telemetryflow_bootstrap.instrumentation import aiohttp_client, aiohttp_server
        aiohttp_client.patch(aiohttp, context)
        aiohttp_server.patch(aiohttp.web_protocol, context)

    async def hello(request):
        return web.Response(text="hi")

    async def main():
        app = web.Application()
        app.router.add_get("/hello/{name}", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/hello/x"
            async with session.get(url) as response:
                await response.read()
        await runner.cleanup()

    asyncio.run(main())
    print(json.dumps({
        "spans": sorted(f"{s.kind.name} {s.name}" for s in exporter.get_finished_spans()),
        "status": {n: st for n, (st, _) in registry.status().items()}}))
""")
_SCENARIOS = {"import-first": ("import-first", ""), "twice": ("twice", ""),
              "disabled": ("arm-first", "aiohttp-server")}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every scenario's outcome; the interpreters run side by side."""
    return run_scenarios(_PROGRAM, _SCENARIOS, timeout=60)


@pytest.mark.parametrize("scenario", ["import-first", "twice"])
def test_each_entry_patches_once_whatever_the_order(results: dict[str, Any],
                                                    scenario: str) -> None:
    """Imported before or after arming, even armed twice and patched again by hand: one
    CLIENT and one SERVER span per request, both entries applied."""
    assert results[scenario]["spans"] == ["CLIENT GET", "SERVER GET /hello/{name}"]
    assert results[scenario]["status"] == {"aiohttp-client": "applied",
                                           "aiohttp-server": "applied"}


def test_an_entry_disabled_by_name_leaves_aiohttp_alone(results: dict[str, Any]) -> None:
    """Disabling aiohttp-server by name: no SERVER span, the client still traced."""
    assert results["disabled"]["spans"] == ["CLIENT GET"]
    assert results["disabled"]["status"] == {"aiohttp-client": "applied",
                                             "aiohttp-server": "disabled"}
