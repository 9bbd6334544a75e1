"""Work handed to another thread continues the trace of the code that handed it over.

A thread starts with an empty ``contextvars`` context (before Python 3.14), so without this
a request handler's ``ThreadPoolExecutor.submit``/``loop.run_in_executor`` task or
``Thread(target=...)`` makes spans, logs and HTTP calls that belong to no trace: new roots,
their outbound ``traceparent`` starting a trace of its own.

``threading.Thread.start``
    Under a current OpenTelemetry context (a span, baggage), the thread runs its ``run()``
    with that context attached (``threading.Timer`` and subclasses that override ``run``
    included). Only OpenTelemetry's context travels: the program's own context variables
    keep their usual per-thread meaning. Threads of ours and of the OpenTelemetry SDK
    (named ``telemetryflow-*``/``Otel*``) are left alone.
``concurrent.futures.ThreadPoolExecutor.submit`` (so ``map`` and ``run_in_executor``)
    Each task runs in the context current at its submission, an empty one included: a
    worker thread serves the tasks of many requests, and one submitted outside any span
    must not run in whatever context an earlier task had. The pool's worker threads are
    started without one (they would otherwise keep the first submitter's context, and its
    span, alive for the pool's life).
``multiprocessing.pool.ThreadPool`` (``apply``/``apply_async``, ``map``/``starmap``/``imap``
and their variants)
    The same, per task; the pool's threads (workers and handlers) start without a context.

No spans or metrics of its own; reads no variables. Cost: a context lookup per
``Thread.start``; per ``submit``, a small closure and, in the worker, one context set and
reset (the ``ContextVar``'s own C methods).
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _diagnostics
from ..infrastructure.current_context import attach, get_current, reset
from ._method_wrappers import wrap_once

_NOT_OURS = ("telemetryflow", "Otel")  # name prefixes of the threads we never give a context
_EMPTY: Any = None  # an empty Context, made at patch time


def patch(module: Any, context: Any) -> None:
    """On ``threading`` (imported before any program code): ``Thread.start`` now, the
    executor when ``concurrent.futures.thread`` is imported."""
    global _EMPTY
    from opentelemetry.context import Context

    from ._import_hooks import when_imported

    _EMPTY = Context()
    wrap_once(module.Thread, "start", _start)
    when_imported("concurrent.futures.thread", _guarded(_patch_executor))
    when_imported("multiprocessing.pool", _guarded(_patch_thread_pool))


def _start(wrapped: Any, thread: Any, args: tuple, kwargs: dict) -> Any:
    current = get_current()
    if not current or thread.name.startswith(_NOT_OURS):
        return wrapped(*args, **kwargs)
    try:
        _run_in(thread, current)
    except Exception:  # a thread class we cannot read: it starts as it would without us
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)
    except BaseException:
        vars(thread).pop("run", None)
        raise


def _run_in(thread: Any, context: Any) -> None:
    """Make ``thread.run`` run with ``context`` attached. An instance attribute shadows the
    class's ``run``, whichever class defines it; it is removed again when ``run`` returns
    (so the thread object does not keep the context, and its span, alive)."""
    run = thread.run
    own = vars(thread)

    def run_in_context() -> None:
        token = attach(context)
        try:
            run()
        finally:
            reset(token)
            if own.get("run") is run_in_context:
                del own["run"]

    own["run"] = run_in_context


def _guarded(patch_module: Any) -> Any:
    """A post-import hook that raises would fail the program's import: report instead."""

    def hook(module: Any) -> None:
        try:
            patch_module(module)
        except Exception as exc:
            _diagnostics.warn(f"could not instrument {module.__name__} ({type(exc).__name__}: "
                              f"{exc}); its tasks do not continue the submitting trace")

    return hook


def _patch_executor(module: Any) -> None:
    global _THREAD_POOL
    _THREAD_POOL = module.ThreadPoolExecutor
    wrap_once(module.ThreadPoolExecutor, "submit", _submit)


_THREAD_POOL: Any = None


@functools.lru_cache(maxsize=64)
def _in_other_interpreters(executor_class: type) -> bool:
    """Python 3.14's ``InterpreterPoolExecutor`` is a ``ThreadPoolExecutor`` whose tasks
    are pickled into other interpreters: a closure of ours would not pickle (and the
    context would not apply there), so its tasks go as given."""
    return any(cls.__module__ == "concurrent.futures.interpreter"
               for cls in executor_class.__mro__)


def _submit(wrapped: Any, executor: Any, args: tuple, kwargs: dict) -> Any:
    if not args:  # submit(fn=...) is a TypeError: the executor says so
        return wrapped(*args, **kwargs)
    if type(executor) is not _THREAD_POOL and _in_other_interpreters(type(executor)):
        return wrapped(*args, **kwargs)
    task = _in_context(args[0], get_current())
    # (a worker thread this call starts gets no context: see the module's docstring)
    token = attach(_EMPTY)
    try:
        return wrapped(task, *args[1:], **kwargs)
    finally:
        reset(token)


def _in_context(function: Any, context: Any) -> Any:
    def task(*args: Any, **kwargs: Any) -> Any:
        token = attach(context)
        try:
            return function(*args, **kwargs)
        finally:
            reset(token)

    return task


_POOL_METHODS = ("apply_async", "map", "map_async", "starmap", "starmap_async", "imap",
                 "imap_unordered")


def _patch_thread_pool(module: Any) -> None:
    """``ThreadPool`` inherits its task methods from ``Pool``: they are given to it as its
    own, each calling what ``Pool`` has at the time of the call (the multiprocessing patch's
    wrapper included), so a process ``Pool`` is untouched. ``apply`` goes through
    ``apply_async``."""
    pool = module.ThreadPool
    if getattr(pool, "_telemetryflow_tasks_in_context", False):
        return
    for name in _POOL_METHODS:
        setattr(pool, name, _task_method(module.Pool, name))
    init = pool.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        token = attach(_EMPTY)  # its threads start here: none keeps this context
        try:
            init(self, *args, **kwargs)
        finally:
            reset(token)

    pool.__init__ = __init__
    pool._telemetryflow_tasks_in_context = True


def _task_method(base: type, name: str) -> Any:
    @functools.wraps(getattr(base, name))
    def in_context(self: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(base, name)(self, _in_context(func, get_current()), *args, **kwargs)

    return in_context
