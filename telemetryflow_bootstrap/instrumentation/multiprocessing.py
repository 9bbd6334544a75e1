"""Work handed to other processes through ``multiprocessing`` continues the trace of the code
that handed it over, whatever the start method (fork, spawn, forkserver).

Pool tasks
    ``multiprocessing.pool.Pool`` (``apply``/``apply_async``, ``map``/``map_async``,
    ``starmap``/``starmap_async``, ``imap``/``imap_unordered``) and
    ``concurrent.futures.ProcessPoolExecutor`` (``submit``, and so ``map``): when a span is
    current at submission, the task's callable travels as a ``_TaskInContext``, the callable
    and the W3C carrier of the current context (the global propagator's ``inject``). The
    worker unpickles that into the callable run in a copy of its own context with the
    submitter's attached, so the spans the task makes are children of the submitting span.
    Per task, not per process: a worker serves the tasks of many requests, and one made
    before any of them (a Pool created at module level) carries no useful context of its
    own. The worker's callable is ``functools.partial(Context.run, callable)``, all C: no
    frame of ours shows in the traceback a failing task sends back.
When the callable travels as given
    No span current (nothing changes at all); a ``ThreadPool`` (its tasks never leave the
    process: passing context to its threads is another matter); workers that run another
    interpreter (spawn or
    forkserver after ``set_executable``): they might not import this module, and a task they
    cannot unpickle would break the pool; a function pickle cannot find by its name (a
    lambda, a local function, or a ``functools.partial`` of one), so that pickle's own error
    reaches the program exactly as it would without us. Any other unpicklable callable (a
    method of an unpicklable object) fails with the same exception and message; only on
    Python 3.14+, which annotates pickling errors, do three notes name our wrapper.
Processes
    ``multiprocessing.Process.start()`` under a span gives the process object the carrier
    as a plain dict attribute for the duration of the call: spawn and forkserver pickle it
    with the object (unpickling it needs nothing of ours) and the child attaches it before
    ``run()``; a forked child has the context already (and gets the same one again).

The workers themselves have no process span (``_bootstrap``): their work is the tasks. No
spans or metrics of its own; reads no variables. The cost at submission, when no span is
current, is one context lookup; with one, an ``inject`` per distinct context (cached).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import types
from typing import Any

# (imported already wherever the SDK runs; an uninstrumented worker unpickling a task finds
# them on the sys.path spawn gave it)
from opentelemetry import propagate, trace
from opentelemetry.context import Context

from .. import _context_env, _diagnostics
from ..infrastructure.current_context import attach, get_current

_CARRIER_ATTRIBUTE = "_telemetryflow_trace_carrier"
_MARK = "_telemetryflow_process_context"
_POOL_METHODS = ("apply_async", "map", "map_async", "starmap", "starmap_async", "imap",
                 "imap_unordered")

# (context, carrier or None) of the last submission: a request submits many tasks under
# one context, whose carrier is then injected once. Replaced whole, so threads can share it
# (a race costs one more inject). Holds the last context alive, nothing more.
_submitted: tuple[Any, dict[str, str] | None] = (None, None)
# (spawn executable, whether it is this interpreter), for the same reason
_executable: tuple[Any, bool] = (None, False)
# In a worker: (carrier items, extracted context) of the last task unpickled
_received: tuple[Any, Any] = (None, None)


def patch(module: Any, context: Any) -> None:
    """On ``multiprocessing.process``: Process.start/_bootstrap now, the pools when their
    modules are imported (their import is the program's: never triggered here)."""
    from ._import_hooks import when_imported
    from ._method_wrappers import wrap_once

    wrap_once(module.BaseProcess, "start", _start_with_carrier)
    _wrap_bootstrap(module.BaseProcess)
    when_imported("multiprocessing.pool", _guarded(_patch_pool))
    when_imported("concurrent.futures.process", _guarded(_patch_executor))


def _guarded(patch_module: Any) -> Any:
    """A post-import hook that raises would fail the program's import: report instead."""

    def hook(module: Any) -> None:
        try:
            patch_module(module)
        except Exception as exc:
            _diagnostics.warn(f"could not instrument {module.__name__} ({type(exc).__name__}: "
                              f"{exc}); its tasks do not continue the submitting trace")

    return hook


def _patch_pool(module: Any) -> None:
    from ._method_wrappers import wrap_once

    thread_pool = getattr(module, "ThreadPool", None)

    def submit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        if thread_pool is not None and isinstance(instance, thread_pool):
            return wrapped(*args, **kwargs)
        args, kwargs = _with_task_context(args, kwargs, "func", instance, "_ctx")
        return wrapped(*args, **kwargs)

    for name in _POOL_METHODS:
        if name in vars(module.Pool):
            wrap_once(module.Pool, name, submit)


def _patch_executor(module: Any) -> None:
    from ._method_wrappers import wrap_once

    def submit(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        args, kwargs = _with_task_context(args, kwargs, None, instance, "_mp_context")
        return wrapped(*args, **kwargs)

    wrap_once(module.ProcessPoolExecutor, "submit", submit)


def _with_task_context(args: tuple, kwargs: dict, keyword: str | None, pool: Any,
                       context_attribute: str) -> tuple[tuple, dict]:
    """The arguments with the callable (first, or ``keyword=``) in the current context;
    unchanged when that is not wanted or anything here goes wrong."""
    try:
        carrier = _current_carrier()
        if carrier is None:
            return args, kwargs
        if args:
            function = args[0]
        elif keyword is not None and keyword in kwargs:
            function = kwargs[keyword]
        else:
            return args, kwargs
        if (type(function) is _TaskInContext
                or not _workers_can_import_us(getattr(pool, context_attribute, None))
                or not _pickle_can_find(function)):
            return args, kwargs
        task = _TaskInContext(function, carrier)
        if args:
            return (task, *args[1:]), kwargs
        return args, {**kwargs, keyword: task}
    except Exception:
        return args, kwargs


def _current_carrier() -> dict[str, str] | None:
    """The carrier of the current context, or None when no valid span is current."""
    global _submitted
    current = get_current()
    last_context, carrier = _submitted
    if last_context is current:
        return carrier
    carrier = None
    if trace.get_current_span(current).get_span_context().is_valid:
        carrier = {}
        propagate.inject(carrier, current)
        carrier = carrier or None
    if carrier is not None:
        # the process span now has descendants elsewhere: export it even if it is all this
        # process traces itself (see lifecycle)
        _context_env.handed_on = True
    _submitted = (current, carrier)
    return carrier


def _workers_can_import_us(mp_context: Any) -> bool:
    """Forked workers are this process; spawned ones (and the forkserver) run
    ``spawn.get_executable()`` with our ``sys.path``: safe when that is this interpreter."""
    global _executable
    if getattr(mp_context, "_name", None) == "fork":
        return True
    spawn = sys.modules.get("multiprocessing.spawn")
    if spawn is None:
        from multiprocessing import spawn
    executable = spawn.get_executable()
    last, same = _executable
    if executable is last and last is not None:
        return same
    same = executable is not None and os.fsdecode(executable) == sys.executable
    _executable = (executable, same)
    return same


def _pickle_can_find(function: Any) -> bool:
    """False for a function pickle would look up by its name and not find (a lambda, a
    local function), also inside a ``functools.partial``: pickle's own check, without
    pickling anything. True for what pickle takes by value: only pickling can tell."""
    while type(function) is functools.partial:
        function = function.func
    if not isinstance(function, types.FunctionType):
        return True
    module = sys.modules.get(function.__module__ or "")
    found: Any = module
    for part in function.__qualname__.split("."):
        found = getattr(found, part, None)
        if found is None:
            return False
    return found is function


class _TaskInContext:
    """A task's callable and the carrier of the context it was submitted in.

    Pickled as ``_in_context(function, carrier)``; never called in the submitting process
    by the pools, but called as the callable would be by anyone who does.
    """

    __slots__ = ("carrier", "function")

    def __init__(self, function: Any, carrier: dict[str, str]) -> None:
        self.function = function
        self.carrier = carrier

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _in_context, (self.function, self.carrier)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def _in_context(function: Any, carrier: dict[str, str]) -> Any:
    """In the worker: ``function`` run in a copy of the worker's context (taken now, as the
    task arrives) with the submitter's context attached; ``function`` itself if anything
    here fails. The copy is the task's alone: a pool worker runs its tasks one at a time."""
    global _received
    try:
        key = tuple(carrier.items())
        last_key, extracted = _received
        if last_key != key:
            extracted = propagate.extract(carrier, Context())
            _received = (key, extracted)
        task_context = contextvars.copy_context()
        task_context.run(attach, extracted)
        return functools.partial(task_context.run, function)
    except Exception:
        return function


def _start_with_carrier(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    try:
        carrier = _current_carrier()
        if carrier is not None:
            vars(instance)[_CARRIER_ATTRIBUTE] = carrier
    except Exception:
        carrier = None
    if carrier is None:
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)  # (spawn, forkserver: the object is pickled here)
    finally:
        vars(instance).pop(_CARRIER_ATTRIBUTE, None)


def _wrap_bootstrap(process_class: Any) -> None:
    """``_bootstrap`` runs in the child, before ``run()``. A plain wrapper, not
    ``wrap_once``: the lifecycle's flush wraps it with that, and would take ours for its
    own and stand down."""
    original = process_class.__dict__["_bootstrap"]
    candidate = original
    while candidate is not None:
        if getattr(candidate, _MARK, False):
            return
        candidate = getattr(candidate, "__wrapped__", None)

    @functools.wraps(original)
    def _bootstrap(self: Any, *args: Any, **kwargs: Any) -> Any:
        carrier = vars(self).pop(_CARRIER_ATTRIBUTE, None)
        if carrier:
            # (for the child's whole life: its work is what run() does)
            with contextlib.suppress(Exception):
                attach(propagate.extract(carrier, Context()))
        return original(self, *args, **kwargs)

    setattr(_bootstrap, _MARK, True)
    process_class._bootstrap = _bootstrap
