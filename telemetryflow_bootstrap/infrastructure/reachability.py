"""Whether a backend can be reached at all, and what that changes when the process exits.

Why: the OTLP exporters retry a failed export with backoff (1 s, 2 s, 4 s …) until their
timeout. While the program runs that is right, unreachable backend or not: it happens on
our worker thread, and holding the head batch until a collector that restarts is back
loses the least (giving up at once would only fail what the full queue drops now, and
lose what it would have delivered once the collector is back). At exit the program waits
for it: with the collector down, every process paid the whole
TELEMETRYFLOW_SHUTDOWN_TIMEOUT (5 s; a test suite starting ten short children under the
launcher took 54 s).

A backend that *refuses* the connection, whose host name does not resolve, or to which
there is no route answers at once, and will answer the same a second later: during a final
export (``final_exports()``: shutdown, the flush before ``os._exit`` or ``exec``) one
attempt decides. The export that meets it gives up without retrying, and so does every
export to the same backend after it in that final flush, without connecting again. A
backend that is reachable but slow, or answers a retryable error (gRPC UNAVAILABLE from a
live server, HTTP 503/429), gets the exporter's retries as before, bounded by the shutdown
timeout. There is no short second attempt: a collector that restarts takes seconds, more
than any grace every exit could afford.

Verdicts are kept per backend (scheme, host and port), so traces, metrics and logs sent to
the same collector share them, and one sent elsewhere has its own. This module knows the
verdicts and the final flush; ``watched_exporters`` puts them into the SDK's exporters.
Stdlib only (imported at start-up, before any exporter stack).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
import weakref
from collections.abc import Iterator

REFUSED = "refused the connection"
NO_SUCH_HOST = "could not be found (its host name does not resolve)"
NO_ROUTE = "could not be reached (no route to host)"
NO_NETWORK = "could not be reached (network is unreachable)"
NOT_CONNECTED = "could not be connected to"

_lock = threading.Lock()
_backends: dict[str, Backend] = {}
_final = {"depth": 0, "since": 0.0, "summarised": 0}


class Backend:
    """One collector as our exporters last found it: unreachable (and why), or not."""

    def __init__(self, display: str) -> None:
        self.display = display  # (redacted: it is shown in messages)
        self._verdict: tuple[str, float] | None = None  # (reason, when: monotonic)
        self._waiters: weakref.WeakSet[InterruptibleBackoff] = weakref.WeakSet()

    @property
    def unreachable(self) -> str | None:
        """Why the last attempt could not reach it (``REFUSED`` …), None if it could."""
        verdict = self._verdict
        return verdict[0] if verdict is not None else None

    def message(self) -> str:
        """What the exit warning says of it, e.g. 'the backend at host:4317 refused the
        connection' (while unreachable)."""
        return f"the backend at {self.display} {self.unreachable or NOT_CONNECTED}"

    def record(self, reason: str | None) -> None:
        """The outcome of one attempt: ``reason`` it was unreachable, None if it answered
        (even with an error: reachable) or the outcome says nothing (a timeout)."""
        self._verdict = None if reason is None else (reason, time.monotonic())
        if reason is not None and final_exports_running():
            self.wake_waiters()  # (exports to it waiting to retry: give up now)

    def known_unreachable_at_exit(self) -> bool:
        """An attempt made during the current final flush found it unreachable: the next
        export gives up without connecting."""
        verdict = self._verdict
        return (verdict is not None and final_exports_running()
                and verdict[1] >= _final["since"])

    def add_waiter(self, waiter: InterruptibleBackoff) -> None:
        with _lock:
            self._waiters.add(waiter)

    def wake_waiters(self) -> None:
        with _lock:
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.wake()


def backend(display: str) -> Backend:
    """The one ``Backend`` for ``display`` (``scheme://host:port`` or ``host:port``)."""
    with _lock:
        found = _backends.get(display)
        if found is None:
            found = _backends[display] = Backend(display)
        return found


def said_at_exit() -> bool:
    """What fails now the exit's one line says, with the counts: a final flush found a
    backend unreachable, or the shutdown that ends with that line runs (``exit_summary``).
    An export, a queue or the metric reader then counts its loss without a line of its
    own (a collector that never answered gave three lines for one lost batch)."""
    if _final["summarised"]:
        return True
    with _lock:
        backends = list(_backends.values())
    return any(b.known_unreachable_at_exit() for b in backends)


