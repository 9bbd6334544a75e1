"""A real HTTP server on loopback for the client instrumentation tests.

``/status/<code>`` answers with that code, ``/redirect`` sends a 302 to ``/status/200``
(``/redirect?to=URL``: to that URL), ``/session`` answers 200 with an ``X-Echo-Session``
header (a secret to redact), ``/auth/basic`` and ``/auth/digest`` answer 401 with that
scheme's challenge until a request carries credentials of that scheme (then 200, or with
``?to=URL`` a 302 to that URL), anything else
answers 200 (an absolute-form URL too, so it serves as a forward proxy for any host, and a
``CONNECT`` opens a tunnel to itself). Every
answer carries ``X-Echo: yes`` and its body is the request's headers as JSON; the server
keeps the requests it saw (method, path, headers) so a test can check what actually went
over the wire (``traceparent`` …). ``other_echo_server`` is a second one, on another port:
a redirect from one to the other goes to another server. ``trace_header_server`` keeps the trace
header lines of each request as sent (repeats and letter case included).

Run by hand: ``python -m tests.instrumentation.http_fixtures``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class EchoServer:
    """The running server: its base URL and the requests it has seen."""

    host: str
    port: int
    seen: list[SeenRequest] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def last(self) -> SeenRequest:
        return self.seen[-1]


_CHALLENGES = {
    "basic": 'Basic realm="echo"',
    "digest": 'Digest realm="echo", nonce="6f1c2a", qop="auth", algorithm=MD5, opaque="e0"',
}


def _auth_answer(path: str, authorization: str) -> tuple[int, dict[str, str]]:
    """``/auth/basic``, ``/auth/digest``: a 401 with that scheme's challenge, unless the
    request answers it (any credentials of that scheme: what a client does after a
    challenge is what the tests look at, not the password)."""
    scheme = path.split("/")[2].split("?")[0]
    challenge = _CHALLENGES.get(scheme, _CHALLENGES["basic"])
    if authorization.lower().startswith(challenge.split(" ", 1)[0].lower() + " "):
        return 200, {}
    return 401, {"WWW-Authenticate": challenge}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.echo.seen.append(SeenRequest(self.command, self.path, headers))
        status, extra = 200, {}
        if self.path.startswith("/status/"):
            status = int(self.path.rsplit("/", 1)[1])
        elif self.path.startswith("/redirect"):
            to = parse_qs(urlsplit(self.path).query).get("to")
            status, extra = 302, {"Location": to[0] if to else "/status/200"}
        elif self.path.startswith("/session"):
            extra = {"X-Echo-Session": "echo-session-secret"}
        elif self.path.startswith("/auth/"):
            status, extra = _auth_answer(self.path, headers.get("authorization", ""))
            to = parse_qs(urlsplit(self.path).query).get("to")
            if status == 200 and to:
                status, extra = 302, {"Location": to[0]}
        body = json.dumps(headers).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Echo", "yes")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PURGE = _answer

    def do_CONNECT(self) -> None:
        """A proxy's tunnel to itself: the CONNECT is kept, answered 200, and what comes
        through the tunnel is served as any other request on this connection."""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.echo.seen.append(SeenRequest(self.command, self.path, headers))
        self.send_response(200)
        self.end_headers()
        self.close_connection = False  # (http.client's CONNECT says HTTP/1.0)


def start_echo_server() -> tuple[EchoServer, ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    echo = EchoServer("127.0.0.1", server.server_address[1])
    server.echo = echo  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, name="echo-server", daemon=True).start()
    return echo, server


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    """One loopback HTTP server for the session; tests read ``seen`` after their request."""
    echo, server = start_echo_server()
    yield echo
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def other_echo_server() -> Iterator[EchoServer]:
    """A second loopback server (another port): the far end of a cross-server redirect."""
    echo, server = start_echo_server()
    yield echo
    server.shutdown()
    server.server_close()


@pytest.fixture
def w3c_propagation() -> Iterator[None]:
    """The launcher's default propagators (W3C trace context and baggage), whatever another
    test left as the global one."""
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    yield
    propagate.set_global_textmap(previous)


class _TraceHeaderLines(BaseHTTPRequestHandler):
    """Answers 200 and keeps every trace-context header line of each request, as sent
    (name casing and repeats included)."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.lines.append([(name, value) for name, value in self.headers.items()
                                  if name.lower() in ("traceparent", "tracestate")])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def trace_header_server() -> Iterator[Any]:
    """A loopback server that keeps the trace-context header lines of each request, as sent
    (``server.lines``: one list of (name, value) per request), to see repeats the echo
    server's dict of headers would hide."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TraceHeaderLines)
    server.daemon_threads = True
    server.lines = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class H2cServer:
    """An HTTP/2 server (cleartext, prior knowledge) on loopback: ``/status/<code>``
    answers with that code, anything else 200; ``seen`` keeps each request's headers."""

    url: str
    seen: list[dict[str, str]] = field(default_factory=list)


