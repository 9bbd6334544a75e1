"""A SIGTERM delivered twice at once is one request to stop: what the program made is still
exported. Two copies come together whenever the whole process group is signalled and a
parent relays the signal too (systemd's default KillMode, ``kill -TERM -PGID``, a terminal's
Ctrl-C), and uvicorn replays every signal it caught during its graceful shutdown, back to
back. A SIGTERM repeated later still ends a stuck exit at once (test_interrupted_exits)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, app, python, receiver_env, wait_listening

pytestmark = pytest.mark.e2e


def test_two_sigterms_at_once_export_everything_and_die_of_sigterm(otlp_receiver):
    """SIGTERM twice, a millisecond apart, to a program sleeping after 100 spans: all of
    them arrive and the process dies of SIGTERM (the second copy used to kill it at once,
    before any export: nothing arrived and nothing was said)."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    proc = subprocess.Popen([LAUNCHER, *python(app("sigterm_app.py"), "100")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.001)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, proc.stderr.read()
    spans = otlp_receiver.wait_for_spans(102)
    assert len([s for s in spans if s.name.startswith("unit-")]) == 100



def test_uvicorn_replaying_two_sigterms_loses_nothing(otlp_receiver):
    """uvicorn catches SIGTERM during its graceful shutdown and raises each one it caught
    again once it has stopped, back to back. Two SIGTERMs to ``telemetryflow-run uvicorn``
    used to lose every span still buffered (here: all 30, with a 60 s batch delay)."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    proc = subprocess.Popen(
        [LAUNCHER, "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "tests.apps.server_fastapi:app"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        wait_listening(proc, port)
        for _ in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/7", timeout=10) as r:
                assert r.status == 200
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.001)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGTERM, proc.stderr.read()
    spans = [s for s in otlp_receiver.wait_for_spans(30, timeout=20) if s.kind == "SERVER"]
    assert len(spans) == 30
