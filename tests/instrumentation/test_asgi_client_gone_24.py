"""A client gone before its response, under an ASGI 2.4 server (whose ``send`` then raises a
subclass of OSError, as the spec says since 2.4) and under uvicorn (0.54 declares 2.3: its
``send`` drops what a gone client would have been sent, silently): both record the same
request, failed with ``error.type`` ClientDisconnect and no status code. An OSError the
application raises itself (a file read) still names itself, under both.

The 2.4 server is a minimal real one (``Spec24Server``: HTTP/1.1 over loopback sockets, the
spec's rules for ``receive`` and ``send``), uvicorn the real one; both in a thread of this
process, so the in-memory exporters see the spans. The handlers wait for the client to
leave (``http.disconnect``) before they answer: no timing involved."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import pytest
from opentelemetry.trace import StatusCode

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware

from ..otlp_receiver import free_port
from .server_fixtures import ServerTelemetry, server_telemetry
from .test_asgi_after_response import wait_for_spans

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

__all__ = ["server_telemetry"]

MISSING_FILE = "/nonexistent/telemetryflow/answer.txt"


class ClientDisconnected(OSError):
    """What ``Spec24Server.send`` raises once the client has gone: "a server-specific
    subclass of OSError" (the ASGI HTTP spec, 2.4)."""


class Spec24Server:
    """A minimal ASGI server speaking HTTP spec 2.4 on loopback: one request per connection
    (``Connection: close``, chunked body). ``receive`` gives the request, then
    ``http.disconnect`` once the client has closed its end; ``send`` holds the response
    start until the first body message (the spec: nothing is sent before it) and raises
    ``ClientDisconnected`` once the client has gone. What the application lets escape is
    kept in ``escaped`` (what a server would log)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.escaped: list[BaseException] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> int:
        self._thread.start()
        assert self._ready.wait(10), "the ASGI 2.4 server did not start"
        return self.port

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        method, target, protocol = request_line.split(" ")
        headers = [(name.strip().lower().encode("latin-1"), value.strip().encode("latin-1"))
                   for name, value in (line.split(":", 1) for line in lines)]
        length = int(dict(headers).get(b"content-length", b"0"))
        body = await reader.readexactly(length) if length else b""
        gone = asyncio.Event()

        async def watch() -> None:  # the client closing its end: it has gone
            try:
                while await reader.read(65536):
                    pass
            except ConnectionError:
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        start: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if gone.is_set():
                raise ClientDisconnected("the client has gone")
            if message["type"] == "http.response.start":
                status = message["status"]
                start.append(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()
                             + b"".join(name + b": " + value + b"\r\n"
                                        for name, value in message.get("headers") or ())
                             + b"connection: close\r\ntransfer-encoding: chunked\r\n\r\n")
                return
            if start:
                writer.write(start.pop())
            chunk = message.get("body", b"")
            if chunk:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if not message.get("more_body", False):
                writer.write(b"0\r\n\r\n")
            await writer.drain()

        path, _, query = target.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
                 "http_version": protocol.partition("/")[2], "method": method,
                 "scheme": "http", "path": unquote(path), "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "", "headers": headers,
                 "client": writer.get_extra_info("peername")[:2],
                 "server": writer.get_extra_info("sockname")[:2]}
        try:
            await self.app(scope, receive, send)
        except Exception as error:
            self.escaped.append(error)
        finally:
            watcher.cancel()
            writer.close()


@pytest.fixture(params=["uvicorn", "asgi-2.4"])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], int]]:
    """``serve(app)``: the app under the real uvicorn, or under ``Spec24Server``; its port."""
    stops: list[Callable[[], None]] = []

    def start(app: Any) -> int:
        if request.param == "asgi-2.4":
            spec_24 = Spec24Server(app)
            stops.append(spec_24.stop)
            return spec_24.start()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="critical", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

        stops.append(stop)
        return port

    yield start
    for stop in stops:
        stop()


def request_and_leave(port: int, path: str) -> None:
    """``GET path``; the connection closed without waiting for the answer."""

    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())


def request_and_read(port: int, path: str) -> bytes:
    """``GET path``, the whole answer read."""

    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                           .encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


async def wait_for_the_client_to_leave(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/poll")
    async def poll(request: Request) -> PlainTextResponse:
        """Answers once its client has gone (a long poll whose event came too late)."""
        await wait_for_the_client_to_leave(request.receive)
        return PlainTextResponse("too late")

    @app.get("/poll-then-fail")
    async def poll_then_fail(request: Request) -> str:
        """Fails, with an OSError of its own, once its client has gone."""
        await wait_for_the_client_to_leave(request.receive)
        with open(MISSING_FILE) as file:
            return file.read()

    @app.get("/file")
    def read_file() -> str:
        """Fails with an OSError of its own while its client waits."""
        with open(MISSING_FILE) as file:
            return file.read()

    return app


def plain_app(seen: dict[str, Any], catch: bool) -> Any:
    """A hand-written ASGI app that answers once its client has gone; ``catch``: it catches
    what ``send`` raises and returns (the spec allows it). ``seen``: the spec version its
    server declared, and whether ``send`` raised."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["spec_version"] = scope["asgi"].get("spec_version", "2.0")
        await wait_for_the_client_to_leave(receive)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"too late"})
        except OSError:
            seen["send raised"] = True
            if not catch:
                raise
        else:
            seen["send raised"] = False

    return app


