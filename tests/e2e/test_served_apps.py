"""Applications of no framework we integrate with still get their server spans: the
servers (gunicorn's WSGI workers, uvicorn, wsgiref) serve them inside our middleware;
a framework application under the same servers still gets exactly one span per request."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.otlp_receiver import free_port

from .launcher import LAUNCHER, REPO, receiver_env, wait_listening

pytestmark = pytest.mark.e2e


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _serve(args: list[str], env: dict[str, str], port: int, paths: list[str]) -> list[int]:
    proc = subprocess.Popen([LAUNCHER, *args], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_listening(proc, port)
        statuses = [_get(f"http://127.0.0.1:{port}{path}") for path in paths]
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert b"Traceback" not in err and b"telemetryflow:" not in err, err.decode()
        return statuses
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _server_spans(receiver, n: int) -> list:
    spans = receiver.wait_for_spans(n, timeout=15)
    return sorted((s for s in spans if s.kind == "SERVER"),
                  key=lambda s: s.attributes["url.path"])


SERVERS = {
    "gunicorn sync": lambda port: ["gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                                   "tests.apps.plain_servers:wsgi_app"],
    "gunicorn gthread": lambda port: ["gunicorn", "-w", "1", "--threads", "2", "-b",
                                      f"127.0.0.1:{port}", "tests.apps.plain_servers:wsgi_app"],
    "uvicorn asgi": lambda port: ["uvicorn", "--port", str(port), "--log-level", "warning",
                                  "tests.apps.plain_servers:asgi_app"],
    "uvicorn wsgi": lambda port: ["uvicorn", "--port", str(port), "--log-level", "warning",
                                  "--interface", "wsgi", "tests.apps.plain_servers:wsgi_app"],
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_plain_application_gets_server_spans(otlp_receiver, server):
    """A plain WSGI/ASGI callable: one SERVER span per request, named by the method (no
    route is known), status and error as for a framework's, and its duration points."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="plain")
    assert _serve(SERVERS[server](port), env, port, ["/fail", "/ok"]) == [500, 200]
    fail, ok = _server_spans(otlp_receiver, 2)
    assert (fail.name, ok.name) == ("GET", "GET")
    assert fail.attributes["http.response.status_code"] == 500
    assert fail.attributes["error.type"] == "500" and fail.status_code == "ERROR"
    assert ok.attributes["http.response.status_code"] == 200
    assert ok.attributes["url.path"] == "/ok" and ok.attributes["server.port"] == port
    assert "error.type" not in ok.attributes
    points = otlp_receiver.wait_for_metric("http.server.request.duration", timeout=15)
    assert {p.attributes["http.response.status_code"] for p in points} == {200, 500}


def test_wsgiref_server_gets_server_spans(otlp_receiver):
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="plain")
    # three requests: the two below and wait_listening's probe connection
    proc = subprocess.Popen([LAUNCHER, "python", "tests/apps/plain_servers.py", str(port), "3"],
                            env=env, cwd=REPO, stderr=subprocess.PIPE)
    try:
        wait_listening(proc, port)
        assert [_get(f"http://127.0.0.1:{port}{p}") for p in ("/fail", "/ok")] == [500, 200]
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and b"Traceback" not in err, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    fail, ok = _server_spans(otlp_receiver, 2)
    assert fail.attributes["http.response.status_code"] == 500
    assert ok.name == "GET" and ok.attributes["url.path"] == "/ok"


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_framework_application_keeps_one_span_with_its_route(otlp_receiver, server):
    """Flask under gunicorn, FastAPI under uvicorn: the server's patch leaves the
    framework's integration alone, so one span per request, named by its route."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="framework")
    if server == "gunicorn":
        args = ["gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "tests.apps.server_flask:app"]
        path, route = "/hello/you", "/hello/<name>"
    else:
        args = ["uvicorn", "--port", str(port), "--log-level", "warning",
                "tests.apps.server_fastapi:app"]
        path, route = "/items/7", "/items/{item_id}"
    assert _serve(args, env, port, [path, path]) == [200, 200]
    time.sleep(0.5)
    spans = [s for s in otlp_receiver.wait_for_spans(2, timeout=15)
             if s.kind == "SERVER"]
    assert len(spans) == 2
    assert {s.attributes["http.route"] for s in spans} == {route}
