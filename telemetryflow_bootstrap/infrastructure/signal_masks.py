"""Signal masks that keep the program's SIGTERM and SIGINT where they belong while we run.

A signal that Python handles in Python (as our SIGTERM handler does: flush, then die) can
go unhandled where the default action would simply have killed the process. The kernel
hands a signal sent to the process to any thread that does not block it; Python runs its
handler on the main thread only, once that thread is back in Python code. A main thread
waiting in C (a multiprocessing pool worker waiting for its queue's lock) is woken only if
the signal landed on *it*. So every thread we start (and the SDK's metric reader thread,
also after a fork) starts with both signals blocked (threads inherit the mask of the thread
that starts them), and the signal goes to the program's own threads, as without us.
(``_sigterm_watch`` covers the other way a SIGTERM goes unhandled: arriving just before the
main thread blocks in C.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = frozenset(s for s in (getattr(signal, "SIGTERM", None),
                                 getattr(signal, "SIGINT", None)) if s is not None)
_saved_masks: dict[int, list[Any]] = {}  # per thread, a stack: registrations may nest


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """SIGTERM and SIGINT blocked in this thread meanwhile: threads started here inherit it.
    A platform without ``pthread_sigmask`` (Windows) is left as it is."""
    previous = _block()
    try:
        yield
    finally:
        _restore(previous)


def start_quietly(thread: threading.Thread) -> None:
    """``thread.start()``, the new thread blocking SIGTERM and SIGINT for its whole life."""
    with signals_blocked():
        thread.start()


def quiet_during_fork_hooks_registered_in(body: Any) -> Any:
    """Run ``body()`` (which registers ``os.register_at_fork`` hooks, e.g. by building the
    SDK's metric reader) so that, in a forked child, those hooks run with both signals
    blocked: a thread one of them restarts inherits that. Returns what ``body`` returns."""
    if not _SIGNALS or not hasattr(os, "register_at_fork") \
            or not hasattr(signal, "pthread_sigmask"):
        return body()
    os.register_at_fork(after_in_child=_block_for_hooks)
    try:
        return body()
    finally:
        os.register_at_fork(after_in_child=_restore_after_hooks)


def _block() -> Any:
    if not _SIGNALS or not hasattr(signal, "pthread_sigmask"):
        return None
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    except (OSError, ValueError):
        return None


def _restore(previous: Any) -> None:
    if previous is not None:
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _block_for_hooks() -> None:
    _saved_masks.setdefault(threading.get_ident(), []).append(_block())


def _restore_after_hooks() -> None:
    saved = _saved_masks.get(threading.get_ident())
    if saved:
        _restore(saved.pop())
