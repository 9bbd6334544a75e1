"""A response uvicorn drops because its client has left (the handler worked on, then
answered nobody): the request failed (ERROR, ``error.type`` ``ClientDisconnect``, no status
code), like a client gone mid-upload, and not the success it used to be recorded as. Real
uvicorn on loopback in a thread of this process, so the in-memory exporters see its spans,
and real sockets that leave while the handler works."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

from ..otlp_receiver import free_port
from .server_fixtures import ServerTelemetry, server_telemetry
from .test_asgi_after_response import wait_for_spans

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

__all__ = ["server_telemetry"]

WORK_SECONDS = 0.4


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> PlainTextResponse:
        await asyncio.sleep(WORK_SECONDS)
        return PlainTextResponse("done")

    @app.get("/slow-fail")
    async def slow_fail() -> PlainTextResponse:
        await asyncio.sleep(WORK_SECONDS)
        raise LookupError("failed after its client left")

    return app


async def plain_slow(scope: Any, receive: Any, send: Any) -> None:
    """A hand-written ASGI app (no framework) that answers after a while."""
    await asyncio.sleep(WORK_SECONDS)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


@pytest.fixture
def serve() -> Iterator[Callable[[Any], int]]:
    """``serve(app)``: the app under a real uvicorn on loopback; its port."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> int:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="critical", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return port

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def leave_while_working(port: int, path: str) -> None:
    """Send ``GET path`` and close the connection before the handler answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        time.sleep(WORK_SECONDS / 4)


def _assert_dropped(telemetry: ServerTelemetry, span: Any, route: str | None) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ClientDisconnect"
    assert "http.response.status_code" not in span.attributes
    [point] = telemetry.duration_points()
    expected = {"http.request.method": "GET", "url.scheme": "http",
                "error.type": "ClientDisconnect"}
    if route:
        expected["http.route"] = route
    assert dict(point.attributes) == expected


def test_fastapi_response_dropped_for_a_client_gone_is_a_failure(server_telemetry, serve):
    """FastAPI (patched) under uvicorn: the 200 the handler sends after its client left."""
    port = serve(fastapi_app())
    leave_while_working(port, "/slow")
    [span] = wait_for_spans(server_telemetry, {"GET /slow"}).values()
    _assert_dropped(server_telemetry, span, "/slow")


def test_exception_after_the_client_left_still_names_itself(server_telemetry, serve):
    """The handler fails after its client left: Starlette's 500 page is dropped, the
    exception is what the span and point name (not ClientDisconnect), and no status."""
    port = serve(fastapi_app())
    leave_while_working(port, "/slow-fail")
    [span] = wait_for_spans(server_telemetry, {"GET /slow-fail"}).values()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "LookupError"
    assert "http.response.status_code" not in span.attributes
    assert [e.name for e in span.events] == ["exception"]


def test_plain_asgi_response_dropped_for_a_client_gone_is_a_failure(server_telemetry, serve):
    """Any ASGI app in ``TelemetryASGIMiddleware``: the same, no framework involved."""
    port = serve(TelemetryASGIMiddleware(plain_slow, client=server_telemetry.context))
    leave_while_working(port, "/plain")
    [span] = wait_for_spans(server_telemetry, {"GET"}).values()
    _assert_dropped(server_telemetry, span, None)


def test_unsampled_response_dropped_for_a_client_gone_is_a_failure(server_telemetry, serve):
    """A request the sampler drops still counts the failure on its duration point."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    dropping = PatchContext(tracer=TracerProvider(sampler=ALWAYS_OFF).get_tracer("t"),
                            meter=server_telemetry.context.meter, logger_provider=None,
                            config=server_telemetry.context.config, handler=None)
    port = serve(TelemetryASGIMiddleware(plain_slow, client=dropping))
    leave_while_working(port, "/plain")
    deadline = time.monotonic() + 10
    points: list[Any] = []
    while not points:
        assert time.monotonic() < deadline, "no duration point"
        points = server_telemetry.duration_points()
        time.sleep(0.05)
    [point] = points
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "error.type": "ClientDisconnect"}
