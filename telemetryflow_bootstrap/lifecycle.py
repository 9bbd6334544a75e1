"""Process events, in one place: interpreter exit, SIGTERM, multiprocessing children, and
unhandled exceptions.

Every path ends in the same bounded shutdown (``TELEMETRYFLOW_SHUTDOWN_TIMEOUT``): end the
process span, flush, stop. SIGTERM is only handled when the program left it at the default:
we end the spans still open (marked terminated), export what is buffered, then die of SIGTERM
exactly as the program would have (same exit status). A handler the program installs later
simply replaces ours — its exit then runs the atexit path. ``multiprocessing`` children leave
through ``os._exit`` (no atexit), so their telemetry is flushed when their target returns.
These last exports give an unreachable backend one attempt (``infrastructure.reachability``),
and a SIGINT or SIGTERM while the exit waits for them ends the process at once, of that
signal (``_signals_end_the_flush``).
Fork safety lives with the things that need it (batch queues, lazy exporters), registered
through ``os.register_at_fork``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from . import _diagnostics

_state: dict[str, Any] = {}
_shutdown_lock = threading.Lock()


def install(
    client: Any, timeout: float, *, process_span: Any = None, open_spans: Any = None
) -> None:
    if _state.get("client") is client:
        return
    _state.update(client=client, timeout=timeout, process_span=process_span, open_spans=open_spans)
    atexit.register(_shutdown, "exit")
    if hasattr(os, "register_at_fork"):
        # The parent's process span is the parent's to end: a forked child must not end (and
        # so export) its copy. The child's spans stay in the trace as its children.
        os.register_at_fork(
            after_in_child=_forget_parents_exit,
            after_in_parent=lambda: _state.__setitem__("forked", True),
        )
    _install_sigterm()
    _install_excepthook()
    _flush_multiprocessing_children()
    _no_new_pool_workers_when_terminating()
    _flush_before_os_exit()


def _forget_parents_exit() -> None:
    _state.pop("process_span", None)
    _state.pop("last_flushes_started", None)


def _last_flushes_started(why: str) -> float:
    """When this process's last flushes began: together they take at most one
    TELEMETRYFLOW_SHUTDOWN_TIMEOUT. A multiprocessing child flushes when its target returns
    and again at its exit (``os._exit`` when forked, atexit when spawned): with a collector
    that never answers it waited the timeout twice. An ``exec`` that fails lets the program
    go on, so the flush before it is not one of them."""
    now = time.monotonic()
    if why == "exec":
        return now
    return _state.setdefault("last_flushes_started", now)


def _end_process_span(terminated: bool = False) -> None:
    """End the span around this run — but a run that traced nothing else and continues no
    parent's trace gets no trace at all: a lone empty span says nothing, and exporting it
    would make every trivial Python process pay for the exporter stack at exit."""
    span = _state.pop("process_span", None)
    if span is None:
        return
    open_spans = _state.get("open_spans")
    from . import _context_env

    lonely = (
        getattr(span, "parent", None) is None
        and not _context_env.handed_on
        and not _state.get("forked")
        and open_spans is not None
        and open_spans.started <= 1
    )
    if lonely and not terminated:
        return
    try:
        if terminated:
            span.set_attribute("telemetryflow.process.terminated", True)
        span.end()
    except Exception:
        pass


def _shutdown(why: str) -> None:
    client = _state.get("client")
    if client is None:
        return
    with _shutdown_lock:
        if not client.is_initialized:
            return
        timeout = _state["timeout"]
        _end_process_span(terminated=why == "SIGTERM")
        started = _last_flushes_started(why)
        from .infrastructure.reachability import exit_summary

        try:
            with _signals_end_the_flush(why), exit_summary(process_ends=True):
                ok = client.shutdown(max(timeout - (time.monotonic() - started), 0.0))
        except Exception as exc:
            _diagnostics.warn(f"shutdown at {why} failed: {exc!r}")
            return
        except BaseException:
            # The program's own signal handler raised (SystemExit, KeyboardInterrupt) while
            # its exit waited for us: the export is abandoned, the exit goes on.
            _diagnostics.warn(_not_exported(why, timeout, time.monotonic() - started,
                                            client.get_status(), abandoned="a signal"))
            return
        if not ok:
            _warn_not_exported(why, timeout, time.monotonic() - started, client.get_status())
    if why == "exit":
        _keep_keyboard_interrupt_status()


@contextlib.contextmanager
def _signals_end_the_flush(why: str) -> Iterator[None]:
    """Meanwhile, a SIGINT or SIGTERM ends the process at once (``_abandon_exit``).

    Why: the program is exiting and only waits for our last export (a collector that
    does not answer: up to TELEMETRYFLOW_SHUTDOWN_TIMEOUT). Bare, it would be gone; a
    Ctrl-C then raised KeyboardInterrupt inside our atexit function (a traceback, exit
    status 1) and a SIGTERM waited for the export. Only where the signal is at Python's
    default or ours, and only on the main thread (the only one that may set handlers); a
    SIGTERM left at SIG_DFL kills at once anyway.

    Not SIGTERM in a ``multiprocessing`` child: ``Pool.terminate()`` (the end of every
    ``with Pool() as pool:``) sends it to workers that just ran their last tasks and are
    exporting those tasks' spans; our SIGTERM handler lets that export finish (bounded by
    the shutdown timeout, and quick unless the collector hangs) before the worker dies."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["flushing"] = why
    replaced: dict[int, Any] = {}
    abandoning: list[tuple[int, tuple[Any, ...]]] = [
        (signal.SIGINT, (signal.default_int_handler,))]
    if not _state.get("multiprocessing_child"):
        abandoning.append((signal.SIGTERM, (_on_sigterm,)))
    for signum, defaults in abandoning:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            if signal.getsignal(signum) in defaults:
                replaced[signum] = signal.signal(signum, _abandon_exit)
    try:
        yield
    finally:
        _state.pop("flushing", None)
        for signum, previous in replaced.items():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) is _abandon_exit:
                    signal.signal(signum, previous)


