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

No spans or metrics of its own; reads no variables. Cost: a context lookup per
``Thread.start``; per ``submit``, a small closure and, in the worker, one context set and
reset (the ``ContextVar``'s own C methods).
"""

from __future__ import annotations

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
    when_imported("concurrent.futures.thread", _patch_executor)


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


def _patch_executor(module: Any) -> None:
    try:
        wrap_once(module.ThreadPoolExecutor, "submit", _submit)
    except Exception as exc:  # a post-import hook that raises would fail the import
        _diagnostics.warn(f"could not instrument concurrent.futures ({type(exc).__name__}: "
                          f"{exc}); its tasks do not continue the submitting trace")


def _submit(wrapped: Any, executor: Any, args: tuple, kwargs: dict) -> Any:
    if not args:  # submit(fn=...) is a TypeError: the executor says so
        return wrapped(*args, **kwargs)
    current = get_current()
    function = args[0]

    def task(*task_args: Any, **task_kwargs: Any) -> Any:
        token = attach(current)
        try:
            return function(*task_args, **task_kwargs)
        finally:
            reset(token)

    # (a worker thread this call starts gets no context: see the module's docstring)
    token = attach(_EMPTY)
    try:
        return wrapped(task, *args[1:], **kwargs)
    finally:
        reset(token)
