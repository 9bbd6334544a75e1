"""``TelemetryWSGIMiddleware``'s response body, against real servers: a server frames the
response as it would without us (``len()`` of a one-item body gives wsgiref and waitress
their ``Content-Length``; gunicorn never asks), and a ``wsgi.file_wrapper`` body reaches the
server as the object it recognises (gunicorn's sendfile, waitress's channel, wsgiref's
``sendfile()``, uWSGI's identity test), the span still ending when the server closes the
body."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import wsgiref.handlers
import wsgiref.util
from collections.abc import Iterator
from typing import Any, ClassVar
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from opentelemetry.trace import StatusCode

from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware
from tests.otlp_receiver import free_port

from ..apps.wsgi_bodies_app import PAYLOAD
from ..apps.wsgi_bodies_app import app as bodies_app
from ..e2e.launcher import LAUNCHER, REPO, VENV_BIN, receiver_env, wait_listening
from .server_fixtures import ServerTelemetry, server_telemetry
from .test_server_waitress import serving as waitress_serving

__all__ = ["server_telemetry"]


def raw_get(port: int, path: str) -> tuple[dict[str, str], list[bytes]]:
    """GET ``path`` over HTTP/1.1 (Connection: close): the response headers (lower-case
    names) and its body as the server framed it: the chunks of a chunked body, else the
    one body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), lines[0]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding") != "chunked":
        return headers, [rest]
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return headers, chunks
        chunks.append(rest[:size])
        rest = rest[size + 2:]


def _ended(telemetry: ServerTelemetry, count: int) -> list[Any]:
    """The server spans, once ``count`` have ended (a server closes the body after the
    client has its response)."""
    deadline = time.monotonic() + 5
    while len(telemetry.server_spans()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return telemetry.server_spans()


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wsgiref_serving(application: Any) -> Iterator[int]:
    with make_server("127.0.0.1", 0, application, handler_class=_Quiet) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  daemon=True)
        thread.start()
        try:
            yield server.server_port
        finally:
            server.shutdown()
            thread.join(timeout=5)


def test_wsgiref_sends_a_one_chunk_body_with_its_length(server_telemetry):
    """wsgiref sets ``Content-Length`` when ``len(body) == 1``: wrapped, a one-item body
    still gets it (it went without, the connection's close ending it)."""
    wrapped = TelemetryWSGIMiddleware(bodies_app, client=server_telemetry.context)
    with wsgiref_serving(wrapped) as port:
        headers, body = raw_get(port, "/one")
    assert body == [b"one"]
    assert headers.get("content-length") == "3"
    [span] = _ended(server_telemetry, 1)
    assert span.attributes["http.response.status_code"] == 200


class _SendfileHandler(wsgiref.handlers.SimpleHandler):
    """A server built on wsgiref that implements ``sendfile()`` (wsgiref's hook for
    "platform-specific file transmission", called only for a body that is an instance of
    its ``wsgi_file_wrapper``)."""

    sent_by_sendfile: ClassVar[list[Any]] = []

    def sendfile(self) -> bool:
        self.sent_by_sendfile.append(self.result)
        self.send_headers()
        self._write(self.result.filelike.read())
        return True


def test_wsgiref_file_wrapper_reaches_its_sendfile(server_telemetry):
    """wsgiref's ``result_is_file()`` recognises the application's ``FileWrapper`` through
    our middleware (its ``sendfile()`` sends it, nothing is iterated), and the span ends
    when the handler closes the body, with the file closed too."""
    returned: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        returned.append(bodies_app(environ, start_response))
        return returned[-1]

    wrapped = TelemetryWSGIMiddleware(app, client=server_telemetry.context)
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/file"
    out = io.BytesIO()
    _SendfileHandler.sent_by_sendfile = []
    handler = _SendfileHandler(io.BytesIO(), out, io.StringIO(), environ)
    handler.run(wrapped)
    assert _SendfileHandler.sent_by_sendfile == returned
    assert type(returned[0]) is wsgiref.util.FileWrapper
    assert out.getvalue().endswith(PAYLOAD)
    assert returned[0].filelike.closed
    [span] = server_telemetry.server_spans()
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET


def test_waitress_channel_takes_a_file_wrapper_body(server_telemetry):
    """waitress hands a ``ReadOnlyFileBasedBuffer`` body to its channel, which sends the
    file with a ``Content-Length`` from its size; iterated, it went chunked. The span ends
    when the channel closes the buffer."""
    wrapped = TelemetryWSGIMiddleware(bodies_app, client=server_telemetry.context)
    with waitress_serving(wrapped) as [port]:
        headers, body = raw_get(port, "/file")
        [span] = _ended(server_telemetry, 1)
    assert body == [PAYLOAD]
    assert headers.get("content-length") == str(len(PAYLOAD))
    assert "transfer-encoding" not in headers
    assert span.attributes["http.response.status_code"] == 200