# A SIGTERM this soon after the one that started the termination is a copy of it (see
# _abandon_exit): machine-made copies come within milliseconds, a person's second try later.
_REPEAT_S = 0.1


def _abandon_exit(signum: int, frame: Any) -> None:
    """A SIGINT or SIGTERM while the process only waits for its last export: say what is
    lost (one line), then die of that signal as bare Python would have (SIGINT: of an
    unhandled KeyboardInterrupt, which is death by SIGINT too).

    Runs on the main thread, maybe interrupting our own code inside a lock it holds:
    so it takes none (no ``_diagnostics`` lock: the line is written directly).

    A SIGTERM within ``_REPEAT_S`` of the one that started the termination is a copy of
    it, not a second request: ignored. Copies come together when the whole process group
    is signalled and a parent relays the signal too (systemd's default KillMode, ``kill
    -TERM -PGID``), and uvicorn raises again, back to back, every signal it caught during
    its graceful shutdown; either would otherwise lose everything still buffered."""
    if signum == signal.SIGTERM and not _state.get("abandoning"):
        first = _state.get("signalled_at")
        if first is not None and time.monotonic() - first < _REPEAT_S:
            return
    if _state.get("abandoning"):
        _die_of(signum)
    _state["abandoning"] = True
    try:
        name = signal.Signals(signum).name
        client = _state.get("client")
        if client is not None and _diagnostics.enabled_for("warn"):
            line = _not_exported(_state.get("flushing", "exit"), _state.get("timeout", 0.0),
                                 0.0, client.get_status(), abandoned=name)
            os.write(2, f"telemetryflow: warning: {line}\n".encode("utf-8", "replace"))
    except Exception:
        pass
    _die_of(signum)


def _die_of(signum: int) -> None:
    """Death by ``signum``; where that cannot be (not the main thread, which alone may
    reset a handler; PID 1, whom the kernel does not kill for a default-action signal it
    sends itself: a container's exec-form ENTRYPOINT), the exit status a shell reports
    for it. Never through our ``os._exit`` wrapper, which would export first."""
    real_exit = _state.get("real_exit", os._exit)
    try:
        signal.signal(signum, signal.SIG_DFL)
    except (ValueError, OSError):
        real_exit(128 + signum)
    os.kill(os.getpid(), signum)
    time.sleep(0.5)
    real_exit(128 + signum)


