"""Work handed to other threads continues the trace that handed it over (threading,
concurrent.futures, asyncio's executor), as a user runs it: the launcher, the receiver."""

from __future__ import annotations

import json

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_TAGS = ("thread", "timer", "subclass", "pool-1", "pool-2", "executor", "threadpool-1",
         "threadpool-2")


def _spans_of(otlp_receiver, env) -> tuple[dict, dict]:
    proc = run(python(app("threads_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    expected = {f"in-{tag}" for tag in (*_TAGS, "pool-outside", "threadpool-outside", "map-a",
                                              "map-b")}
    assert otlp_receiver.wait_for(lambda r: expected <= {s.name for s in r.spans()},
                                  timeout=15), [s.name for s in otlp_receiver.spans()]
    return {s.name: s for s in otlp_receiver.spans()}, json.loads(proc.stdout)


def test_threads_and_pool_tasks_continue_the_trace_that_handed_them_work(otlp_receiver):
    """A Thread, a Timer, a Thread subclass with its own run(), executor tasks, map(),
    run_in_executor() and ThreadPool tasks make spans whose parent is the span current where
    the work was handed over; one worker thread serving two requests gives each task its
    own parent and a task submitted outside any span starts a trace of its own. The
    program's own context variables, exceptions and Thread semantics are unchanged."""
    spans, seen = _spans_of(otlp_receiver,
                            receiver_env(otlp_receiver, TELEMETRYFLOW_PROCESS_SPAN="false"))
    for tag in _TAGS:
        child, handler = spans[f"in-{tag}"], spans[f"handler-{tag}"]
        assert (child.trace_id, child.parent_span_id) == (handler.trace_id, handler.span_id), tag
    for tag in ("map-a", "map-b"):
        assert spans[f"in-{tag}"].parent_span_id == spans["handler-map"].span_id
    for outside in (spans["in-pool-outside"], spans["in-threadpool-outside"]):
        assert outside.parent_span_id == ""
        assert outside.trace_id not in {s.trace_id for s in spans.values() if s is not outside}
    assert seen == {
        "run left on the thread": False,
        "own variable in a thread": "unset",
        "started twice": "threads can only be started once",
        "excepthook saw": ["LookupError"],
        "map": ["map-a", "map-b"],
        "task error": "from a thread",
        "threadpool map": ["threadpool-2"],
        "pool task called by": "task",  # our wrapper, which attaches the context
        "interpreter pool task called by": "run",  # concurrent.futures' own caller
    }


def test_disabled_by_name_threads_start_traces_of_their_own(otlp_receiver):
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=threading: what a thread does belongs to no
    handler's trace (the behaviour without us), and the program runs the same."""
    spans, seen = _spans_of(otlp_receiver, receiver_env(
        otlp_receiver, TELEMETRYFLOW_PROCESS_SPAN="false",
        TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="threading"))
    assert all(spans[f"in-{tag}"].parent_span_id == "" for tag in _TAGS)
    assert seen["task error"] == "from a thread"
