"""ASGI requests that end before their response, under real uvicorn run the way users run
it (``telemetryflow-run uvicorn …``, ``telemetryflow-run python app.py``), against the real
OTLP receiver: what each span and duration point says when the client goes away while the
handler works, when the server stops with requests in flight, and when the application's own
timeout or cancellation escapes its handler.

What uvicorn (0.54, ASGI 2.3 for HTTP) does decides what there is to record: it never
cancels a handler whose client has gone (the handler runs on; what it sends is dropped), and
it cancels a request only when it stops (``--timeout-graceful-shutdown`` exceeded, or a
second Ctrl-C), after which it answers the client ``500`` itself."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..otlp_receiver import OTLPReceiver, ReceivedSpan, free_port
from .launcher import LAUNCHER, REPO, python, wait_listening
from .test_asgi_hunt_e2e import by_path, duration_counts, request
from .test_http_servers_e2e import env_for, server_spans

pytestmark = pytest.mark.e2e

APP = "tests.apps.asgi_cancel_app:app"
DURATION = "http.server.request.duration"
CANCELLED = "asyncio.exceptions.CancelledError"  # (error.type: the full class name)


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], port: int, log: Path
           ) -> Iterator[subprocess.Popen[bytes]]:
    """``telemetryflow-run ARGS`` listening on ``port``; SIGTERM (then SIGKILL to its
    group) when the test has not ended it."""
    with log.open("wb") as out:
        process = subprocess.Popen([LAUNCHER, *args], env=env, cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    try:
        wait_listening(process, port)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def uvicorn(port: int, *extra: str) -> list[str]:
    return ["uvicorn", "--host", "127.0.0.1", "--port", str(port), *extra, APP]


def wait_working(log: Path, path: str, count: int = 1) -> None:
    """Until the app has said ``working {path}`` ``count`` times: its handler is under way."""
    deadline = time.monotonic() + 20
    while log.read_text(errors="replace").count(f"working {path}\n") < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never started:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def wait_logged(log: Path, text: str) -> None:
    """Until the server has logged ``text``."""
    deadline = time.monotonic() + 20
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"never logged {text!r}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)


def leave_while_working(port: int, log: Path, path: str, *, after_headers: bool = False
                        ) -> None:
    """Send ``GET path`` and close the connection once the handler is under way (after
    the response headers, with ``after_headers``): a client whose timeout ran out."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        if after_headers:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        wait_working(log, path.split("?")[0])


def in_flight(port: int, path: str) -> tuple[threading.Thread, list[object]]:
    """``GET path`` from a thread; the list receives its status code (or the error)."""
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(request(port, "GET", path)[0])
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


def point_counts(receiver: OTLPReceiver) -> dict[tuple[object, object, object], int]:
    """Duration points as (route, status code, error.type) → requests counted."""
    return {(dict(key).get("http.route"), dict(key).get("http.response.status_code"),
             dict(key).get("error.type")): count
            for key, count in duration_counts(receiver).items()}


def assert_failed_without_status(span: ReceivedSpan, error_type: str) -> None:
    assert span.status_code == "ERROR"
    assert span.attributes["error.type"] == error_type
    assert "http.response.status_code" not in span.attributes
    assert [event[0] for event in span.events] == ["exception"]


