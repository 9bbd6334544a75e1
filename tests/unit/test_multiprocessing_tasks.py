"""``instrumentation.multiprocessing``, piece by piece: which callables travel with the
submitting context, and what a worker makes of one. The pools themselves, under every start
method, are in tests/e2e/test_process_pool_traces.py."""

from __future__ import annotations

import functools
import multiprocessing
import pickle
import traceback
import types
from multiprocessing import spawn

import pytest
from opentelemetry import context as api
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from telemetryflow_bootstrap.instrumentation import multiprocessing as tasks

SPAN = NonRecordingSpan(SpanContext(0x1234, 0x5678, False, TraceFlags(TraceFlags.SAMPLED)))
SPAWNING_POOL = types.SimpleNamespace(_ctx=multiprocessing.get_context("spawn"))
FORKING_POOL = types.SimpleNamespace(_ctx=multiprocessing.get_context("fork"))


def module_function(n: int) -> int:
    return n


def current_ids(_: object = None) -> tuple[int, int]:
    span_context = trace.get_current_span().get_span_context()
    return span_context.trace_id, span_context.span_id


def fails(_: object = None) -> None:
    raise ValueError("task failed")


def local_function() -> object:
    def inner(n: int) -> int:
        return n

    return inner


@pytest.fixture
def under_span():
    token = api.attach(trace.set_span_in_context(SPAN))
    try:
        yield
    finally:
        api.detach(token)


def _submitted(function: object, pool: object = SPAWNING_POOL) -> object:
    args, _ = tasks._with_task_context((function, [1]), {}, "func", pool, "_ctx")
    return args[0]


@pytest.mark.parametrize(("function", "findable"), [
    (module_function, True),
    (functools.partial(module_function, 1), True),
    (len, True),
    (Exception("x").__str__, True),
    (lambda n: n, False),
    (local_function(), False),
    (functools.partial(local_function(), 1), False),
], ids=["function", "partial", "builtin", "method", "lambda", "local", "partial-of-local"])
def test_pickle_can_find_says_false_only_for_what_pickle_cannot_look_up(function, findable):
    """A function pickle would look up by name and not find (so that pickling fails
    whatever we do) is told apart without pickling; anything else might pickle."""
    assert tasks._pickle_can_find(function) is findable


def test_task_runs_in_the_submitting_context_after_pickling(under_span):
    """Under a span, the callable travels with its context: unpickled (as in a worker)
    and called outside that span, it sees the submitting span as its current one."""
    task = pickle.loads(pickle.dumps(_submitted(current_ids)))
    token = api.attach(api.Context())
    try:
        assert current_ids() == (0, 0)
        assert task(None) == (SPAN.get_span_context().trace_id,
                              SPAN.get_span_context().span_id)
        assert current_ids() == (0, 0)  # (the worker's own context is left as it was)
    finally:
        api.detach(token)


def test_no_span_current_leaves_the_arguments_untouched():
    """With no span current, the very same argument objects reach the pool."""
    args, kwargs = (module_function, [1]), {"chunksize": 1}
    got_args, got_kwargs = tasks._with_task_context(args, kwargs, "func", SPAWNING_POOL, "_ctx")
    assert got_args is args and got_kwargs is kwargs


def test_unfindable_callables_travel_as_given(under_span):
    """A lambda is handed to the pool as is, so pickle's own error is the one raised."""
    function = lambda n: n  # noqa: E731
    assert _submitted(function) is function


def test_callable_given_by_keyword_travels_in_context(under_span):
    """``pool.apply_async(func=f, ...)`` is wrapped like the positional form."""
    _, kwargs = tasks._with_task_context((), {"func": current_ids}, "func", SPAWNING_POOL,
                                         "_ctx")
    assert type(kwargs["func"]) is tasks._TaskInContext


def test_workers_of_another_interpreter_get_the_callable_as_given(under_span):
    """After set_executable() to another interpreter, spawned workers might not import us:
    nothing is wrapped for them; forked workers (this process) still get the context."""
    before = spawn.get_executable()
    spawn.set_executable("/nonexistent/python-other")
    try:
        assert _submitted(module_function) is module_function
        assert type(_submitted(module_function, FORKING_POOL)) is tasks._TaskInContext
    finally:
        spawn.set_executable(before)
    assert type(_submitted(module_function)) is tasks._TaskInContext


def test_failing_task_traceback_has_no_frame_of_ours(under_span):
    """The traceback a failing task sends back goes from the pool's frame straight to the
    task's: the worker's callable is C all the way down."""
    task = pickle.loads(pickle.dumps(_submitted(fails)))
    with pytest.raises(ValueError) as raised:
        task(None)
    files = [frame.filename for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert tasks.__file__ not in files
    assert files[-1] == __file__