def _keep_keyboard_interrupt_status() -> None:
    """A program that ends with an unhandled ``KeyboardInterrupt`` dies of SIGINT (exit
    status 130 in a shell); keep it so.

    Why: CPython remembers that unhandled ``KeyboardInterrupt`` in a flag, which every
    ``exec``/``eval`` of a *string* clears, on any thread, up to the very end of exit. Our
    export thread may still be importing the exporter stack when the program is
    interrupted early, and imports run such code (``namedtuple``, ``dataclasses``): the
    program would then exit with status 1. CPython sets the flag when code run from a
    string raises ``KeyboardInterrupt``, so running one such string here, after our export
    (this atexit function is registered first, so it runs last), sets it again. Only for
    the program's own unhandled interrupt: the traceback printed at the end of the main
    module (or ``runpy``'s run of it), not one left behind by an interactive session."""
    value = getattr(sys, "last_value", None)
    if not isinstance(value, KeyboardInterrupt) or sys.flags.inspect:
        return
    tb = getattr(sys, "last_traceback", None)
    if tb is None or tb.tb_frame.f_globals.get("__name__") not in ("__main__", "runpy"):
        return
    with contextlib.suppress(KeyboardInterrupt):
        exec("raise KeyboardInterrupt")  # (see above: sets CPython's flag)


def _warn_not_exported(why: str, timeout: float, took: float, status: dict[str, Any],
                       queued_lost: bool = False) -> None:
    """Say ``_not_exported`` unless an earlier last flush of this process said it already
    with the same counts (a multiprocessing worker flushes when its target returns, then
    at its exit or at the pool's SIGTERM: the counts are the process's, not the flush's)."""
    counts = tuple(_lost(status, kind, queued_lost) for kind in _KINDS)
    if _state.get("reported_drops") == counts:
        return
    _state["reported_drops"] = counts
    _diagnostics.warn(_not_exported(why, timeout, took, status, queued_lost=queued_lost))


_KINDS = ("spans", "logs", "metric_points")


def _lost(status: dict[str, Any], kind: str, queued_lost: bool) -> Any:
    """``kind``'s items dropped, and (``queued_lost``) those still queued or being exported,
    which the process does not wait for."""
    dropped = status.get(f"{kind}_dropped")
    if not queued_lost or not isinstance(dropped, int):
        return dropped
    return dropped + int(status.get(f"{kind}_queued") or 0)


def _not_exported(why: str, timeout: float, took: float, status: dict[str, Any],
                  abandoned: str | None = None, queued_lost: bool = False) -> str:
    """What ended the exit's exports, naming the setting that did: a signal that abandoned
    them; the backend that could not be reached at all; the shutdown deadline only if it
    was reached; otherwise the backend refused or each export gave up after
    TELEMETRYFLOW_TIMEOUT (the deadline the exporters work to, much shorter by default).
    Abandoned, or the process ending at once (``queued_lost``), what was still queued or
    being exported is lost too."""
    unreachable = status.get("backend_unreachable")
    if abandoned is not None:
        cause = f"(abandoned on {abandoned})"
    elif took >= timeout:
        cause = f"within {timeout:g}s (TELEMETRYFLOW_SHUTDOWN_TIMEOUT)"
    elif unreachable:
        cause = f"because {unreachable}"
    else:
        cause = ("after the exports failed (backend down or rejecting, or no answer within "
                 "TELEMETRYFLOW_TIMEOUT)")
    if unreachable and abandoned is None and took >= timeout:
        cause += f"; {unreachable}"

    spans, logs, points = (_lost(status, kind, queued_lost or abandoned is not None)
                           for kind in _KINDS)
    return (
        f"not all telemetry was exported at {why} {cause}; dropped: "
        f"spans={spans} logs={logs} metric points={points}{_encoding_losses(status)}"
    )


# What an export left out or changed to fit OTLP, the backend not involved: (status key,
# what the exit line calls it) per signal, then per value.
_LEFT_OUT = (("unencodable", "unencodable"), ("too_large", "past the request size limit"))
_CHANGED = (("attributes_left_out", "attributes left out"),
            ("values_sent_as_text", "values sent as text"),
            ("metric_values_sent_as_double", "metric values sent as double"))