@contextlib.contextmanager
def exit_summary(*, process_ends: bool) -> Iterator[None]:
    """Meanwhile ``said_at_exit()``: for a flush whose caller says in one line whatever it
    did not export (``lifecycle``: the shutdown at exit, the flush before ``os._exit`` or
    ``exec``). From then on if the process ends with it: an export the flush gave up on
    still fails on its own thread after that line (an ``exec`` that fails goes on)."""
    with _lock:
        _final["summarised"] += 1
    try:
        yield
    finally:
        if not process_ends:
            with _lock:
                _final["summarised"] -= 1


@contextlib.contextmanager
def final_exports() -> Iterator[None]:
    """Meanwhile, exports to an unreachable backend give up after one attempt (see the
    module doc). Nests; exports already waiting to retry try once more at once."""
    with _lock:
        _final["depth"] += 1
        if _final["depth"] == 1:
            _final["since"] = time.monotonic()
        backends = list(_backends.values())
    for known in backends:
        if known.unreachable is not None:
            known.wake_waiters()
    try:
        yield
    finally:
        with _lock:
            _final["depth"] = max(_final["depth"] - 1, 0)


def final_exports_running() -> bool:
    return _final["depth"] > 0


class InterruptibleBackoff:
    """Stands in for an exporter's shutdown event, which its retries wait on between
    attempts (``set``/``is_set``/``wait`` as ``threading.Event``). A wait also ends early,
    returning False (not shut down: the exporter tries again at once), while a final flush
    runs and the backend is unreachable: that attempt then gives up (see
    ``watched_exporters``), instead of the program's exit waiting out the backoff."""

    def __init__(self, target: Backend, already_set: bool = False) -> None:
        self._backend = target
        self._cond = threading.Condition(threading.Lock())
        self._set = already_set
        target.add_waiter(self)

    def _cut_short(self) -> bool:
        return final_exports_running() and self._backend.unreachable is not None

    def set(self) -> None:
        with self._cond:
            self._set = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._set = False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            if not self._set and not self._cut_short():
                self._cond.wait_for(lambda: self._set or self._cut_short(), timeout)
            return self._set

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def reason_for_exception(error: BaseException | None) -> str | None:
    """Why ``error`` (an HTTP transport's: requests' or urllib3's, wrapping the socket's)
    says the backend is unreachable, or None if it does not. Decided by the socket error's
    type and errno found anywhere in its chain, not by its text."""
    import socket  # (an exporter's transport has imported it; the start-up need not)

    for found in _chain(error):
        if isinstance(found, ConnectionRefusedError):
            return REFUSED
        if isinstance(found, socket.gaierror):
            return NO_SUCH_HOST
        if isinstance(found, OSError) and found.errno == errno.EHOSTUNREACH:
            return NO_ROUTE
        if isinstance(found, OSError) and found.errno == errno.ENETUNREACH:
            return NO_NETWORK
    return None


def _chain(error: BaseException | None, limit: int = 16) -> Iterator[BaseException]:
    """``error``, what caused it, and the errors it wraps (urllib3's ``reason``, requests'
    first argument), breadth first, each once."""
    pending = [error]
    seen: set[int] = set()
    while pending and len(seen) < limit:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend((current.__cause__, current.__context__,
                        getattr(current, "reason", None), *current.args))


def reason_for_grpc_details(details: str) -> str:
    """The wording for a gRPC connection that could not be made (the decision itself is
    the channel's state, see ``watched_exporters``): gRPC has no error number, only text."""
    text = details.lower()
    if "connection refused" in text:
        return REFUSED
    if "resolv" in text or "domain name not found" in text or "dns" in text:
        return NO_SUCH_HOST
    if "no route to host" in text:
        return NO_ROUTE
    if "network is unreachable" in text:
        return NO_NETWORK
    return NOT_CONNECTED


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # (the parent's may have been held by another thread)
    _final["depth"] = 0
    for known in _backends.values():
        known._waiters = weakref.WeakSet()  # the parent's exporters are not the child's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
