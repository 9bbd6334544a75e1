"""Every way a program leaves exports what it made before: normal exit, sys.exit, an
unhandled exception (recorded too), SIGINT with the default handler, and a program that
installs its own SIGTERM handler and exits normally."""

from __future__ import annotations

import signal
import subprocess

import pytest

from .launcher import LAUNCHER, REPO, app, python, receiver_env

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("how", "send", "status"),
    [
        ("normal", None, 0),
        ("sys_exit", None, 4),
        ("raise", None, 1),
        # (bare Python dies of SIGINT too: it used to exit 1 under the launcher)
        ("sigint", signal.SIGINT, -signal.SIGINT),
        ("own_handler", signal.SIGTERM, 0),
    ],
)
def test_exit_path_exports_everything(otlp_receiver, how, send, status):
    """All 50 spans arrive and the exit status is the program's own."""
    proc = subprocess.Popen([LAUNCHER, *python(app("exit_paths_app.py"), how)],
                            env=receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        if send is not None:
            proc.send_signal(send)
        proc.wait(timeout=20)
    finally:
        proc.kill()
    stderr = proc.stderr.read()
    assert proc.returncode == status, stderr
    spans = otlp_receiver.wait_for_spans(51)
    assert len([s for s in spans if s.name.startswith("unit-")]) == 50
    if how == "raise":
        process_span = next(s for s in spans if s.name == "exit_paths_app")
        assert process_span.status_code == "ERROR"
        assert process_span.attributes["error.type"] == "RuntimeError"
        assert "unhandled on purpose" in stderr  # the program's own traceback, unchanged