def _encoding_losses(status: dict[str, Any]) -> str:
    """What the exit line adds, only where not zero, to tell encoding losses from what
    the backend (or the deadline) lost: of the items dropped, those left out of exports
    that went on without them, and the values left out or changed, e.g. ``(of these,
    unencodable: spans=1; past the request size limit: logs=2); attributes left out=3``."""
    groups = []
    for key, name in _LEFT_OUT:
        counts = [f"{kind}={status[f'{kind}_{key}']}" for kind in _KINDS
                  if _nonzero(status.get(f"{kind}_{key}"))]
        if counts:
            groups.append(f"{name}: {' '.join(counts)}")
    out = f" (of these, {'; '.join(groups)})" if groups else ""
    changed = [f"{name}={status[key]}" for key, name in _CHANGED if _nonzero(status.get(key))]
    return out + (f"; {', '.join(changed)}" if changed else "")


def _nonzero(value: Any) -> bool:
    return isinstance(value, int) and value > 0


def _install_sigterm() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # somebody (an embedding, a parent's disposition) owns it
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError, AttributeError):
        return
    _arm_sigterm_watch()
    if hasattr(os, "register_at_fork"):  # a forked child watches for its own signals
        from . import _sigterm_watch

        os.register_at_fork(**_sigterm_watch.fork_hooks(_arm_sigterm_watch))


def _arm_sigterm_watch() -> None:
    """See ``_sigterm_watch``: our handler runs even if the main thread was stuck in C."""
    from . import _sigterm_watch

    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        # (a child whose program took SIGTERM over, or already terminating): at least its
        # signals must not reach the parent's watcher
        _sigterm_watch.disarm_inherited()
        return
    _sigterm_watch.arm(lambda: bool(_state.get("terminating")), _terminate_unhandled,
                       lambda: _abandon_exit(signal.SIGTERM, None))


def _terminate_unhandled() -> None:
    """The watcher saw a SIGTERM our handler did not get to: terminate from its thread.
    The handler cannot be reset from here, so the process exits as a shell reports death
    by SIGTERM instead of dying of it."""
    handler = signal.getsignal(signal.SIGTERM)
    if handler is _abandon_exit:  # (the exit's last export runs: end it, see there)
        _abandon_exit(signal.SIGTERM, None)
        return
    if _state.get("terminating") or handler is not _on_sigterm:
        return  # (handled, or the program took SIGTERM over: its handler decides)
    _state["terminating"] = True
    _state["signalled_at"] = time.monotonic()
    _terminate(kill=False)


def _on_sigterm(signum: int, frame: Any) -> None:
    """Hand the work to a thread and return at once.

    A Python signal handler runs on the main thread between two bytecodes — possibly inside
    one of our own critical sections (a queue lock held by a flush). Doing the shutdown here
    would then wait for a lock this very thread holds: a deadlock. On its own thread the
    shutdown waits only until the interrupted code releases it, a moment later.
    """
    if _state.get("dying"):  # (our own final kill, see _terminate)
        _die_of(signum)
    if _state.get("terminating"):
        # A further SIGTERM: the export it waits for is abandoned, as a second SIGTERM
        # kills bare (_abandon_exit), unless it is a copy of the first (see there).
        _abandon_exit(signum, frame)
        return
    _state["terminating"] = True
    _state["signalled_at"] = time.monotonic()
    # This handler stays (not SIG_DFL, which would let a copy of this very SIGTERM kill
    # the process before anything is exported). A Ctrl-C meanwhile (Python's default
    # handler) ends it at once, of SIGINT, instead of raising KeyboardInterrupt into a
    # program that was being terminated.
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _abandon_exit)
    worker = threading.Thread(target=_terminate, name="telemetryflow-sigterm", daemon=True)
    try:
        worker.start()
    except RuntimeError:  # the interpreter is shutting down: no new threads
        _terminate()


def _terminate(kill: bool = True) -> None:
    _state["flushing"] = "SIGTERM"
    open_spans = _state.get("open_spans")
    if open_spans is not None:
        _end_process_span(terminated=True)
        open_spans.end_all()
    _shutdown("SIGTERM")
    if not kill:
        os._exit(128 + signal.SIGTERM)
    _state["dying"] = True  # (our handler now dies of it: see _on_sigterm)
    os.kill(os.getpid(), signal.SIGTERM)
    # Still here: the kernel ignores a default-action signal sent to PID 1 (a container's
    # exec-form ENTRYPOINT). Leave the way a shell reports death by SIGTERM.
    time.sleep(0.5)
    os._exit(128 + signal.SIGTERM)


