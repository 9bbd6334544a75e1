"""Work handed to other processes continues the trace of the code that handed it over:
pool tasks under the span that submitted them, whatever the start method, and the worker
processes themselves have no span of their own."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.otlp_receiver import free_port

from .launcher import REPO, app, clean_env, python, receiver_env, run
from .test_worker_servers import _serve_and_stop

pytestmark = pytest.mark.e2e

METHODS = ["fork", "spawn", "forkserver"]
TASKS_PER_REQUEST = {"pool": 11, "executor": 5, "process": 1}


def _wait_gone(pid: int, timeout: float = 20) -> None:
    """Until process ``pid`` has exited (a zombie counts): it exports at its exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running after {timeout}s")


def _requests_spans(receiver, method: str, kind: str, **env: str) -> tuple[list, set[str]]:
    """Run pool_requests_app; returns every span it and its processes exported (once they
    all are gone) and the names of the task spans."""
    proc = run(python(app("pool_requests_app.py"), method, kind),
               receiver_env(receiver, **env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    tasks = {f"task-{request}-{n}" for request in "AB" for n in range(TASKS_PER_REQUEST[kind])}
    spans = receiver.wait_for_spans(len(tasks) + 3, timeout=30)
    for parent in {s.attributes["task.ppid"] for s in spans if s.name in tasks}:
        _wait_gone(parent)  # (the forkserver: it would export its own span as it leaves)
    return receiver.spans(), tasks


@pytest.mark.parametrize("kind", ["pool", "executor", "process"])
@pytest.mark.parametrize("method", METHODS)
def test_tasks_are_children_of_the_request_that_submitted_them(otlp_receiver, method, kind):
    """Two requests use one Pool / ProcessPoolExecutor made before either (or start a
    Process each): every task's span is a child of its own request's span, in the
    program's one trace, made in a worker process; no worker, nor the forkserver, exports a
    span of its own."""
    spans, tasks = _requests_spans(otlp_receiver, method, kind)
    assert sorted(s.name for s in spans) == sorted(
        {"pool_requests_app", "request-A", "request-B", *tasks})
    by_name = {s.name: s for s in spans}
    root = by_name["pool_requests_app"]
    assert {s.trace_id for s in spans} == {root.trace_id}
    for name in tasks:
        span, request = by_name[name], by_name[f"request-{name.split('-')[1]}"]
        assert span.parent_span_id == request.span_id, name
        assert span.resource["process.pid"] == span.attributes["task.pid"]
        assert span.attributes["task.pid"] != root.resource["process.pid"]


@pytest.mark.parametrize("method", METHODS)
def test_program_that_only_maps_exports_the_span_its_tasks_hang_under(otlp_receiver, method):
    """A script whose only work is a Pool.map (no span of its own): its process span, the
    parent of every task, is exported too (a lone process span is not, but this one has
    children in other processes), so the trace is whole."""
    proc = run(python(app("process_pool_app.py"), method), receiver_env(otlp_receiver),
               timeout=120)
    assert proc.returncode == 0, proc.stderr
    spans = otlp_receiver.wait_for_spans(16 + 1, timeout=30)
    root = next(s for s in spans if s.name == "process_pool_app")
    tasks = [s for s in spans if s.name.startswith("task-")]
    assert len(tasks) == 16
    assert {(s.trace_id, s.parent_span_id) for s in tasks} == {(root.trace_id, root.span_id)}


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_inherited_process_span_setting_gives_workers_none(otlp_receiver, method):
    """TELEMETRYFLOW_PROCESS_SPAN=true, which the workers inherit from the program, gives
    the program its span and still none to the workers or the forkserver (it was meant
    for the program)."""
    spans, tasks = _requests_spans(otlp_receiver, method, "pool",
                                   TELEMETRYFLOW_PROCESS_SPAN="true")
    assert sorted(s.name for s in spans) == sorted(
        {"pool_requests_app", "request-A", "request-B", *tasks})


@pytest.mark.parametrize("method", METHODS)
def test_pool_failures_read_as_without_the_launcher(otlp_receiver, method):
    """Under a span, a task that cannot be pickled (a lambda, a local function, a method of
    an object holding a lock) fails with the very exception and text it does without
    telemetryflow-run, a failing task's traceback has no frame of ours, a task submitted
    under no span sees no trace, and one submitted under the span sees its trace."""
    args = [app("pool_errors_app.py"), method]
    bare = subprocess.run(python(*args), env=clean_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert bare.returncode == 0, bare.stderr
    ours = run(python(*args), receiver_env(otlp_receiver, TELEMETRYFLOW_PROCESS_SPAN="false"),
               timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == bare.stdout
    assert "sees the submitter's trace, pool returned True" in ours.stdout
    assert "sees the submitter's trace, executor returned True" in ours.stdout


def test_uvicorn_workers_export_no_process_span(otlp_receiver):
    """uvicorn --workers 2 (workers started by multiprocessing's spawn): the requests'
    SERVER spans arrive, and no process (the server, its workers) exports a span around
    its whole life."""
    port = free_port()
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="uvicorn-fastapi")
    args = ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "tests.apps.server_fastapi:app"]
    _serve_and_stop(args, env, port, "/items/7", 10)  # (returns once every process is gone)
    spans = otlp_receiver.spans()
    assert len([s for s in spans if s.kind == "SERVER"]) == 10
    lifetime = [s for s in spans if "process.pid" in s.attributes or s.name == "python"]
    assert lifetime == []

