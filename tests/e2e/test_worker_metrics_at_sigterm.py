"""A pre-forking server's workers stopped by one SIGTERM to the master, against a collector
that answers: each worker's last metric export arrives and nothing is said lost.

Why: a uvicorn worker (a multiprocessing child) ends twice at once. Its server returns,
so the process's target returns and its end-of-process flush runs on the main thread,
while the SIGTERM that uvicorn raises again runs the shutdown on our thread. That flush's
collection waited behind the shutdown's last export, and the reader's shutdown then closed
the exporter under it (gRPC: CANCELLED, "Channel closed!", or "Exporter already
shutdown"): its points were counted lost and every worker warned ``metric points=19``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest

from tests.otlp_receiver import OTLPReceiver, free_port

from .launcher import LAUNCHER, REPO, receiver_env, wait_listening

pytestmark = pytest.mark.e2e

_REQUESTS = 10
_SERVERS = {
    "uvicorn": lambda port: ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port",
                             str(port), "tests.apps.server_fastapi:app"],
    "gunicorn": lambda port: ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                              "tests.apps.server_flask:app"],
}
_PATHS = {"uvicorn": "/items/7", "gunicorn": "/hello/you"}



def _serve_and_sigterm(server: str, env: dict[str, str]) -> str:
    """Start ``server`` under the launcher, send ``_REQUESTS`` GETs, one SIGTERM to the
    master; returns everything the group wrote to stderr."""
    port = free_port()
    proc = subprocess.Popen([LAUNCHER, *_SERVERS[server](port)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_listening(proc, port)
        time.sleep(1.5)  # let every worker boot
        for _ in range(_REQUESTS):
            url = f"http://127.0.0.1:{port}{_PATHS[server]}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
                response.read()
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        return err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


@pytest.mark.parametrize("server", list(_SERVERS))
def test_workers_last_metric_exports_arrive_at_one_sigterm(
        otlp_receiver: OTLPReceiver, server: str) -> None:
    """One SIGTERM to the master of a two-worker server (batches held until the exit): no
    warning of ours, and the workers' duration points count every request."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="30000")
    err = _serve_and_sigterm(server, env)
    assert [x for x in err.splitlines() if x.startswith("telemetryflow: warning:")] == [], err

    def per_worker() -> dict[int, int]:
        counts: dict[int, int] = {}
        for point in otlp_receiver.metrics():
            if point.name == "http.server.request.duration":
                pid = point.resource["process.pid"]  # cumulative: a worker's last is its total
                counts[pid] = max(counts.get(pid, 0), point.count or 0)
        return counts

    otlp_receiver.wait_for(lambda _: sum(per_worker().values()) >= _REQUESTS, 10)
    assert sum(per_worker().values()) == _REQUESTS, per_worker()
