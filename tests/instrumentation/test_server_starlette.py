"""The ASGI server core and the Starlette/FastAPI integration against real FastAPI and
Starlette (the httpx-based TestClient): route templates (router prefixes, mounts), trace
continuation, streaming, errors, metrics, pass-through scopes, FastAPI's native telemetry
and manual + automatic middleware."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.middleware import FastAPITelemetryMiddleware

from ..apps.server_fastapi import create_app
from .server_fixtures import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    ServerTelemetry,
    no_client_spans,
    server_telemetry,
)

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

__all__ = ["server_telemetry"]


def _client(app, **kwargs) -> TestClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(app, **kwargs)


@pytest.fixture
def get(server_telemetry: ServerTelemetry):
    """GET through a TestClient of a fresh FastAPI app, client instrumentation kept out."""
    client = _client(create_app(), raise_server_exceptions=False)

    def get(path: str, **kwargs):
        with no_client_spans():
            return client.get(path, **kwargs)

    return get


def test_fastapi_span_name_kind_and_attributes(server_telemetry, get):
    """One SERVER span named after the route template, with the semantic-convention
    attributes, the query's signature redacted."""
    assert get("/items/7?X-Goog-Signature=abc&x=1", headers={"User-Agent": "probe/2"}).json() \
        == {"item_id": 7}
    span = server_telemetry.one_server_span()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/items/7",
        "url.query": "X-Goog-Signature=REDACTED&x=1", "server.address": "testserver",
        "server.port": 80, "network.protocol.version": "1.1",
        "user_agent.original": "probe/2", "client.address": "testclient",
        "http.route": "/items/{item_id}", "http.response.status_code": 200,
    }


@pytest.mark.parametrize(("path", "route"), [
    ("/api/users/u1", "/api/users/{user_id}"),
    ("/sub/deep/zz", "/sub/deep/{x}"),
])
def test_route_templates_include_router_prefix_and_mount(server_telemetry, get, path, route):
    """``http.route`` is the full template: APIRouter prefixes and Mount paths included."""
    assert get(path).status_code == 200
    span = server_telemetry.one_server_span()
    assert span.attributes["http.route"] == route
    assert span.name == f"GET {route}"


def test_plain_starlette_app_with_mount(server_telemetry):
    """A Starlette (non-FastAPI) app is instrumented too, mounted routes included."""
    inner = Starlette(routes=[Route("/s/{n}", lambda request: PlainTextResponse("s"))])
    app = Starlette(routes=[Route("/top", lambda request: PlainTextResponse("t")),
                            Mount("/inner", app=inner)])
    client = _client(app)
    with no_client_spans():
        client.get("/top")
        client.get("/inner/s/4")
    assert sorted(s.name for s in server_telemetry.server_spans()) == [
        "GET /inner/s/{n}", "GET /top"]


def test_fastapi_continues_incoming_traceparent(server_telemetry, get):
    """The server span is a child of the caller's span named in ``traceparent``."""
    get("/items/1", headers={"traceparent": TRACEPARENT})
    span = server_telemetry.one_server_span()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_streaming_span_covers_the_whole_body(server_telemetry, get):
    """A StreamingResponse's span ends after the last body chunk: its duration covers the
    generator's 3 x 50 ms of sleep."""
    assert get("/stream").text == "chunk 0\nchunk 1\nchunk 2\n"
    span = server_telemetry.one_server_span()
    assert (span.end_time - span.start_time) / 1e9 >= 0.12
    [point] = server_telemetry.duration_points()
    assert point.sum >= 0.12


def test_exception_propagates_unchanged_with_error_span(server_telemetry):
    """The endpoint's exception reaches the caller as is; the span records it (event,
    ``error.type``, ERROR) and the 500 Starlette answered."""
    client = _client(create_app())
    with no_client_spans(), pytest.raises(ValueError, match="boom from fastapi"):
        client.get("/boom")
    span = server_telemetry.one_server_span()
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]


def test_exception_mid_stream_after_a_200_is_an_error(server_telemetry):
    """A StreamingResponse whose body raises after the 200 went out: the exception reaches
    the server unchanged, and the span and duration point record it (event, ``error.type``
    = its class, ERROR) next to the 200: that response never completed."""
    client = _client(create_app())
    with no_client_spans(), pytest.raises(RuntimeError, match="stream broke"):
        client.get("/stream/fail")
    span = server_telemetry.one_server_span()
    assert span.name == "GET /stream/fail"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["error.type"] == "RuntimeError"
    assert [e.name for e in span.events] == ["exception"]
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "http.route": "/stream/fail",
        "http.response.status_code": 200, "error.type": "RuntimeError"}


