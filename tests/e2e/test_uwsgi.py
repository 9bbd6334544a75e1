"""uWSGI under the launcher, with and without lazy-apps (skipped when uWSGI is not
installed: it builds from source; .ci/run installs it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, VENV_BIN, receiver_env

pytestmark = pytest.mark.e2e

UWSGI = shutil.which("uwsgi", path=str(VENV_BIN))


@pytest.mark.skipif(UWSGI is None and os.environ.get("CI") != "true",
                    reason="uWSGI is not installed (pip install uwsgi)")
@pytest.mark.parametrize("mode", [[], ["--lazy-apps"]], ids=["preload", "lazy-apps"])
def test_uwsgi_workers_report_themselves_and_exit_promptly(otlp_receiver, mode, tmp_path):
    """uWSGI with 2 workers: every request's SERVER span arrives with a worker's own pid
    (not the master's), and (preloaded) SIGTERM ends it all within a few seconds."""
    assert UWSGI is not None, "CI=true: uWSGI must be installed"
    port = free_port()
    log = tmp_path / "uwsgi.log"
    args = ["uwsgi", "--http", f"127.0.0.1:{port}", "--master", "--processes", "2",
            "--module", "tests.apps.server_flask:app", "--die-on-term", *mode]
    with Path(log).open("wb") as out:
        proc = subprocess.Popen([LAUNCHER, *args], env=receiver_env(otlp_receiver), cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/x", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        for _ in range(19):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/x", timeout=5).read()
        spans = [s for s in otlp_receiver.wait_for_spans(20, timeout=15) if s.kind == "SERVER"]
        assert len(spans) == 20
        assert proc.pid not in {s.resource["process.pid"] for s in spans}
        if not mode:
            # With --lazy-apps, uWSGI 2.0 itself sometimes leaves a worker behind on
            # --die-on-term (seen without the launcher too), so only preload is timed.
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
            assert time.monotonic() - started < 4, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
