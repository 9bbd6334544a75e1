"""Green threads under the installed ``telemetryflow-run``: gunicorn's gevent worker and a
program that starts with ``monkey.patch_all()``, both after our hook started the SDK's
threads, exporting to the real OTLP receiver. (gunicorn 27 has no eventlet worker.)"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ..otlp_receiver import free_port
from .launcher import LAUNCHER, REPO, app, python, receiver_env, run, wait_listening

pytest.importorskip("gevent", reason="gevent is not installed (pip install gevent)")
pytestmark = pytest.mark.e2e

_NOISE = ("Traceback", "KeyError", "LoopExit", "MonkeyPatchWarning", "dropped")


class _Downstream(BaseHTTPRequestHandler):
    """Answers with the ``traceparent`` it was sent, after a pause (requests overlap)."""

    def do_GET(self) -> None:
        time.sleep(0.05)
        body = (self.headers.get("traceparent") or "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _downstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Downstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/down"
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, tag: int) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/call?tag={tag}", timeout=20) as r:
        return tag, r.read().decode()


def test_gunicorn_gevent_worker_keeps_each_request_in_its_own_trace(otlp_receiver, tmp_path):
    """50 concurrent requests in one gevent worker (metrics every 0.3 s, so the reader
    exports while the worker boots and serves): each SERVER span has a trace of its own, its
    requests.get CLIENT span is its child and sent its traceparent, the metrics arrive, and
    SIGTERM to the master exits within TELEMETRYFLOW_SHUTDOWN_TIMEOUT + 1 s, nothing lost."""
    port, log = free_port(), tmp_path / "gunicorn.log"
    with _downstream() as url:
        env = receiver_env(otlp_receiver, DOWNSTREAM_URL=url,
                           TELEMETRYFLOW_SERVICE_NAME="gevent-flask",
                           TELEMETRYFLOW_SHUTDOWN_TIMEOUT="3",
                           TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [LAUNCHER, "gunicorn", "-k", "gevent", "--worker-connections", "100", "-w",
                 "1", "-b", f"127.0.0.1:{port}", "tests.apps.gevent_flask_app:app"],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_listening(proc, port)
            with concurrent.futures.ThreadPoolExecutor(50) as pool:
                seen = dict(pool.map(lambda tag: _get(port, tag), range(50)))
            otlp_receiver.wait_for_metric("http.server.request.duration", timeout=10)
        finally:
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            took = time.monotonic() - started
    output = log.read_text(errors="replace")
    assert proc.returncode == 0 and took < 3 + 1, (took, output)
    assert not [word for word in _NOISE if word in output], output
    spans = otlp_receiver.spans()
    servers = {s.span_id: s for s in spans if s.kind == "SERVER"}
    clients = [s for s in spans if s.kind == "CLIENT"]
    assert len(servers) == 50 and len(clients) == 50, [(s.name, s.kind) for s in spans]
    assert len({s.trace_id for s in servers.values()}) == 50
    for client in clients:
        parent = servers[client.parent_span_id]
        tag = int(parent.attributes["url.query"].removeprefix("tag="))
        assert client.trace_id == parent.trace_id
        assert client.attributes["url.full"].endswith(f"tag={tag}")
        assert seen[tag].split("-")[1:3] == [parent.trace_id, client.span_id]


def test_monkey_patched_program_exports_everything_and_exits_cleanly(otlp_receiver):
    """``monkey.patch_all()`` as the first statement: every greenlet's span pair (the inner
    one the child of its own outer one) and the counter's last value arrive at exit, the
    metric reader then runs on a green thread, and nothing is printed about it."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_PROCESS_SPAN="false")
    result = run(python(app("gevent_patched_app.py"), "20"), env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not [word for word in _NOISE if word in result.stderr], result.stderr
    spans = otlp_receiver.wait_for_spans(40, timeout=10)
    by_id = {s.span_id: s for s in spans}
    for inner in (s for s in spans if s.name.startswith("inner-")):
        assert by_id[inner.parent_span_id].name == "outer-" + inner.name.removeprefix("inner-")
    assert len({s.trace_id for s in spans}) == 20  # (greenlets share no context)
    points = otlp_receiver.wait_for_metric("gevent_app.work", timeout=10)
    assert max(p.value for p in points) == 20


def test_monkey_patched_program_exits_promptly_with_the_collector_down():
    """Nothing listening at the endpoint: the program still ends within the shutdown
    timeout, with its exit status and no traceback."""
    env = receiver_env(type("Down", (), {"grpc_endpoint": f"http://127.0.0.1:{free_port()}"}),
                       TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2")
    started = time.monotonic()
    result = run(python(app("gevent_patched_app.py"), "5"), env, timeout=30)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert took < 2 + 1.5, (took, result.stderr)
    assert "Traceback" not in result.stderr and "KeyError" not in result.stderr, result.stderr