async def _serve_h2c(reader: Any, writer: Any, seen: list[dict[str, str]]) -> None:
    import h2.config
    import h2.connection
    import h2.events

    connection = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    connection.initiate_connection()
    writer.write(connection.data_to_send())
    streams: dict[int, dict[str, str]] = {}
    try:
        while data := await reader.read(65535):
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    headers = streams.pop(event.stream_id)
                    seen.append(headers)
                    path = headers[":path"]
                    status = path.rsplit("/", 1)[1] if path.startswith("/status/") else "200"
                    body = json.dumps(headers).encode()
                    connection.send_headers(event.stream_id, [
                        (":status", status), ("content-length", str(len(body))),
                        ("x-echo", "yes")])
                    connection.send_data(event.stream_id, body, end_stream=True)
            writer.write(connection.data_to_send())
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture(scope="module")
def h2c_server() -> Iterator[H2cServer]:
    """An HTTP/2 loopback server on an event loop of its own (skipped without ``h2``, which
    httpx needs for HTTP/2 as well)."""
    pytest.importorskip("h2", reason="HTTP/2 needs the h2 package (httpx[http2])")
    import asyncio

    loop = asyncio.new_event_loop()
    seen: list[dict[str, str]] = []
    handlers: set[asyncio.Task[None]] = set()

    def connected(reader: Any, writer: Any) -> None:
        # A task of our own per connection (not a coroutine handed to asyncio): teardown
        # can then end each one, still open or not.
        task = loop.create_task(_serve_h2c(reader, writer, seen))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    thread = threading.Thread(target=loop.run_forever, name="h2c-server", daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(asyncio.start_server(
        connected, "127.0.0.1", 0), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    yield H2cServer(f"http://127.0.0.1:{port}", seen)
    asyncio.run_coroutine_threadsafe(_stop_h2c(server, handlers), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


async def _stop_h2c(server: Any, handlers: set[Any]) -> None:
    """Stop listening, then end every connection's handler and wait until each has run its
    ``finally`` (a client may still hold its connection open: without this its handler
    stayed suspended in ``read()``, and was destroyed unfinished once the loop was closed,
    which pytest reports as an unraisable exception)."""
    import asyncio

    server.close()
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    await server.wait_closed()


@pytest.fixture
def full_backlog_url() -> Iterator[str]:
    """A loopback URL whose connection attempts time out, deterministically: a listening
    socket whose accept queue is full (``listen(0)``, filled by connections never accepted),
    so Linux drops every further SYN and a client's connect waits for its timeout. (Not a
    non-routable address: no traffic leaves loopback.)"""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = []
        try:
            for _ in range(4):  # (more than the queue holds: some wait in SYN_SENT)
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                filler.connect_ex(address)
            probe = socket.socket()
            probe.settimeout(0.2)
            try:
                probe.connect(address)
            except TimeoutError:
                pass
            else:  # pragma: no cover - a kernel that accepts past the backlog
                pytest.skip("this kernel accepts connections past a full listen backlog")
            finally:
                probe.close()
            yield f"http://{address[0]}:{address[1]}/never"
        finally:
            for filler in fillers:
                filler.close()


def refused_url() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing"


if __name__ == "__main__":  # pragma: no cover - a manual aid
    running, _ = start_echo_server()
    print(f"echo server on {running.url}; Ctrl-C to stop")
    threading.Event().wait()
