"""Real servers under the installed ``telemetryflow-run`` — gunicorn, uvicorn, ``flask run``,
Django ``runserver`` — on loopback, exporting to the real OTLP receiver: SERVER spans with
``http.route`` arrive with nothing added to the apps, ``traceparent`` is continued, two
instrumented processes make one trace, and a disabled instrumentation stays off."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetryflow_bootstrap.instrumentation import _catalog_http_clients

from ..otlp_receiver import OTLPReceiver, ReceivedSpan, free_port
from .launcher import LAUNCHER, REPO, python, receiver_env

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DJANGO_MANAGE = str(REPO / "tests" / "apps" / "server_django" / "manage.py")


@contextlib.contextmanager
def serving(*servers: tuple[list[str], dict[str, str], int, Path]) -> Iterator[None]:
    """Start ``telemetryflow-run ARGS`` for each (args, env, port, log) at once, wait until
    every port accepts; SIGTERM (then SIGKILL to the group) each one after."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for args, env, _, log in servers:
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    [LAUNCHER, *args], env=env, cwd=REPO, stdout=out,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True))
        deadline = time.monotonic() + 20
        for process, (args, _, port, log) in zip(processes, servers, strict=True):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"{args[0]} did not listen on {port}:\n"
                                             + log.read_text(errors="replace")) from None
                    time.sleep(0.05)
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # the group we started
                process.wait(timeout=10)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def get_broken(port: int, path: str) -> tuple[int, bytes]:
    """GET a response whose body the server cuts short: (status, the body part read)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as response:
        try:
            return response.status, response.read()
        except http.client.IncompleteRead as incomplete:
            return response.status, incomplete.partial


def server_spans(receiver: OTLPReceiver, n: int) -> list[ReceivedSpan]:
    """Wait for ``n`` SERVER spans; fail with what did arrive."""
    def found() -> list[ReceivedSpan]:
        return [s for s in receiver.spans() if s.kind == "SERVER"]

    if not receiver.wait_for(lambda _: len(found()) >= n, timeout=15):
        raise AssertionError(f"expected {n} SERVER spans, got "
                             f"{[(s.name, s.kind, s.scope_name) for s in receiver.spans()]}")
    return found()


def env_for(receiver: OTLPReceiver, service: str, **extra: str) -> dict[str, str]:
    return receiver_env(receiver, TELEMETRYFLOW_BATCH_TIMEOUT="100",
                        TELEMETRYFLOW_SERVICE_NAME=service, **extra)


def assert_continued(span: ReceivedSpan) -> None:
    assert span.trace_id == TRACE_ID
    assert span.parent_span_id == PARENT_ID


def test_gunicorn_serves_flask_with_server_spans(otlp_receiver, tmp_path):
    """``telemetryflow-run gunicorn … tests.apps.server_flask:app``: the forked worker's
    requests arrive as route-named SERVER spans, the traceparent one continuing the trace;
    a body that breaks after its 200 is an ERROR with the exception's class."""
    port = free_port()
    args = ["gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "tests.apps.server_flask:app"]
    with serving((args, env_for(otlp_receiver, "gunicorn-flask"), port, tmp_path / "g.log")):
        assert get(port, "/hello/gun", {"traceparent": TRACEPARENT}) == (200, "hello gun")
        assert get(port, "/status/503")[0] == 503
        assert get_broken(port, "/stream/fail") == (200, b"chunk 0\n")
        spans = {s.attributes["url.path"]: s for s in server_spans(otlp_receiver, 3)}
    hello = spans["/hello/gun"]
    assert hello.name == "GET /hello/<name>"
    assert hello.attributes["http.route"] == "/hello/<name>"
    assert hello.attributes["http.response.status_code"] == 200
    assert hello.scope_name == "telemetryflow"
    assert hello.resource["service.name"] == "gunicorn-flask"
    assert_continued(hello)
    assert spans["/status/503"].status_code == "ERROR"
    broken = spans["/stream/fail"]
    assert (broken.status_code, broken.attributes["error.type"]) == ("ERROR", "RuntimeError")
    assert broken.attributes["http.response.status_code"] == 200


def test_uvicorn_serves_fastapi_with_one_server_span_per_request(otlp_receiver, tmp_path):
    """``telemetryflow-run uvicorn tests.apps.server_fastapi:app``: one SERVER span per
    request (FastAPI's native telemetry stands down), full route templates, the traceparent
    continued, and the duration metric exported with low-cardinality attributes."""
    port = free_port()
    env = env_for(otlp_receiver, "uvicorn-fastapi", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    args = ["uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "tests.apps.server_fastapi:app"]
    with serving((args, env, port, tmp_path / "u.log")):
        assert get(port, "/items/5", {"traceparent": TRACEPARENT}) == (200, '{"item_id":5}')
        assert get(port, "/api/users/u1")[0] == 200
        spans = server_spans(otlp_receiver, 2)
        points = otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.attributes.get("http.route") == "/items/{item_id}")
    time.sleep(0.3)  # anything late (a second span per request) would have arrived
    spans = [s for s in otlp_receiver.spans() if s.kind == "SERVER"]
    assert sorted(s.name for s in spans) == ["GET /api/users/{user_id}", "GET /items/{item_id}"]
    assert {s.scope_name for s in otlp_receiver.spans()} == {"telemetryflow"}
    [item] = [s for s in spans if s.attributes["url.path"] == "/items/5"]
    assert_continued(item)
    assert points[0].attributes == {"http.request.method": "GET", "url.scheme": "http",
                                    "http.route": "/items/{item_id}",
                                    "http.response.status_code": 200}


def test_flask_run_dev_server(otlp_receiver, tmp_path):
    """``telemetryflow-run flask --app tests.apps.server_flask run``: SERVER spans with the
    route, traceparent continued."""
    port = free_port()
    args = ["flask", "--app", "tests.apps.server_flask", "run", "--port", str(port)]
    with serving((args, env_for(otlp_receiver, "flask-run"), port, tmp_path / "f.log")):
        assert get(port, "/hello/dev", {"traceparent": TRACEPARENT}) == (200, "hello dev")
        [span] = server_spans(otlp_receiver, 1)
    assert span.name == "GET /hello/<name>"
    assert span.attributes["http.route"] == "/hello/<name>"
    assert_continued(span)


def test_django_runserver(otlp_receiver, tmp_path):
    """``telemetryflow-run python manage.py runserver --noreload``: the middleware is added
    by itself; SERVER spans carry the URL pattern as route, traceparent continued."""
    port = free_port()
    args = [*python(DJANGO_MANAGE, "runserver", "--noreload", f"127.0.0.1:{port}")]
    env = env_for(otlp_receiver, "django-runserver")
    with serving((args, env, port, tmp_path / "d.log")):
        assert get(port, "/hello/dj/", {"traceparent": TRACEPARENT}) == (200, "hello dj")
        assert get(port, "/api/items/3/") == (200, "item 3")
        assert get(port, "/stream/context/") == (200, "chunk 0\nchunk 1\n")
        spans = {s.attributes["url.path"]: s for s in server_spans(otlp_receiver, 3)}
    hello = spans["/hello/dj/"]
    assert hello.name == "GET /hello/<str:name>/"
    assert_continued(hello)
    assert spans["/api/items/3/"].attributes["http.route"] == "/api/items/<int:item_id>/"
    _assert_stream_work_is_a_child(otlp_receiver, spans["/stream/context/"])


def _assert_stream_work_is_a_child(receiver, server_span) -> None:
    """The queries a streaming generator ran while the server pulled its chunks (after the
    view returned) are children of the request's server span."""
    def children() -> list:
        return [s for s in receiver.spans()
                if s.trace_id == server_span.trace_id and s.kind == "CLIENT"]

    assert receiver.wait_for(lambda _: len(children()) >= 2), [s.name for s in children()]
    assert [s.attributes.get("db.system.name", s.attributes.get("db.system"))
            for s in children()] == ["sqlite", "sqlite"]
    assert {s.parent_span_id for s in children()} == {server_span.span_id}


def test_uvicorn_serves_django_asgi_and_ends_a_broken_stream(otlp_receiver, tmp_path):
    """``telemetryflow-run uvicorn server_django.asgi:application``: a streamed body that
    breaks after its 200 (async and sync iterators) is exported while the server runs,
    as an ERROR with route, status and ``error.type``, and gets its duration point; it used
    to stay open until the process exited."""
    port = free_port()
    env = env_for(otlp_receiver, "uvicorn-django", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    args = ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--app-dir",
            str(REPO / "tests" / "apps" / "server_django"), "server_django.asgi:application"]
    with serving((args, env, port, tmp_path / "ud.log")):
        assert get_broken(port, "/astream/fail/") == (200, b"chunk 0\n")
        assert get_broken(port, "/stream/fail/")[0] == 200
        assert get(port, "/hello/asgi/") == (200, "hello asgi")
        assert get(port, "/astream/context/") == (200, "chunk 0\nchunk 1\n")
        assert get(port, "/stream/context/") == (200, "chunk 0\nchunk 1\n")
        spans = {s.attributes["url.path"]: s for s in server_spans(otlp_receiver, 5)}
        for path in ("/astream/context/", "/stream/context/"):
            _assert_stream_work_is_a_child(otlp_receiver, spans[path])
        points = otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.attributes.get("http.route") == "/astream/fail/")
    for path in ("/astream/fail/", "/stream/fail/"):
        span = spans[path]
        assert span.name == f"GET {path}"
        assert span.status_code == "ERROR"
        assert span.attributes["error.type"] == "RuntimeError"
        assert span.attributes["http.response.status_code"] == 200
        assert "telemetryflow.process.terminated" not in span.attributes
    assert spans["/hello/asgi/"].status_code == "UNSET"
    assert points[0].attributes["error.type"] == "RuntimeError"


def test_flask_calling_fastapi_is_one_trace(otlp_receiver, tmp_path):
    """A Flask app (gunicorn) calling a FastAPI app (uvicorn) with ``requests``, both under
    telemetryflow-run: both server spans (and the client span between them, when the
    requests instrumentation exists) share one trace, the FastAPI span a descendant of the
    Flask one."""
    has_requests_instrumentation = any(
        entry.name == "requests" for entry in _catalog_http_clients.ENTRIES)
    back_port, front_port = free_port(), free_port()
    back_args = ["uvicorn", "--host", "127.0.0.1", "--port", str(back_port),
                 "tests.apps.server_fastapi:app"]
    front_env = env_for(otlp_receiver, "front",
                        SERVER_FLASK_DOWNSTREAM=f"http://127.0.0.1:{back_port}",
                        SERVER_FLASK_INJECT="0" if has_requests_instrumentation else "1")
    front_args = ["gunicorn", "-b", f"127.0.0.1:{front_port}", "-w", "1",
                  "tests.apps.server_flask:app"]
    with serving((back_args, env_for(otlp_receiver, "back"), back_port, tmp_path / "b.log"),
                 (front_args, front_env, front_port, tmp_path / "fr.log")):
        status, body = get(front_port, "/chain")
        assert (status, body) == (200, 'downstream said 200: {"item_id":7}')
        server_spans(otlp_receiver, 2)
    by_id = {s.span_id: s for s in otlp_receiver.spans()}
    [front] = [s for s in by_id.values()
               if s.kind == "SERVER" and s.resource["service.name"] == "front"]
    [back] = [s for s in by_id.values()
              if s.kind == "SERVER" and s.resource["service.name"] == "back"]
    assert front.name == "GET /chain" and back.name == "GET /items/{item_id}"
    assert back.trace_id == front.trace_id
    chain, span = [], back
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append((span.kind, span.resource["service.name"]))
    assert chain[-1] == ("SERVER", "front")
    if has_requests_instrumentation:
        assert ("CLIENT", "front") in chain


def test_disabled_flask_instrumentation_makes_no_server_span(otlp_receiver, tmp_path):
    """``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=flask``: the app answers, its own span is
    exported, and no SERVER span is made."""
    port = free_port()
    env = env_for(otlp_receiver, "flask-off", TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="flask")
    args = ["flask", "--app", "tests.apps.server_flask", "run", "--port", str(port)]
    with serving((args, env, port, tmp_path / "off.log")):
        assert get(port, "/work") == (200, "worked")
        [work] = otlp_receiver.wait_for_spans(1, name="flask-work")
    assert work.parent_span_id == ""
    assert [s for s in otlp_receiver.spans() if s.kind == "SERVER"] == []