def test_client_gone_while_the_handler_works_is_no_cancellation(otlp_receiver, tmp_path):
    """``telemetryflow-run uvicorn``: clients that leave while the handler works (a slow
    endpoint, one polling ``request.is_disconnected()``, a stream whose 200 went out before
    its first chunk). uvicorn cancels none of them: each handler runs to its end, and no span
    or point says ``CancelledError`` or a 5xx nobody sent. The stream keeps its 200 (a
    response under way, ended as is); the two whose response uvicorn dropped (the slow
    one's 200, the 499 the watching one chose) failed with ``ClientDisconnect`` and no
    status code: neither was sent."""
    port, log = free_port(), tmp_path / "gone.log"
    env = env_for(otlp_receiver, "asgi-client-gone", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with server(uvicorn(port), env, port, log):
        leave_while_working(port, log, "/slow?seconds=1")
        leave_while_working(port, log, "/watch")
        leave_while_working(port, log, "/stream/late", after_headers=True)
        spans = by_path(server_spans(otlp_receiver, 3))
        otlp_receiver.wait_for(lambda r: sum(point_counts(r).values()) >= 3, timeout=15)
    for path in ("/slow", "/watch"):
        assert spans[path].status_code == "ERROR", path
        assert spans[path].attributes["error.type"] == "ClientDisconnect", path
        assert "http.response.status_code" not in spans[path].attributes, path
    stream = spans["/stream/late"]
    assert stream.status_code == "UNSET"
    assert stream.attributes["http.response.status_code"] == 200
    assert "error.type" not in stream.attributes
    assert point_counts(otlp_receiver) == {("/slow", None, "ClientDisconnect"): 1,
                                           ("/watch", None, "ClientDisconnect"): 1,
                                           ("/stream/late", 200, None): 1}


def test_response_dropped_because_its_client_left_is_not_a_success(otlp_receiver, tmp_path):
    """A slow handler whose client timed out answers 200 into the void (uvicorn drops what
    is sent on a closed connection, and logs no access line). The semantic conventions: a
    request prevented from sending its response fully failed (ERROR, ``error.type``), and
    ``http.response.status_code`` is set only for a response that was sent. As for a client
    gone mid-upload: the request failed, ``ClientDisconnect``, no status code."""
    port, log = free_port(), tmp_path / "dropped.log"
    env = env_for(otlp_receiver, "asgi-dropped", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with server(uvicorn(port), env, port, log):
        leave_while_working(port, log, "/slow?seconds=1")
        [span] = server_spans(otlp_receiver, 1)
        otlp_receiver.wait_for_metric(DURATION)
    assert span.status_code == "ERROR"
    assert span.attributes.get("error.type") == "ClientDisconnect"
    assert "http.response.status_code" not in span.attributes
    assert point_counts(otlp_receiver) == {("/slow", None, "ClientDisconnect"): 1}


def test_server_stopping_lets_requests_in_flight_finish(otlp_receiver, tmp_path):
    """``telemetryflow-run uvicorn`` (no ``--timeout-graceful-shutdown``) sent SIGTERM with
    a request in flight: uvicorn waits for it, nothing is cancelled, the request is the
    success its client received, and its span is exported before the process ends."""
    port, log = free_port(), tmp_path / "graceful.log"
    env = env_for(otlp_receiver, "asgi-graceful")
    with server(uvicorn(port), env, port, log) as process:
        thread, outcome = in_flight(port, "/slow?seconds=1")
        wait_working(log, "/slow")
        process.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert process.wait(timeout=30) == -signal.SIGTERM
    assert outcome == [200]
    [span] = server_spans(otlp_receiver, 1)
    assert (span.name, span.status_code) == ("GET /slow", "UNSET")
    assert span.attributes["http.response.status_code"] == 200
    assert "error.type" not in span.attributes


@pytest.mark.parametrize("launch", ["uvicorn-graceful-timeout", "python-app-second-ctrl-c"])
def test_server_stopping_cancels_requests_in_flight(otlp_receiver, tmp_path, launch):
    """A server stopping with a request in flight: past ``--timeout-graceful-shutdown``
    (``telemetryflow-run uvicorn``, SIGTERM) or on a second Ctrl-C (``telemetryflow-run
    python app.py`` calling ``uvicorn.run``) uvicorn cancels the request's task, then sends
    the client its own 500. The request failed: ERROR, ``error.type`` CancelledError, an
    exception event and a duration point saying so; no status code, as for any exception
    that escapes to the server (its 500 goes out past the application, unseen); the span is
    exported before the process ends."""
    port, log = free_port(), tmp_path / "stop.log"
    env = env_for(otlp_receiver, "asgi-stopping", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    if launch == "uvicorn-graceful-timeout":
        args, signals = uvicorn(port, "--timeout-graceful-shutdown", "1"), [signal.SIGTERM]
    else:
        args = python("tests/apps/asgi_cancel_app.py", str(port))
        signals = [signal.SIGINT, signal.SIGINT]
    with server(args, env, port, log) as process:
        thread, outcome = in_flight(port, "/slow?seconds=30")
        wait_working(log, "/slow")
        for number in signals:
            process.send_signal(number)
            if len(signals) > 1:  # (the second forces the exit once uvicorn waits)
                wait_logged(log, "Waiting for connections to close")
        thread.join(timeout=30)
        assert process.wait(timeout=30) is not None
    assert outcome == [500]
    [span] = server_spans(otlp_receiver, 1)
    assert span.name == "GET /slow"
    assert_failed_without_status(span, CANCELLED)
    otlp_receiver.wait_for_metric(DURATION)
    assert point_counts(otlp_receiver) == {("/slow", None, CANCELLED): 1}


def test_app_timeouts_and_cancellations_that_escape_are_server_errors(otlp_receiver,
                                                                     tmp_path):
    """The application's own deadline that escapes its handler (``asyncio.wait_for``,
    ``anyio.fail_after``: a ``TimeoutError``) is a server error like any other exception:
    500, ERROR, ``error.type`` TimeoutError. A ``CancelledError`` of its own making (it
    awaited a task it cancelled; nobody cancelled the request) is one too: uvicorn answers
    500, the span is ERROR with ``error.type`` CancelledError."""
    port, log = free_port(), tmp_path / "app.log"
    env = env_for(otlp_receiver, "asgi-app-timeouts", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with server(uvicorn(port), env, port, log):
        statuses = [request(port, "GET", path)[0] for path in
                    ("/timeout/asyncio", "/timeout/anyio", "/cancelled/inner")]
        spans = by_path(server_spans(otlp_receiver, 3))
        otlp_receiver.wait_for(lambda r: sum(point_counts(r).values()) >= 3, timeout=15)
    assert statuses == [500, 500, 500]
    for path in ("/timeout/asyncio", "/timeout/anyio"):
        span = spans[path]
        assert (span.status_code, span.attributes["error.type"]) == ("ERROR", "TimeoutError")
        assert span.attributes["http.response.status_code"] == 500
    assert_failed_without_status(spans["/cancelled/inner"], CANCELLED)
    assert point_counts(otlp_receiver) == {
        ("/timeout/asyncio", 500, "TimeoutError"): 1, ("/timeout/anyio", 500, "TimeoutError"): 1,
        ("/cancelled/inner", None, CANCELLED): 1}