def _install_excepthook() -> None:
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        span = _state.get("process_span")
        if span is not None and exc is not None:
            try:
                from .infrastructure.handler import record_error

                record_error(span, exc)
            except Exception:
                pass
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


# The last flushes after which this process (its program) ends at once: what they did not
# export by their deadline is lost, and said. (A multiprocessing child's flush when its
# target returns is followed by one of these, or by the exit's shutdown: they say it.)
_ENDS_AT_ONCE = frozenset({"exec", "os._exit"})


def _flush_now(why: str) -> None:
    """The last flush of a process about to end or be replaced (``why``): final (an
    unreachable backend gets one attempt, see ``reachability``), and a SIGINT or SIGTERM
    meanwhile ends it at once. Says in one line what is lost when the process ends right
    after it (``_ENDS_AT_ONCE``: what it did not export, queued or failed), or when the
    backend could not be reached; what else went wrong the exports said already."""
    client = _state.get("client")
    if client is None or not client.is_initialized:
        return
    from .infrastructure.reachability import exit_summary, final_exports

    timeout = _state["timeout"]
    started = _last_flushes_started(why)
    ends = why in _ENDS_AT_ONCE
    with contextlib.suppress(Exception), _signals_end_the_flush(why), final_exports(), \
            exit_summary(process_ends=why == "os._exit") if ends else contextlib.nullcontext():
        if not client.flush(max(timeout - (time.monotonic() - started), 0.0)):
            status = client.get_status()
            if ends or status.get("backend_unreachable"):
                _warn_not_exported(why, timeout, time.monotonic() - started, status,
                                   queued_lost=ends)


def before_exec() -> None:
    """The program replaces itself (``os.exec*``, see ``instrumentation.subprocess``): as at
    exit, end the process span (the new program's process span is its child) and export
    what is buffered, within the shutdown timeout."""
    _end_process_span()
    _flush_now("exec")


def _flush_before_os_exit() -> None:
    """``os._exit`` skips atexit (forked children, multiprocessing workers use it): export
    what this process buffered first, within the shutdown timeout."""
    real_exit = os._exit
    _state.setdefault("real_exit", real_exit)

    @functools.wraps(real_exit)
    def _exit(status: int) -> None:
        _end_process_span()
        _flush_now("os._exit")
        real_exit(status)

    os._exit = _exit


def _no_new_pool_workers_when_terminating() -> None:
    """A ``multiprocessing.Pool`` replaces workers that died. When SIGTERM reaches the whole
    process group (Ctrl-C's sibling: ``kill -- -PGID``, systemd, supervisord), the workers
    die at once, and the parent, which bare Python would let die at once too, lives on for
    our export: its pool would start new workers meanwhile, orphaned when it dies, running
    their tasks to the end. While we terminate, a pool starts none (the program was going
    to die of this SIGTERM: it left the signal at its default)."""
    from .instrumentation._import_hooks import when_imported

    def patch(module: Any) -> None:
        pool_class = getattr(module, "Pool", None)
        original = getattr(pool_class, "__dict__", {}).get("_maintain_pool")
        if not isinstance(original, staticmethod) or \
                getattr(original.__func__, "_telemetryflow_original", None) is not None:
            return  # a multiprocessing laid out otherwise (or patched already): as it is
        maintain = original.__func__

        @functools.wraps(maintain)
        def _maintain_pool(*args: Any, **kwargs: Any) -> Any:
            if _state.get("terminating"):
                return None
            return maintain(*args, **kwargs)

        _maintain_pool._telemetryflow_original = maintain  # type: ignore[attr-defined]
        pool_class._maintain_pool = staticmethod(_maintain_pool)

    when_imported("multiprocessing.pool", patch)


def _flush_multiprocessing_children() -> None:
    from .instrumentation._import_hooks import when_imported

    def patch(module: Any) -> None:
        from .instrumentation._method_wrappers import wrap_once

        def flush_after_target(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            _state["multiprocessing_child"] = True  # (see _signals_end_the_flush)
            _arm_sigterm_watch()  # (the forkserver clears the wakeup fd in its children)
            try:
                return wrapped(*args, **kwargs)
            finally:
                _flush_now("the end of the process")

        try:
            wrap_once(module.BaseProcess, "_bootstrap", flush_after_target)
        except Exception as exc:
            _diagnostics.warn(f"cannot flush multiprocessing children: {exc!r}")

    when_imported("multiprocessing.process", patch)
