"""What a real thread started before green-thread monkey-patching may still use after it.

Why: our hook starts the SDK's metric reader thread (and our SIGTERM watcher) at start-up,
before a program's ``from gevent import monkey; monkey.patch_all()`` (or gunicorn's gevent
worker, which patches after its fork). Those stay real OS threads, but every primitive
they look up in ``threading`` afterwards is gevent's: an ``Event.wait`` there allocates a
gevent lock on a thread whose hub never runs, ``time.sleep`` builds a hub on it (which
can deadlock on the import lock), and when the thread ends ``threading`` removes it under
gevent's id for it, not its own: ``KeyError`` printed on the program's stderr at every
exit. Measured before this module: every metric point of a patched program's last
collection lost (the exit woke the reader only once too late), plus that traceback.

So the reader waits on ``NativeEvent`` (a bare ``_thread`` lock, captured here at start-up)
and leaves ``threading``'s table under the id it will be looked up by (``leave_cleanly``).
Without monkey-patching all of it behaves as ``threading`` does.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import threading
import time
from typing import Any

# (imported at start-up by the hook, before any program can monkey-patch: the originals)
_allocate_lock = _thread.allocate_lock
_real_ident = _thread.get_ident
_real_sleep = time.sleep


def _original(module: str, name: str, default: Any) -> Any:
    """``module.name`` as it was before gevent patched it (``default`` without gevent)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return default
    try:
        return monkey.get_original(module, name)
    except Exception:
        return default


def real_ident() -> int:
    """The OS thread's id, as ``threading.get_ident()`` was before any patching."""
    return int(_original("_thread", "get_ident", _real_ident)())


def sleep(seconds: float) -> None:
    """``time.sleep`` that blocks this OS thread, never a gevent hub."""
    _original("time", "sleep", _real_sleep)(seconds)


class NativeEvent:
    """``threading.Event``'s ``set``/``is_set``/``wait`` on a bare OS lock (held while
    unset), for one real thread to wait on whatever the rest of the process is patched
    with. A lock with no owner: any thread, or greenlet, may ``set`` it."""

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = _allocate_lock()
        self._lock.acquire()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        if not self._flag:
            self._flag = True
            with contextlib.suppress(RuntimeError):  # (a concurrent set() released it)
                self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        if timeout is None:
            acquired = self._lock.acquire()
        else:
            acquired = self._lock.acquire(True, max(timeout, 0.0))
        if acquired:
            with contextlib.suppress(RuntimeError):  # (a concurrent set() released it)
                self._lock.release()  # (hand it on to the next waiter)
        return self._flag


def leave_cleanly(thread: threading.Thread | None) -> None:
    """Called last on a real thread that is about to end: if ``threading.get_ident`` is
    patched (it then says the id of the thread's main greenlet), file the thread in
    ``threading``'s table under that id, where its end looks for it. Else nothing."""
    if thread is None:
        return
    try:
        patched = threading.get_ident()
        real = real_ident()
        if patched == real:
            return
        active: dict[int, Any] = threading._active  # type: ignore[attr-defined]
        if active.get(real) is thread:
            active[patched] = active.pop(real)
    except Exception:
        pass
