"""FastAPI's own automatic export (FASTAPI_OTEL_AUTO_CONFIGURE=true, FastAPI 0.16x) next to
telemetryflow-run: it added OTLP exporters of its own to our providers at lifespan start-up,
so every span (metric point, log record) reached the collector twice."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, clean_env, wait_listening

pytestmark = pytest.mark.e2e


def test_fastapi_auto_configure_does_not_export_everything_twice(otlp_receiver):
    """One SERVER span per request and one line saying FastAPI's exporters were not added;
    FastAPI's lifespan still starts (the app serves)."""
    port = free_port()
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_endpoint,
                    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", TELEMETRYFLOW_BATCH_TIMEOUT="200",
                    FASTAPI_OTEL_AUTO_CONFIGURE="true")
    proc = subprocess.Popen(
        [LAUNCHER, "uvicorn", "--host", "127.0.0.1", "--port", str(port),
         "tests.apps.server_fastapi:app"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(proc, port)
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/items/7", timeout=10) as r:
                assert r.status == 200
        otlp_receiver.wait_for_spans(3)
        time.sleep(1.0)  # (a second exporter's copies would have arrived by now)
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=20)[1]
    servers = [s for s in otlp_receiver.spans() if s.kind == "SERVER"]
    assert len(servers) == 3, [(s.name, s.scope_name) for s in servers]
    assert len({s.span_id for s in servers}) == 3
    lines = [line for line in err.splitlines() if "FASTAPI_OTEL_AUTO_CONFIGURE" in line]
    assert len(lines) == 1, err
    assert lines[0].startswith("telemetryflow: warning: FASTAPI_OTEL_AUTO_CONFIGURE: FastAPI's")
