"""Pre-forking servers under the launcher: every worker exports its own spans with its own
pid, and SIGTERM to the master brings everything down promptly without losing them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, receiver_env, wait_listening

pytestmark = pytest.mark.e2e



def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
        return response.status


def _serve_and_stop(args: list[str], env: dict[str, str], port: int, path: str,
                    requests: int) -> float:
    """Start the server, send ``requests`` concurrent GETs, SIGTERM the master; returns how
    long the whole process group took to exit."""
    proc = subprocess.Popen([LAUNCHER, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(proc, port)
        time.sleep(1.0)  # let every worker boot
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(_get, [f"http://127.0.0.1:{port}{path}"] * requests))
        assert statuses == [200] * requests
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        # no worker (nor helper process) left behind in the group
        while time.monotonic() - started < 10:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError("processes of the server's group still alive after 10 s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_gunicorn_preload_four_workers(otlp_receiver):
    """gunicorn --preload with 4 workers serving Flask: 100 requests give 100 SERVER spans
    from at least 2 distinct worker pids (none the master's), and SIGTERM to the master
    ends everything within 10 s."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="gunicorn-flask")
    args = ["gunicorn", "--preload", "-w", "4", "-b", f"127.0.0.1:{port}",
            "tests.apps.server_flask:app"]
    elapsed = _serve_and_stop(args, env, port, "/hello/you", 100)
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    spans = [s for s in otlp_receiver.wait_for_spans(100, timeout=20) if s.kind == "SERVER"]
    assert len(spans) == 100
    assert {s.attributes["http.route"] for s in spans} == {"/hello/<name>"}
    pids = {s.resource["process.pid"] for s in spans}
    assert len(pids) >= 2, pids


def test_uvicorn_two_workers(otlp_receiver):
    """uvicorn --workers 2 serving FastAPI (spawned workers): every request's SERVER span
    arrives, and SIGTERM ends the server within 10 s."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="uvicorn-fastapi")
    args = ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "tests.apps.server_fastapi:app"]
    elapsed = _serve_and_stop(args, env, port, "/items/7", 40)
    assert elapsed < 10, f"shutdown took {elapsed:.1f}s"
    spans = [s for s in otlp_receiver.wait_for_spans(40, timeout=20) if s.kind == "SERVER"]
    assert len(spans) == 40
    assert len({s.resource["process.pid"] for s in spans}) >= 1


@contextlib.contextmanager
def _recycling_gunicorn(env: dict[str, str]) -> Iterator[str]:
    """``gunicorn -w 2 --max-requests 5`` serving Flask under the launcher: yields the URL
    of ``/hello/you``; SIGTERM to the whole group on the way out."""
    port = free_port()
    args = ["gunicorn", "-w", "2", "--max-requests", "5", "-b", f"127.0.0.1:{port}",
            "tests.apps.server_flask:app"]
    proc = subprocess.Popen([LAUNCHER, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_listening(proc, port)
        yield f"http://127.0.0.1:{port}/hello/you"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)


def _get_while_recycling(url: str, times: int) -> None:
    """Sequential GETs, each retried for up to 10 s while a recycled worker comes back."""
    for _ in range(times):
        deadline = time.monotonic() + 10
        while True:
            try:
                assert _get(url) == 200
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)


def test_gunicorn_max_requests_recycling_loses_nothing(otlp_receiver):
    """gunicorn recycling its workers (--max-requests 5): every request's SERVER span still
    arrives, exported by the workers as they leave."""
    with _recycling_gunicorn(receiver_env(otlp_receiver,
                                          TELEMETRYFLOW_BATCH_TIMEOUT="60000")) as url:
        _get_while_recycling(url, 30)
        spans = otlp_receiver.wait_for_spans(20, timeout=20)
        server = [s for s in spans if s.kind == "SERVER"]
        assert len(server) >= 20  # the recycled workers' (4+) batches arrived before SIGTERM
        assert len({s.resource["process.pid"] for s in server}) >= 4
    assert len([s for s in otlp_receiver.wait_for_spans(30, timeout=20)
                if s.kind == "SERVER"]) == 30


def test_unsampled_requests_are_all_counted_by_recycled_workers(otlp_receiver):
    """Sample rate 0 behind gunicorn recycling its workers (--max-requests 5): no span, and
    the duration points the workers queue (unsampled: no exemplar) are all exported as each
    worker leaves, then by the last ones at SIGTERM: one point per request."""
    with _recycling_gunicorn(receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="0")) as url:
        _get_while_recycling(url, 30)

    def per_worker() -> dict[int, int]:
        counts: dict[int, int] = {}
        for point in otlp_receiver.metrics():
            if point.name == "http.server.request.duration":
                pid = point.resource["process.pid"]  # cumulative: a worker's last is its total
                counts[pid] = max(counts.get(pid, 0), point.count or 0)
        return counts

    assert otlp_receiver.wait_for(lambda _: sum(per_worker().values()) >= 30, 20), per_worker()
    assert sum(per_worker().values()) == 30
    assert len(per_worker()) >= 4  # recycled workers each exported their own
    assert [s for s in otlp_receiver.spans() if s.kind == "SERVER"] == []