@pytest.mark.parametrize("started", [True, False], ids=["after-start", "before-start"])
def test_cancelled_request_is_an_error_only_before_its_response_started(server_telemetry,
                                                                        started):
    """A task cancelled while its response is under way (the client went away, the server
    stopping) ends as is, like a client that disconnects; cancelled before any response, it
    is recorded (``error.type`` CancelledError). The cancellation propagates either way."""
    async def app(scope, receive, send):
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"data: 1\n\n",
                        "more_body": True})
        raise asyncio.CancelledError

    wrapped = TelemetryASGIMiddleware(app, client=server_telemetry.context)

    async def drive():
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await wrapped({"type": "http", "method": "GET", "path": "/events", "headers": [],
                       "query_string": b"", "scheme": "http", "server": ("h", 80)},
                      receive, send)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(drive())
    span = server_telemetry.one_server_span()
    if started:
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in span.attributes
        assert span.attributes["http.response.status_code"] == 200
    else:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_5xx_is_a_server_error_and_4xx_is_not(server_telemetry, get):
    """503 sets ERROR with ``error.type`` "503"; an HTTPException 404 and an unrouted 404
    do not; the unrouted request is named by its method alone."""
    for path in ("/status/503", "/status/404", "/nowhere"):
        get(path)
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    assert spans["/status/503"].status.status_code is StatusCode.ERROR
    assert spans["/status/503"].attributes["error.type"] == "503"
    assert spans["/status/404"].status.status_code is StatusCode.UNSET
    assert "error.type" not in spans["/status/404"].attributes
    assert spans["/nowhere"].name == "GET"
    assert "http.route" not in spans["/nowhere"].attributes


def test_duration_metric_has_low_cardinality_attributes(server_telemetry, get):
    """Histogram points carry method, route, status and scheme, never the path."""
    for item in (1, 2):
        get(f"/items/{item}")
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "http.route": "/items/{item_id}",
        "http.response.status_code": 200}
    assert point.count == 2


def test_excluded_urls_get_no_span_and_no_metric(server_telemetry, get):
    """An excluded URL is served but makes neither span nor metric point."""
    assert get("/healthz").json() == "ok"
    assert server_telemetry.spans() == []
    assert server_telemetry.duration_points() == []


def test_lifespan_and_websocket_pass_through(server_telemetry):
    """Lifespan startup/shutdown and a websocket session work and make no server span."""
    client = _client(create_app())
    with no_client_spans(), client, client.websocket_connect("/ws") as websocket:
        assert websocket.receive_text() == "hi"
    assert server_telemetry.server_spans() == []


def test_manual_middleware_inside_patched_app_makes_one_span(server_telemetry):
    """``app.add_middleware(FastAPITelemetryMiddleware)`` on a patched app: one span."""
    app = create_app()
    app.add_middleware(FastAPITelemetryMiddleware, client=server_telemetry.context)
    with no_client_spans():
        _client(app).get("/items/3")
    assert server_telemetry.one_server_span().name == "GET /items/{item_id}"


def test_manual_middleware_wrapping_the_app_makes_one_span(server_telemetry):
    """``FastAPITelemetryMiddleware(app)`` around a patched app: one span, full route."""
    app = FastAPITelemetryMiddleware(create_app(), client=server_telemetry.context)
    with no_client_spans():
        _client(app).get("/api/users/x")
    assert server_telemetry.one_server_span().name == "GET /api/users/{user_id}"


def test_fastapi_with_its_own_providers_keeps_its_native_telemetry(server_telemetry):
    """An app given its own providers (``FastAPI(telemetry=...)``) keeps FastAPI's server
    span and gets none of ours: never two server spans for one request."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI(telemetry={"tracer_provider": provider, "operation_spans": False,
                             "metrics": False, "logs": False})

    @app.get("/own/{x}")
    async def own(x: str) -> str:
        return x

    with no_client_spans():
        _client(app).get("/own/1")
    assert server_telemetry.server_spans() == []
    [native] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert native.name == "GET /own/{x}"


def test_generic_asgi_middleware_records_incomplete_response(server_telemetry):
    """``TelemetryASGIMiddleware`` around a raw ASGI app that returns without answering:
    the span ends as ERROR ``incomplete_response``; lifespan scopes pass untouched."""
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    wrapped = TelemetryASGIMiddleware(app, client=server_telemetry.context)

    async def drive():
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        await wrapped({"type": "lifespan"}, receive, send)
        await wrapped({"type": "http", "method": "GET", "path": "/raw", "headers": [],
                       "query_string": b"", "scheme": "http", "server": ("h", 81),
                       "http_version": "2"}, receive, send)

    started = time.perf_counter()
    asyncio.run(drive())
    assert time.perf_counter() - started < 5
    assert seen == ["lifespan", "http"]
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "incomplete_response"
    assert span.attributes["server.address"] == "h"
    assert span.attributes["server.port"] == 81
    assert span.attributes["network.protocol.version"] == "2"


def test_generic_middleware_around_patched_fastapi_learns_the_route(server_telemetry):
    """``TelemetryASGIMiddleware`` around a patched FastAPI app makes the one span (FastAPI
    stays out) and the FastAPI layer inside tells it the full route."""
    app = TelemetryASGIMiddleware(create_app(), client=server_telemetry.context)
    with no_client_spans():
        assert _client(app).get("/sub/deep/q").status_code == 200
    assert server_telemetry.one_server_span().name == "GET /sub/deep/{x}"
