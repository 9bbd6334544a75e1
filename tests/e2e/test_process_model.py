"""Process model: forks, multiprocessing children and child processes, for real."""

from __future__ import annotations

import json

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_children_spans_all_arrive(otlp_receiver, method):
    """Every task span of a multiprocessing.Pool(4).map arrives, from the workers' own pids,
    whatever the start method (fork children leave through os._exit, without atexit)."""
    proc = run(python(app("process_pool_app.py"), method), receiver_env(otlp_receiver), timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(sum(n * n for n in range(16)))
    spans = otlp_receiver.wait_for_spans(16 + 1, timeout=20)
    tasks = [s for s in spans if s.name.startswith("task-")]
    assert sorted(s.name for s in tasks) == sorted(f"task-{n}" for n in range(16))
    for span in tasks:
        assert span.resource["process.pid"] == span.attributes["task.pid"]
    assert len({s.trace_id for s in tasks}) == 1 if method == "fork" else True


def test_forked_child_exports_its_own_spans_once(otlp_receiver):
    """After os.fork() the child exports its spans with its own pid (even leaving through
    os._exit), and nothing the parent had buffered is exported twice."""
    proc = run(python(app("fork_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    spans = otlp_receiver.wait_for_spans(4)
    otlp_receiver.wait_for(lambda r: False, timeout=1.0)  # let any duplicate arrive
    spans = otlp_receiver.spans()
    names = sorted(s.name for s in spans)
    assert names == ["before-fork", "fork_app", "in-child", "in-parent"], names
    for span in spans:
        if "observed.pid" in span.attributes:
            assert span.resource["process.pid"] == span.attributes["observed.pid"]
    assert len({s.span_id for s in spans}) == len(spans)


def test_subprocess_gets_trace_context_without_mutating_caller_env(otlp_receiver):
    """subprocess.run(env=...) hands the child TRACEPARENT for the current span, keeps the
    child's own variables, and leaves the caller's dict and os.environ untouched."""
    proc = run(python(app("subprocess_env_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["child"]["MY_VAR"] == "kept"
    assert report["child"]["TRACEPARENT"].startswith(
        f"00-{report['trace_id']}-{report['span_id']}-"
    )
    assert report["caller_dict_unchanged"] is True
    assert report["os_environ_has_traceparent"] is False