class _Sized:
    """A two-chunk body with a length, failing at its second chunk."""

    def __init__(self) -> None:
        self.closed = False

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[bytes]:
        yield b"first"
        raise ValueError("second chunk")

    def close(self) -> None:
        self.closed = True


def test_a_body_keeps_its_length_or_its_lack_of_one_and_its_failures(server_telemetry):
    """``len()`` of the wrapped body is the application's; a body with no length offers no
    ``__len__`` (waitress calls ``len()`` unguarded once ``hasattr`` says yes); an exception
    raised while a sized body is iterated is still the span's error, and ``close`` reaches
    the application's body."""
    def sized(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return body

    def generated(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return (chunk for chunk in [b"a"])

    body = _Sized()
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    wrapped = TelemetryWSGIMiddleware(sized, client=server_telemetry.context)(
        dict(environ), lambda *args: None)
    assert len(wrapped) == 2
    iterator = iter(wrapped)
    assert next(iterator) == b"first"
    with pytest.raises(ValueError, match="second chunk"):
        next(iterator)
    wrapped.close()
    assert body.closed
    [span] = server_telemetry.server_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    unsized = TelemetryWSGIMiddleware(generated, client=server_telemetry.context)(
        dict(environ), lambda *args: None)
    assert not hasattr(unsized, "__len__")
    assert list(unsized) == [b"a"]
    unsized.close()


@pytest.mark.e2e
def test_gunicorn_sendfile_and_framing_are_kept(otlp_receiver):
    """gunicorn under the launcher, its patch wrapping a plain application: a file wrapper
    body goes out by sendfile (no length given: one chunk holding the whole file; iterated
    it was 8 KiB blocks, three chunks), a one-item body is framed as gunicorn frames it
    unwrapped (chunked: gunicorn never asks ``len()``), and both spans end with their
    status."""
    port = free_port()
    proc = subprocess.Popen(
        [LAUNCHER, "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
         "tests.apps.wsgi_bodies_app:app"],
        env=receiver_env(otlp_receiver), cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_listening(proc, port)
        _, wrapper = raw_get(port, "/wrapper")
        file_headers, file_chunks = raw_get(port, "/file")
        one_headers, one_chunks = raw_get(port, "/one")
        spans = [s for s in otlp_receiver.wait_for_spans(3, timeout=15) if s.kind == "SERVER"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert b"".join(wrapper) == b"gunicorn.http.wsgi.FileWrapper"
    assert file_headers.get("transfer-encoding") == "chunked"
    assert [len(chunk) for chunk in file_chunks] == [len(PAYLOAD)]
    assert file_chunks == [PAYLOAD]
    assert one_headers.get("transfer-encoding") == "chunked"
    assert one_chunks == [b"one"]
    assert sorted((s.attributes["url.path"], s.attributes["http.response.status_code"])
                  for s in spans) == [("/file", 200), ("/one", 200), ("/wrapper", 200)]


UWSGI = shutil.which("uwsgi", path=str(VENV_BIN))


@pytest.mark.skipif(UWSGI is None and os.environ.get("CI") != "true",
                    reason="uWSGI is not installed (pip install uwsgi)")
def test_uwsgi_gets_the_object_its_file_wrapper_returned(tmp_path):
    """uWSGI's ``wsgi.file_wrapper`` returns the file itself and sends by sendfile the body
    that is that very object: our middleware hands it over unwrapped (a built-in file takes
    no ``close`` of ours: its span ends when uWSGI frees it, after closing it), a list body
    is wrapped; both spans end with their status."""
    assert UWSGI is not None, "CI=true: uWSGI must be installed"
    port = free_port()
    with (tmp_path / "uwsgi.log").open("wb") as log:
        proc = subprocess.Popen(
            [UWSGI, "--http-socket", f"127.0.0.1:{port}", "--disable-logging",
             "--module", "tests.apps.wsgi_bodies_recorded:app"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(proc, port)
        _, file_body = raw_get(port, "/file")
        _, one_body = raw_get(port, "/one")
        _, report = raw_get(port, "/spans")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert b"".join(file_body) == PAYLOAD and b"".join(one_body) == b"one"
    recorded = json.loads(b"".join(report))
    assert recorded["bodies"] == ["BufferedRandom", "_ListBody"]
    assert recorded["spans"] == [["/file", 200], ["/one", 200]]