def assert_client_gone(telemetry: ServerTelemetry, name: str, route: str | None) -> None:
    [span] = wait_for_spans(telemetry, {name}).values()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ClientDisconnect"
    assert "http.response.status_code" not in span.attributes
    assert [event.name for event in span.events] == []
    [point] = telemetry.duration_points()
    expected = {"http.request.method": "GET", "url.scheme": "http",
                "error.type": "ClientDisconnect"}
    if route:
        expected["http.route"] = route
    assert dict(point.attributes) == expected


def test_fastapi_answer_to_a_gone_client_is_client_disconnect(server_telemetry, serve):
    """FastAPI (patched) answers after its client left: under uvicorn the answer is dropped,
    under a 2.4 server ``send`` raises an OSError that escapes; recorded alike (ERROR,
    ClientDisconnect, no status code, no exception event, the same duration point)."""
    port = serve(fastapi_app())
    request_and_leave(port, "/poll")
    assert_client_gone(server_telemetry, "GET /poll", "/poll")


@pytest.mark.parametrize("catch", [False, True], ids=["raises", "catches"])
def test_plain_asgi_answer_to_a_gone_client_is_client_disconnect(server_telemetry, serve,
                                                                  catch):
    """Any ASGI app in ``TelemetryASGIMiddleware``, letting the send failure escape or
    catching it and returning: recorded as under uvicorn, whose ``send`` (spec 2.3) does
    not raise; under the 2.4 server it did."""
    seen: dict[str, Any] = {}
    port = serve(TelemetryASGIMiddleware(plain_app(seen, catch),
                                         client=server_telemetry.context))
    request_and_leave(port, "/plain")
    assert_client_gone(server_telemetry, "GET", None)
    spec = tuple(int(part) for part in seen["spec_version"].split("."))
    if spec < (2, 4):  # (uvicorn 0.54: "2.3"; a dropped answer)
        assert seen["send raised"] is False
    else:
        assert seen["send raised"] is True


def test_application_oserror_names_itself(server_telemetry, serve):
    """An OSError the application raises itself (a missing file) is its error, not a gone
    client: with the client waiting, a 500 ``FileNotFoundError``; raised after the client
    left (the 500 page then reaches nobody: under 2.4 its ``send`` fails), the same
    ``error.type`` with an exception event, and no status code, under both servers."""
    port = serve(fastapi_app())
    assert request_and_read(port, "/file").startswith(b"HTTP/1.1 500")
    request_and_leave(port, "/poll-then-fail")
    spans = wait_for_spans(server_telemetry, {"GET /file", "GET /poll-then-fail"})
    answered, unanswered = spans["GET /file"], spans["GET /poll-then-fail"]
    for span in (answered, unanswered):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "FileNotFoundError"
        assert [event.name for event in span.events] == ["exception"]
        assert span.events[0].attributes["exception.type"] == "FileNotFoundError"
    assert answered.attributes["http.response.status_code"] == 500
    assert "http.response.status_code" not in unanswered.attributes
    points = sorted((dict(point.attributes) for point in server_telemetry.duration_points()),
                    key=lambda attributes: attributes["http.route"])
    assert points == [
        {"http.request.method": "GET", "url.scheme": "http", "http.route": "/file",
         "http.response.status_code": 500, "error.type": "FileNotFoundError"},
        {"http.request.method": "GET", "url.scheme": "http", "http.route": "/poll-then-fail",
         "error.type": "FileNotFoundError"}]


async def endless_events(scope: Any, receive: Any, send: Any) -> None:
    """A hand-written ASGI app streaming events until ``send`` fails."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        await asyncio.sleep(0.01)


def test_client_gone_mid_stream_under_the_2_4_server_is_no_error(server_telemetry):
    """Real sockets under the 2.4 server: a client that reads the start of an endless stream
    and leaves; ``send`` then fails and the OSError escapes. The response was under way:
    the span ends with its 200 and no error (every SSE stream ends this way)."""

    spec_24 = Spec24Server(TelemetryASGIMiddleware(endless_events,
                                                   client=server_telemetry.context))
    port = spec_24.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        [span] = wait_for_spans(server_telemetry, {"GET"}).values()
    finally:
        spec_24.stop()
    assert [type(error) for error in spec_24.escaped] in (
        [ClientDisconnected], [ConnectionResetError], [BrokenPipeError])
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes
    [point] = server_telemetry.duration_points()
    assert "error.type" not in point.attributes
