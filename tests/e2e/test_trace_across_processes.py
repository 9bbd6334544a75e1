"""A parent script, the CLI it runs and that CLI's HTTP call to a server: one trace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, app, python, receiver_env, run

pytestmark = pytest.mark.e2e


def test_parent_cli_and_server_are_one_trace(otlp_receiver):
    """parent → subprocess.run(child.py) → requests.get → Flask (also under the launcher):
    every span shares one trace id, and each hop's parent is the span before it."""
    port = free_port()
    server = subprocess.Popen(
        [LAUNCHER, "flask", "--app", "tests.apps.server_flask", "run", "--port", str(port)],
        env=receiver_env(otlp_receiver), cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/hello/chain"
        proc = run(python(app("chain_parent.py"), url), receiver_env(otlp_receiver))
        assert proc.returncode == 0, proc.stderr
        assert "hello chain" in proc.stdout
        assert otlp_receiver.wait_for(
            lambda r: {"chain_parent", "chain_child"} <= {s.name for s in r.spans()}
            and any(s.kind == "SERVER" for s in r.spans()), timeout=15), otlp_receiver.spans()
        spans = otlp_receiver.spans()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)
    by_name = {s.name: s for s in spans}
    parent, child = by_name["chain_parent"], by_name["chain_child"]
    client = next(s for s in spans if s.kind == "CLIENT")
    serving = next(s for s in spans if s.kind == "SERVER")
    assert len({parent.trace_id, child.trace_id, client.trace_id, serving.trace_id}) == 1
    assert child.parent_span_id == parent.span_id
    assert client.parent_span_id == child.span_id
    assert serving.parent_span_id == client.span_id
    assert serving.attributes["http.route"] == "/hello/<name>"
