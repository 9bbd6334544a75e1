"""ASGI details found by driving the patched Starlette/FastAPI applications and
``TelemetryASGIMiddleware`` with the scopes uvicorn builds, while a span is current in the
serving task (as the process span is under ``telemetryflow-run python app.py``): websocket
sessions and requests without a valid parent never join that span's trace, and the
application root (``root_path``) is part of ``http.route``."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import attach, detach
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware

from ..apps.server_asgi_hunt import create_app
from .server_fixtures import PARENT_ID, TRACE_ID, TRACEPARENT, ServerTelemetry, server_telemetry

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from fastapi import FastAPI, WebSocket
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

__all__ = ["server_telemetry"]


@contextlib.contextmanager
def anchor(telemetry: ServerTelemetry) -> Iterator[Any]:
    """A span current in the serving task, as the process span is when a program run by
    ``telemetryflow-run python app.py`` calls ``uvicorn.run``."""
    span = telemetry.context.tracer.start_span("app.py")
    token = attach(trace.set_span_in_context(span))
    try:
        yield span
    finally:
        detach(token)
        span.end()


def _scope(kind: str, path: str, headers: dict[str, str] | None = None,
           root_path: str = "") -> dict[str, Any]:
    """What uvicorn hands the application (its path includes the root path)."""
    return {"type": kind, "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1", "scheme": "ws" if kind == "websocket" else "http",
            "method": "GET", "path": root_path + path, "raw_path": (root_path + path).encode(),
            "root_path": root_path, "query_string": b"",
            "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}


def _serve(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one ASGI call to its end (a websocket: connect, one text message, disconnect);
    the messages the application sent."""
    sent: list[dict[str, Any]] = []
    if scope["type"] == "websocket":
        incoming = [{"type": "websocket.connect"},
                    {"type": "websocket.receive", "text": "hi"},
                    {"type": "websocket.disconnect", "code": 1000}]
    else:
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)  # (a client that says nothing more)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _websocket_app(seen: list[Any]) -> Starlette:
    async def endpoint(websocket: Any) -> None:
        seen.append(trace.get_current_span().get_span_context())
        await websocket.accept()
        await websocket.send_text("ok")
        await websocket.close()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


@pytest.mark.parametrize("layer", ["starlette", "fastapi", "middleware"])
def test_websocket_session_runs_in_its_handshake_context_not_the_serving_tasks(
        server_telemetry, layer):
    """A websocket session (no span of ours) runs in the context its handshake carries:
    none without a ``traceparent``, the caller's trace with one; never in the span current
    in the serving task, which would gather every session of the server's life into one
    trace. Whichever layer sees it: a patched Starlette or FastAPI app, or the generic
    middleware around a plain ASGI app."""
    seen: list[Any] = []
    if layer == "fastapi":
        app: Any = FastAPI()

        @app.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            seen.append(trace.get_current_span().get_span_context())
            await websocket.accept()
            await websocket.close()

    elif layer == "starlette":
        app = _websocket_app(seen)
    else:
        starlette_app = _websocket_app(seen)

        async def plain(scope: Any, receive: Any, send: Any) -> None:  # not a framework's
            await starlette_app.router(scope, receive, send)

        app = TelemetryASGIMiddleware(plain, client=server_telemetry.context)
    with anchor(server_telemetry) as process_span:
        sent = _serve(app, _scope("websocket", "/ws"))
        _serve(app, _scope("websocket", "/ws", {"traceparent": TRACEPARENT}))
    assert sent[0]["type"] == "websocket.accept"
    alone, continued = seen
    assert not alone.is_valid, "the session joined the serving task's span"
    assert alone.trace_id != process_span.get_span_context().trace_id
    assert (format(continued.trace_id, "032x"), format(continued.span_id, "016x")) == (
        TRACE_ID, PARENT_ID)
    assert continued.is_remote
    assert server_telemetry.server_spans() == []
    assert server_telemetry.duration_points() == []


@pytest.fixture
def baggage_first() -> Iterator[None]:
    """The global propagator ``TELEMETRYFLOW_PROPAGATORS=baggage,tracecontext`` makes: its
    baggage part starts from the current context when given none."""
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(
        [W3CBaggagePropagator(), TraceContextTextMapPropagator()]))
    try:
        yield
    finally:
        propagate.set_global_textmap(before)


@pytest.mark.parametrize("headers", [{"baggage": "tenant=a"}, {"traceparent": "00-zz-01"}],
                         ids=["baggage-only", "invalid-traceparent"])
def test_request_without_a_valid_parent_is_a_new_trace(server_telemetry, baggage_first,
                                                       headers):
    """A request whose headers name no valid parent starts a new trace, whatever the
    propagator and whatever span the serving task carries; its baggage still arrives."""
    seen: list[Any] = []
    app = create_app()

    @app.get("/probe")
    async def probe() -> str:
        from opentelemetry import baggage

        seen.append(baggage.get_all())
        return "ok"

    with anchor(server_telemetry):
        sent = _serve(app, _scope("http", "/probe", headers))
    assert sent[0]["status"] == 200
    span = server_telemetry.one_server_span()
    assert span.name == "GET /probe"
    assert span.parent is None
    assert seen == [{"tenant": "a"} if "baggage" in headers else {}]


def test_root_path_is_part_of_the_route(server_telemetry):
    """Served under a root path (``uvicorn --root-path /prefix``: the path includes it),
    the route is the application root plus the template (mounts and router prefixes
    included), as Flask and Django prefix SCRIPT_NAME; the duration point agrees."""
    app = create_app()
    for path in ("/items/5", "/sub/deep/z", "/api/v1/users/u"):
        assert _serve(app, _scope("http", path, root_path="/prefix"))[0]["status"] == 200
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    assert {path: (s.name, s.kind) for path, s in spans.items()} == {
        "/prefix/items/5": ("GET /prefix/items/{item_id}", SpanKind.SERVER),
        "/prefix/sub/deep/z": ("GET /prefix/sub/deep/{x}", SpanKind.SERVER),
        "/prefix/api/v1/users/u": ("GET /prefix/api/v1/users/{name}", SpanKind.SERVER),
    }
    assert sorted(p.attributes["http.route"] for p in server_telemetry.duration_points()) == [
        "/prefix/api/v1/users/{name}", "/prefix/items/{item_id}", "/prefix/sub/deep/{x}"]
