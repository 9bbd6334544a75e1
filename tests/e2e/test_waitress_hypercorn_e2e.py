"""Plain applications (no framework of ours) under waitress and hypercorn, started by the
installed ``telemetryflow-run`` as a user would, exporting to the real OTLP receiver:
``waitress-serve``, ``waitress.serve()`` from a program, ``hypercorn`` (one process, then
``--workers 2``) and ``hypercorn.asyncio.serve()`` from a program. The exporters' batch
timeout is 60 s, so every span here arrives only because SIGTERM flushed it: the servers are
stopped first, then the spans are looked for."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from ..otlp_receiver import OTLPReceiver, free_port
from .launcher import LAUNCHER, REPO, python, receiver_env, wait_listening
from .test_http_servers_e2e import PARENT_ID, TRACE_ID, TRACEPARENT

pytestmark = pytest.mark.e2e

_SERVERS: dict[str, Callable[[int], list[str]]] = {
    "waitress-serve": lambda port: ["waitress-serve", "--listen", f"127.0.0.1:{port}",
                                    "--threads", "2", "tests.apps.server_waitress:app"],
    "waitress.serve": lambda port: python("tests/apps/server_waitress.py"),
    "hypercorn": lambda port: ["hypercorn", "-b", f"127.0.0.1:{port}",
                               "tests.apps.server_hypercorn:app"],
    "hypercorn.asyncio.serve": lambda port: python("tests/apps/server_hypercorn.py"),
    "hypercorn-workers": lambda port: ["hypercorn", "-b", f"127.0.0.1:{port}", "--workers",
                                       "2", "tests.apps.server_hypercorn:app"],
}
# Servers that finish the requests under way at SIGTERM. Not waitress (none), nor hypercorn's
# master with workers: once one worker has stopped it terminates the others, and a request
# still under way in one of them is cut, as it is without telemetry.
_GRACEFUL = ("hypercorn", "hypercorn.asyncio.serve")


def _get(port: int, path: str, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def _start(server: str, receiver: OTLPReceiver, log: Any) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = receiver_env(receiver, TELEMETRYFLOW_SERVICE_NAME=server, PORT=str(port),
                       TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    process = subprocess.Popen([LAUNCHER, *_SERVERS[server](port)], env=env, cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    return process, port


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM the server (its master for ``--workers``) and wait for its whole group."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # (hypercorn's workers, after the master)
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return code
            time.sleep(0.05)
        raise AssertionError("processes of the server's group still alive")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_plain_applications_get_their_spans_and_sigterm_loses_none(otlp_receiver, tmp_path):
    """Per server: each request one SERVER span named by its method (no route), continuing
    the ``traceparent`` sent, exported by the process that served it (each hypercorn worker
    its own), the application inside it; a 500 and an exception are ERRORs; a request still
    in progress when a single hypercorn process gets SIGTERM is answered and its span
    exported; nothing finished is lost to the SIGTERM, and no server prints a traceback."""
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in _SERVERS}
    started = {name: _start(name, otlp_receiver, logs[name]) for name in _SERVERS}
    answers: dict[str, list[tuple[str, int, dict[str, str]]]] = {}
    try:
        for process, port in started.values():
            wait_listening(process, port)
        time.sleep(0.5)  # (hypercorn's workers: both up)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            in_flight = {name: pool.submit(_get, port, "/slow?1.0")
                         for name, (_, port) in started.items() if name in _GRACEFUL}
            for name, (_, port) in started.items():
                paths = ["/ok", "/fail", "/boom"] + (["/ok"] * 6 if "workers" in name else [])
                answers[name] = [(path, *_get(port, path, {"traceparent": TRACEPARENT}))
                                 for path in paths]
            time.sleep(0.3)  # the slow requests under way
            exits = {name: pool.submit(_stop, process)
                     for name, (process, _) in started.items()}
            slow = {name: future.result() for name, future in in_flight.items()}
            codes = {name: future.result() for name, future in exits.items()}
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for log in logs.values():
            log.close()
    output = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in _SERVERS}
    for name in _SERVERS:
        assert "telemetryflow:" not in output[name], output[name]
        # (the only traceback: the application's own LookupError, logged by the server)
        assert output[name].count("Traceback") <= 1, output[name]
    # (waitress has no graceful stop: SIGTERM ends it as it would without us)
    assert codes == {name: -signal.SIGTERM if name.startswith("waitress") else 0
                     for name in _SERVERS}
    assert {name: status for name, (status, _) in slow.items()} == \
        dict.fromkeys(in_flight, 200)

    expected = sum(len(a) for a in answers.values()) + len(in_flight)
    assert otlp_receiver.wait_for(
        lambda _: len([s for s in otlp_receiver.spans() if s.kind == "SERVER"]) >= expected,
        timeout=15), [(s.resource["service.name"], s.name) for s in otlp_receiver.spans()]
    spans = [s for s in otlp_receiver.spans() if s.kind == "SERVER"]
    assert len(spans) == expected
    by_context = {f"{s.trace_id}-{s.span_id}": s for s in spans}
    for name, requests in answers.items():
        for path, status, headers in requests:
            if path == "/boom":
                continue  # (the server's own 500: no header of the application's)
            span = by_context[headers["x-trace-context"]]  # the app ran inside it
            assert span.resource["service.name"] == name
            assert (span.name, span.attributes["url.path"]) == ("GET", path)
            assert span.attributes["http.response.status_code"] == status
            assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_ID)
            if "hypercorn" in name:
                assert span.resource["process.pid"] == int(headers["x-pid"])
        mine = [s for s in spans if s.resource["service.name"] == name]
        boom = [s for s in mine if s.attributes["url.path"] == "/boom"]
        assert [(s.status_code, s.attributes["error.type"]) for s in boom] == \
            [("ERROR", "LookupError")]
        fail = [s for s in mine if s.attributes["url.path"] == "/fail"]
        assert [(s.status_code, s.attributes["error.type"]) for s in fail] == \
            [("ERROR", "500")]
    for name in in_flight:
        (late,) = [s for s in spans if s.resource["service.name"] == name
                   and s.attributes["url.path"] == "/slow"]
        assert late.attributes["http.response.status_code"] == 200
    workers = {s.resource["process.pid"] for s in spans
               if s.resource["service.name"] == "hypercorn-workers"}
    master = started["hypercorn-workers"][0].pid
    assert master not in workers  # served by the workers

    def exporting() -> set[int]:  # (every worker exports, whichever served the requests)
        return {p.resource["process.pid"] for p in otlp_receiver.metrics()
                if p.resource["service.name"] == "hypercorn-workers"} - {master}

    assert otlp_receiver.wait_for(lambda _: len(exporting()) == 2, timeout=15), exporting()
    assert workers <= exporting()
