"""What happens after an ASGI response, or instead of it: Starlette/FastAPI background tasks
(which run once the response has gone out) and clients that go away, against a real uvicorn
on loopback and real sockets, plus the ASGI 2.4 servers whose ``send`` fails once the client
has gone (uvicorn 0.54 speaks 2.3: those are driven by hand with the scope such a server
builds)."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware

from ..otlp_receiver import free_port
from .server_fixtures import ServerTelemetry, server_telemetry

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    import uvicorn
    from fastapi import BackgroundTasks, FastAPI, Request
    from fastapi.responses import PlainTextResponse, StreamingResponse
    from starlette.background import BackgroundTask

__all__ = ["server_telemetry"]

TASK_SECONDS = 0.3


async def failing_task(telemetry: ServerTelemetry) -> None:
    """Does traced work, outlives the response by far, then fails."""
    with telemetry.context.tracer.start_as_current_span("inside the task"):
        await asyncio.sleep(TASK_SECONDS)
    raise RuntimeError("background broke")


def sync_task(seen: list[str], label: str) -> None:
    seen.append(label)


def create_app(telemetry: ServerTelemetry, seen: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/signup")
    async def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(failing_task, telemetry)
        return "ok"

    @app.get("/unavailable")
    async def unavailable() -> PlainTextResponse:
        return PlainTextResponse("later", status_code=503,
                                 background=BackgroundTask(failing_task, telemetry))

    @app.get("/sync-task")
    def with_sync_task() -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(
            functools.partial(sync_task, seen), "done"))

    @app.get("/events")
    async def events() -> StreamingResponse:
        async def chunks():
            i = 0
            while True:
                yield f"data: {i}\n\n"
                i += 1
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.get("/events-sync")
    def events_sync() -> StreamingResponse:
        def chunks():
            i = 0
            while True:
                yield f"data: {i}\n\n"
                i += 1
                time.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/event-stream")

    @app.post("/upload")
    async def upload(request: Request) -> str:
        return str(len(await request.body()))

    return app


@pytest.fixture
def served(server_telemetry: ServerTelemetry) -> Iterator[tuple[int, list[str]]]:
    """The app above under a real uvicorn on loopback (a thread of this process, so the
    patched frameworks' in-memory exporters see its spans): (port, what sync tasks saw)."""
    seen: list[str] = []
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(server_telemetry, seen),
                                           host="127.0.0.1", port=port, log_level="critical",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port, seen
    finally:
        server.should_exit = True
        thread.join(10)


def http_get(port: int, path: str) -> bytes:
    """One request, the whole response read (Connection: close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                           .encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    return data


def wait_for_spans(telemetry: ServerTelemetry, names: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        spans = {s.name: s for s in telemetry.spans()}
        if names <= spans.keys():
            return spans
        assert time.monotonic() < deadline, (names, sorted(spans))
        time.sleep(0.02)


def test_background_task_has_its_own_span_and_its_exception_is_recorded(server_telemetry,
                                                                        served):
    """A FastAPI background task that fails after the response: it runs in an INTERNAL
    span of its own (``BackgroundTask {function}``), a child of the request's server span,
    that records the exception (event, ``error.type``, ERROR) and parents the task's work;
    the server span and its duration point end with the response, before the task starts,
    and stay a success."""
    port, _ = served
    assert http_get(port, "/signup").startswith(b"HTTP/1.1 200")
    spans = wait_for_spans(server_telemetry, {"GET /signup", "BackgroundTask failing_task"})
    server, task = spans["GET /signup"], spans["BackgroundTask failing_task"]
    assert (server.status.status_code, server.attributes["http.response.status_code"]) == (
        StatusCode.UNSET, 200)
    assert "error.type" not in server.attributes and not server.events
    assert task.kind is SpanKind.INTERNAL
    assert task.context.trace_id == server.context.trace_id
    assert task.parent.span_id == server.context.span_id
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "RuntimeError: background broke"
    assert dict(task.attributes) == {
        "code.function.name": f"{__name__}.failing_task", "error.type": "RuntimeError"}
    [event] = task.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "background broke"
    assert spans["inside the task"].parent.span_id == task.context.span_id
    assert server.end_time <= task.start_time, "the server span waited for the task"
    [point] = server_telemetry.duration_points()
    assert "error.type" not in point.attributes
    assert point.sum * 1e9 < task.end_time - task.start_time


def test_5xx_response_ends_before_its_background_task(server_telemetry, served):
    """A 503 answered with a background task: the server span ends when the task starts
    (not when it ends), an error for its 503 alone; the task's exception is the task's,
    not a cause of the 503."""
    port, _ = served
    assert http_get(port, "/unavailable").startswith(b"HTTP/1.1 503")
    spans = wait_for_spans(server_telemetry, {"GET /unavailable",
                                              "BackgroundTask failing_task"})
    server, task = spans["GET /unavailable"], spans["BackgroundTask failing_task"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["error.type"] == "503"
    assert server.events == ()
    assert server.end_time <= task.start_time, "the server span waited for the task"
    assert task.attributes["error.type"] == "RuntimeError"
    [point] = server_telemetry.duration_points()
    assert point.attributes["error.type"] == "503"
    assert point.sum * 1e9 < task.end_time - task.start_time


def test_sync_background_task_of_a_partial_is_named_after_its_function(server_telemetry,
                                                                       served):
    """A sync task (run in Starlette's thread pool) given as a ``functools.partial``: it
    runs, its span is named after the function and ends as a success."""
    port, seen = served
    assert http_get(port, "/sync-task").startswith(b"HTTP/1.1 200")
    spans = wait_for_spans(server_telemetry, {"GET /sync-task", "BackgroundTask sync_task"})
    task = spans["BackgroundTask sync_task"]
    assert seen == ["done"]
    assert task.status.status_code is StatusCode.UNSET
    assert task.parent.span_id == spans["GET /sync-task"].context.span_id


@pytest.mark.parametrize("path", ["/events", "/events-sync"])
def test_client_gone_mid_stream_under_uvicorn_is_no_error(server_telemetry, served, path):
    """An endless event stream (async and sync generator) whose client reads a little and
    closes the connection: the span ends with its 200 and no error, and so does its
    duration point (every SSE stream ends this way)."""
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert connection.recv(4096).startswith(b"HTTP/1.1 200")
    [span] = wait_for_spans(server_telemetry, {f"GET {path}"}).values()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes
    [point] = server_telemetry.duration_points()
    assert "error.type" not in point.attributes


def test_client_gone_during_the_upload_is_no_500(server_telemetry, served):
    """A client that sends part of a request body and goes away: the endpoint's
    ``request.body()`` raises ClientDisconnect and Starlette's error handler answers a 500
    that reaches nobody (uvicorn drops it). The request failed (``error.type``
    ClientDisconnect), but it has no status code: no phantom 500 in the span or the
    duration point."""
    port, _ = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                           + b"x" * 1000)
        time.sleep(0.2)  # (the endpoint is reading the body)
    [span] = wait_for_spans(server_telemetry, {"POST /upload"}).values()
    assert "http.response.status_code" not in span.attributes
    assert span.attributes["error.type"] == "ClientDisconnect"
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "POST", "url.scheme": "http", "http.route": "/upload",
        "error.type": "ClientDisconnect"}


def _drive_spec_2_4(app: Any, fail_after: int) -> BaseException | None:
    """One GET ``/events`` as an ASGI 2.4 server runs it: ``send`` raises OSError (uvicorn's
    ClientDisconnected is one) from message ``fail_after`` on, the client having gone."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if len(sent) >= fail_after:
            raise OSError("client disconnected")
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "scheme": "http", "method": "GET", "path": "/events",
             "raw_path": b"/events", "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    try:
        asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    except BaseException as error:  # what the server would see (and log)
        return error
    return None


async def _raw_events(scope: Any, receive: Any, send: Any) -> None:
    """A hand-written ASGI app streaming events until ``send`` fails."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        await asyncio.sleep(0)


@pytest.mark.parametrize("layer", ["fastapi", "middleware"])
def test_client_gone_mid_stream_under_an_asgi_2_4_server_is_no_error(server_telemetry,
                                                                     layer):
    """Under a server speaking ASGI 2.4, ``send`` fails once the client has gone and the
    failure reaches the application (Starlette's StreamingResponse turns it into
    ClientDisconnect; a plain app lets the OSError through): after the 200 went out, the
    span ends as is (no ERROR, no ``error.type``), whatever exception then escapes."""
    if layer == "fastapi":
        app: Any = create_app(server_telemetry, [])
    else:
        app = TelemetryASGIMiddleware(_raw_events, client=server_telemetry.context)
    escaped = _drive_spec_2_4(app, fail_after=3)
    assert escaped is not None  # (the server's to log: unchanged)
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes
    [point] = server_telemetry.duration_points()
    assert "error.type" not in point.attributes


@pytest.mark.parametrize("fail_after", [0, 1], ids=["at-start", "at-first-body"])
def test_client_gone_before_the_response_under_an_asgi_2_4_server(server_telemetry,
                                                                  fail_after):
    """Under ASGI 2.4, a client gone before the response went out (the ``send`` of its start,
    or of its first body message, before which the spec lets nothing out, fails): recorded
    as under uvicorn, which drops that response: the request failed, ``error.type``
    ClientDisconnect (not the OSError's class), no status code, no exception event; the
    OSError still escapes to the server, unchanged."""
    app = TelemetryASGIMiddleware(_raw_events, client=server_telemetry.context)
    assert type(_drive_spec_2_4(app, fail_after=fail_after)) is OSError
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ClientDisconnect"
    assert "http.response.status_code" not in span.attributes
    assert list(span.events) == []
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "error.type": "ClientDisconnect"}


def test_background_task_outside_any_request_still_runs_in_a_span(server_telemetry):
    """A ``BackgroundTask`` a program awaits itself (no request): it runs, in a span of
    its own, its exception propagating unchanged."""
    with pytest.raises(RuntimeError, match="background broke"):
        asyncio.run(BackgroundTask(failing_task, server_telemetry)())
    spans = {s.name: s for s in server_telemetry.spans()}
    assert spans["BackgroundTask failing_task"].status.status_code is StatusCode.ERROR
    assert server_telemetry.server_spans() == []
