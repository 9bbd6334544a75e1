"""A SIGTERM reaches our handler even when the main thread is stuck in C.

Why: Python runs a signal handler written in Python on the main thread, at the next
bytecode. A SIGTERM that arrives just as the main thread goes into a blocking C call (a
multiprocessing pool worker taking its queue's lock, ``sem_wait``) is noted but never
handled: the call does not see it, and nothing wakes the thread. Without us, the default
action would have killed the process; with our SIGTERM handler, ``Pool.terminate()`` waited
for such a worker forever (about one run in fifteen of a forkserver pool, measured).

CPython also writes every signal number to the "wakeup fd", if one is set, from the C
handler, whatever the main thread is doing. When the program has none, ours is a pipe read
by a watcher thread: seeing SIGTERM, it gives the main thread a moment to run the handler
and, if it has not, runs our termination itself (export, then exit). A program that sets
its own wakeup fd (asyncio's signal handlers) replaces ours: the watcher then sees nothing,
which is how things were without it.

A forked child inherits the wakeup fd, i.e. our pipe, until its after-fork hook gives it
its own: a signal it gets in between (``Pool.terminate()`` right after a worker was
started) would be read by the parent's watcher, which would take it for its own SIGTERM
and end the parent. ``fork_hooks`` keeps SIGTERM blocked in the forking thread across the
fork, so the child starts with it blocked and gets it once its own pipe is set. (A fork
made in C without Python's fork hooks, an extension's own ``fork()``, still shares the pipe
until it execs or exits: a SIGTERM it gets meanwhile would be taken for the parent's.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable

_HIGH_FD = 512
_GRACE_S = 0.2  # the main thread's own handler normally runs within microseconds
_SIGTERM = getattr(signal, "SIGTERM", None)
_armed: dict[str, int] = {}  # "read"/"write": our pipe in this process
_fork_masks: dict[int, list[object]] = {}  # per forking thread: the mask before the fork


def arm(terminating: Callable[[], bool], terminate: Callable[[], None],
        abandon: Callable[[], None] | None = None) -> bool:
    """Set our wakeup fd and start the watcher (main thread only), unless the program has
    a wakeup fd of its own; True when armed. Safe to call again: in the same process it
    re-sets our fd if someone cleared it (multiprocessing's forkserver does, in each
    child); in a forked child it replaces the parent's pipe by the child's own, so that the
    child's signals never reach the parent's watcher. ``terminating()`` tells whether our
    handler already runs; ``terminate()`` is the termination to run otherwise, on a thread
    of its own; ``abandon()`` what a further SIGTERM does while it runs (its export waits
    for a backend that does not answer: end now, as a second SIGTERM kills bare)."""
    if _SIGTERM is None or not hasattr(signal, "set_wakeup_fd") \
            or threading.current_thread() is not threading.main_thread():
        return False
    ours = _armed.get("write")
    if ours is not None and _armed.get("pid") == os.getpid():  # armed in this process
        try:
            previous = signal.set_wakeup_fd(ours, warn_on_full_buffer=False)
        except (OSError, ValueError):
            return False
        if previous not in (-1, ours):  # the program's: leave it be
            signal.set_wakeup_fd(previous)
            return False
        return True
    try:
        read_fd, write_fd = (_high(fd) for fd in os.pipe())
    except OSError:
        disarm_inherited()
        return False
    try:
        os.set_blocking(write_fd, False)  # (required: the C handler must never block)
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (OSError, ValueError):
        _close(read_fd, write_fd)
        disarm_inherited()
        return False
    if previous not in (-1, ours):  # the program's: leave it be
        signal.set_wakeup_fd(previous)
        _close(read_fd, write_fd)
        return False
    if ours is not None:  # a forked child: the parent's pipe is not ours to read
        _close(_armed.get("read", -1), ours)
    _armed.update(read=read_fd, write=write_fd, pid=os.getpid())
    from .infrastructure.signal_masks import start_quietly

    start_quietly(threading.Thread(target=_watch,
                                   args=(read_fd, terminating, terminate, abandon),
                                   name="telemetryflow-sigterm-watch", daemon=True))
    return True


def prepare() -> None:
    """Grow this process's descriptor table past ``_HIGH_FD`` now, while it runs one thread
    (the hook calls this before the SDK starts any). Why: growing it once threads run makes
    the kernel wait for an RCU grace period, which cost 3-7 ms per process start when
    ``arm`` moved its pipe up after the SDK's threads had started (measured: 6.5 ms with
    one thread besides the main one, 14 µs without)."""
    if threading.active_count() > 1:
        return  # too late to be cheap: arm pays it, as before
    try:
        import fcntl

        read_fd, write_fd = os.pipe()
    except (ImportError, OSError):
        return
    try:
        _close(fcntl.fcntl(read_fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD))
    except (OSError, AttributeError):
        pass
    finally:
        _close(read_fd, write_fd)


def _high(fd: int) -> int:
    """``fd`` moved to a number >= 512 where possible. A program that closes every file
    descriptor (a daemon) then opens files gets low numbers again: ours must not be among
    them, or the C handler would write signal numbers into the program's file (and the
    watcher read from it)."""
    try:
        import fcntl

        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
    except (ImportError, OSError, AttributeError):
        return fd  # (a low descriptor limit, or no fcntl): keep the one we have
    os.close(fd)
    return high


def fork_hooks(rearm: Callable[[], None]) -> dict[str, Callable[[], None]]:
    """Keyword arguments for ``os.register_at_fork``: SIGTERM blocked in the forking thread
    from just before the fork until, in the child, ``rearm()`` (which calls ``arm`` or
    ``disarm_inherited``) has run; in the parent, until the fork returns. Where threads
    cannot block signals, only the child's ``rearm()``."""
    if _SIGTERM is None or not hasattr(signal, "pthread_sigmask"):
        return {"after_in_child": rearm}

    def hold() -> None:
        try:
            previous: object = signal.pthread_sigmask(signal.SIG_BLOCK, {_SIGTERM})
        except (OSError, ValueError):
            previous = None
        _fork_masks.setdefault(threading.get_ident(), []).append(previous)

    def release() -> None:
        saved = _fork_masks.get(threading.get_ident())
        previous = saved.pop() if saved else None
        if previous is not None:
            with contextlib.suppress(OSError, ValueError):
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # type: ignore[arg-type]

    def rearm_then_release() -> None:
        try:
            rearm()
        finally:
            release()

    return {"before": hold, "after_in_parent": release, "after_in_child": rearm_then_release}


def disarm_inherited() -> None:
    """A forked child that does not arm (its program took SIGTERM over) or could not: at
    least stop writing into the parent's pipe. Does nothing in the process that armed."""
    ours = _armed.get("write")
    if ours is not None and _armed.get("pid") != os.getpid():
        with contextlib.suppress(OSError, ValueError):
            current = signal.set_wakeup_fd(-1)
            if current not in (-1, ours):
                signal.set_wakeup_fd(current)
        _armed.clear()


def _watch(read_fd: int, terminating: Callable[[], bool], terminate: Callable[[], None],
           abandon: Callable[[], None] | None) -> None:
    ours: threading.Thread | None = None  # our termination, once we started it
    while True:
        try:
            received = os.read(read_fd, 256)
        except OSError:
            return
        if not received:
            return
        if _SIGTERM not in received:
            continue
        time.sleep(_GRACE_S)
        if ours is None:
            if not terminating():
                from .infrastructure.signal_masks import start_quietly

                ours = threading.Thread(target=terminate, name="telemetryflow-sigterm",
                                        daemon=True)
                start_quietly(ours)
        elif ours.is_alive() and abandon is not None:
            abandon()  # (returns only for a copy of the first SIGTERM: watch on)


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
