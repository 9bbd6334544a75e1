"""``CountingMetricReader``: the SDK's periodic metric reader, every point it collects
accounted for until it is exported or dropped; ``LazyMetricExporter``, the exporter in it.

Why: the SDK's reader hands each collection to the exporter and forgets it. At exit our
shutdown waits for it only until TELEMETRYFLOW_SHUTDOWN_TIMEOUT, and what was not exported
by then was lost without a count (the exit line said ``metric points=0``):

- the collection whose export was still under way (a collector that never answers, or one
  that keeps answering UNAVAILABLE while the exporter retries);
- the last collection itself, when it was never made: the SDK makes it on the reader's
  thread when the reader shuts down, which came after the spans' and logs' exports (a
  collector that never answered them left no time for it), and that thread may be stuck in
  an earlier export.

So here the exit's last collection is made as the exit starts (``start_last_export``) and
exported alongside the spans and logs; a collection's points are *queued* from the moment
it is handed over until its export returns (then *exported* or *dropped*); the reader's
shutdown lets every export handed over finish before it shuts the exporter down (a flush
racing the exit's shutdown, see ``_finish_exports``); and ``close()``, at the shutdown
deadline, counts what is still queued as dropped, collects the last collection if it never
came (to count it, never to export it) and ignores whatever comes back late. The counts are
the process's: a forked child starts from zero, as the batch queues do.

Points are counted per export, as an export sends them: a collection whose export failed
counts, and so does the next one, with the same series (cumulative temporality: each
collection carries every series' running total). Collections not exported *yet* are not
added up, though: the newest holds every series of those queued before it, and they are
one loss, not one per flush that collected them (a multiprocessing child flushes when its
target returns and again at ``os._exit``). So ``queued`` is the newest one's points.

A short run's runtime-only sample is left out, neither exported nor dropped (see
``_runtime_only_short_run``).

Points recorded after the exit's last collection (a daemon thread still working, the main
thread after a SIGTERM we handle; the program's atexit functions run before ours, so not
theirs) were in no collection: neither exported nor counted. At the end of the exit, and
of a final flush, a second collection is made and only what it holds that the last one did
not (``late_metric_points``) is exported, if there is time left and the last one's export
has finished (``export_late_points``); otherwise it is counted as dropped, as one loss
with the series of a last collection that was not exported either. Nothing recorded late:
nothing is sent. What is recorded after that second collection is past our reach.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)

from .. import _diagnostics
from . import native_threads
from .exporters import LazyExporter
from .late_metric_points import asynchronous_metrics, late_points
from .metric_values import carriable
from .native_threads import NativeEvent
from .reachability import said_at_exit
from .signal_masks import start_quietly

# How long ``close()`` waits for the collection that counts the last points (microseconds
# normally: only a program's own observable callback, hanging, could take longer).
_COUNTING_GRACE = 0.5


def _ticking_thread(reader: Any) -> Any:
    """The SDK reader's thread, unless it is the calling one (by OS thread id: under gevent
    ``threading.current_thread()`` is a stand-in there, and the class a patched one)."""
    ticker = getattr(reader, "_daemon_thread", None)
    if not callable(getattr(ticker, "join", None)):
        return None
    return None if getattr(ticker, "ident", None) == native_threads.real_ident() else ticker


def count_points(metrics_data: Any) -> int:
    """The data points in one collection (what an OTLP export sends)."""
    return sum(len(metric.data.data_points) for rm in metrics_data.resource_metrics
               for sm in rm.scope_metrics for metric in sm.metrics)


class LazyMetricExporter(MetricExporter):
    """Builds the real metric exporter at first use (see ``LazyExporter``); a build that
    failed, or an exporter that raised, is a failed export. Values OTLP cannot carry are
    sent as doubles (``metric_values``): one would fail the whole export."""

    def __init__(self, lazy: LazyExporter, **preferences: Any) -> None:
        # (the reader takes the temporality and aggregation from here, when it is built:
        # see metric_preferences)
        super().__init__(**preferences)
        self._lazy = lazy

    def export(self, metrics_data: Any, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        real = self._lazy.get()
        if real is None:
            return MetricExportResult.FAILURE
        try:
            return real.export(carriable(metrics_data),  # type: ignore[no-any-return]
                               timeout_millis=timeout_millis)
        except Exception as exc:
            _diagnostics.debug(f"metric export raised {exc!r}")
            return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        real = self._lazy.built
        return True if real is None else bool(real.force_flush(timeout_millis=timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._lazy.shutdown()


class CountingMetricReader(PeriodicExportingMetricReader):
    """``PeriodicExportingMetricReader`` whose collections are counted (see the module doc).

    Thread safety: collections come from the reader's thread, a flush's helper thread and
    ``close()``'s; the counts and the queued collections are changed under ``_counts_lock``,
    never held during an export, and read without it (``get_status()`` runs in a signal
    handler too, which may have interrupted their holder on the main thread)."""

    def __init__(self, exporter: MetricExporter, *, export_interval_millis: float,
                 export_timeout_millis: float) -> None:
        # (all set before the SDK's reader starts its thread, and our fork hook registered
        # before its own, which restarts that thread in a forked child)
        self._provider: weakref.ref[Any] | None = None  # (see collects_for)
        self._short_run_until = time.monotonic() + export_interval_millis / 1000
        self._after_fork_in_child()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(
                after_in_child=lambda: (me := ref()) is not None and me._after_fork_in_child())
        super().__init__(exporter, export_interval_millis=export_interval_millis,
                         export_timeout_millis=export_timeout_millis)

    def _after_fork_in_child(self) -> None:
        """(Also the start.) A forked child's counts are its own: the parent's collections,
        queued or counted, are the parent's, as are its locks (another thread may have held
        them at the fork)."""
        self._counts_lock = threading.Lock()
        self._settled = threading.Condition(self._counts_lock)  # (a collection's export returned)
        self._sending = threading.Lock()  # one export at a time, as in the SDK's reader
        self.exported = 0
        self.dropped = 0
        self.queued = 0  # the points of the newest collection not yet exported or dropped
        self._queued: dict[int, int] = {}  # collection number -> its points, until settled
        self._abandoned = 0  # what close() counted of them
        self._numbered = 0
        self._stopping = False  # from now on a collection is the last one
        self._last_handed_over = False
        self._closed = False
        self._late = False  # the exporter is (being) shut down: too late to export
        self._stopped = False
        self._shut_down = threading.Event()  # shutdown() or close() was called
        # The newest collection handed over (whole: what late points are measured
        # against), its number, and whether it was exported (None: not yet, or never).
        self._newest: Any = None
        self._newest_number = 0
        self._newest_ok: bool | None = None
        self._late_local = threading.local()  # (a thread collecting late points: its data)

    # The SDK sets and reads ``_shutdown_event``: a ``NativeEvent`` rather than the SDK's
    # ``threading.Event``, which green-thread monkey-patching (after the thread started)
    # breaks, until ``move_to_green_thread`` gives the ticker a green one; see
    # ``native_threads``.
    @property
    def _shutdown_event(self) -> Any:
        event = self.__dict__.get("_wake")
        if event is None:
            event = self.__dict__["_wake"] = NativeEvent()
        return event

    @_shutdown_event.setter
    def _shutdown_event(self, sdk_event: Any) -> None:
        self.__dict__.setdefault("_wake", NativeEvent())

    def _ticker(self) -> None:
        """The SDK's loop (collect every interval, once more when woken), except that a
        ticker whose event was replaced (``move_to_green_thread``) just stops."""
        wake = self._shutdown_event
        me = getattr(self, "_daemon_thread", None)  # (set before each start: this one)
        interval = self._export_interval_millis / 1e3
        try:
            while not wake.wait(interval):
                self._collect_quietly(self._export_timeout_millis)
            if wake is self._shutdown_event:  # (the reader's shutdown: its last collection)
                self._collect_quietly(self._export_interval_millis)
        finally:
            native_threads.leave_cleanly(me)

    def _collect_quietly(self, timeout_millis: float) -> None:
        try:
            self.collect(timeout_millis=timeout_millis)
        except Exception as exc:  # (the SDK's loop logs a timeout and goes on: so do we)
            _diagnostics.debug(f"metric collection failed: {exc!r}")

    def move_to_green_thread(self) -> None:
        """Green-thread monkey-patching just replaced ``threading`` (gevent's
        ``patch_thread``, on the thread that patched): stop the real ticker thread and
        tick on a green one, with a green event. Why: a real thread that imports after
        the patching (the exporter's first export imports its stack) holds an import lock
        that is a gevent lock now, and the main thread importing the same module then
        found no greenlet to wait for: ``LoopExit`` (a gunicorn gevent worker failed to
        boot importing ``requests`` while our reader imported it for OTLP/HTTP)."""
        old_thread = getattr(self, "_daemon_thread", None)
        if self._shut_down.is_set() or not callable(getattr(old_thread, "join", None)):
            return
        old_event = self._shutdown_event
        if not isinstance(old_event, NativeEvent):
            return  # (moved already)
        self.__dict__["_wake"] = threading.Event()  # (gevent's, now)
        old_event.set()  # (the old ticker stops, without a last collection)
        thread = threading.Thread(target=self._ticker, name="OtelPeriodicExportingMetricReader",
                                  daemon=True)
        self._daemon_thread = thread
        start_quietly(thread)

    def _runtime_only_short_run(self, metrics_data: Any) -> bool:
        """The exit-time export of a process that lived less than one interval and recorded
        nothing but our own runtime metrics (``python -c …``, a helper script): a single
        sample of its memory and CPU is not worth building the exporter stack at exit."""
        if self.exported or time.monotonic() >= self._short_run_until:
            return False
        return all(m.name.startswith(("process.", "cpython."))
                   for rm in metrics_data.resource_metrics for sm in rm.scope_metrics
                   for m in sm.metrics)

    def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        if getattr(self._late_local, "collecting", False):  # (see _collect_late)
            self._late_local.data = metrics_data
            return
        skipped = self._runtime_only_short_run(metrics_data)
        if skipped and self._stopping and not self._shut_down.is_set():
            # The exit's last collection, made early (``start_last_export``), of a short run
            # that recorded only our runtime metrics: whether that is still a short run is
            # decided when the reader shuts down, after the exit's other exports, as it was
            # before the collection came early. (Not counted as queued meanwhile.)
            self._shut_down.wait()
            skipped = self._runtime_only_short_run(metrics_data)
        points = count_points(metrics_data)
        with self._counts_lock:
            if self._closed or self._late:
                # Too late to export: the last collection ``close()`` looked for, counted
                # once (newer than what close() counted or will count, which it holds: only
                # what it adds), or one more after it (the same points again: not counted
                # twice; a flush racing the exit's shutdown makes one, see ``shutdown``).
                if not self._last_handed_over:
                    self._last_handed_over = True
                    if not skipped:
                        held = self._abandoned if self._closed else self.queued
                        self.dropped += max(points - held, 0)
                return
            self._last_handed_over = self._last_handed_over or self._stopping
            if skipped:  # (neither exported nor lost: not worth exporting)
                self._newest, self._newest_number, self._newest_ok = metrics_data, 0, True
                return
            number = self._hand_over(metrics_data, points)
        self._export(number, metrics_data, timeout_millis)

    def _hand_over(self, whole: Any, points: int) -> int:
        """(Under ``_counts_lock``.) Number a collection about to be exported, ``points``
        of it queued; ``whole`` is what later collections are compared with."""
        number = self._numbered = self._numbered + 1
        self._queued[number] = self.queued = points
        self._newest, self._newest_number, self._newest_ok = whole, number, None
        return number

    def _export(self, number: int, metrics_data: Any, timeout_millis: float) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            with self._sending:
                result = self._exporter.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as exc:
            result = MetricExportResult.FAILURE
            _diagnostics.debug(f"metric export raised {exc!r}")
        finally:
            detach(token)
        self._settle(number, result is MetricExportResult.SUCCESS)

    def _settle(self, number: int, ok: bool) -> None:
        with self._counts_lock:
            points = self._queued.pop(number, None)
            self._settled.notify_all()
            if number == self._newest_number and points is not None:
                self._newest_ok = ok
            if points is None:
                return  # (given up by close(): counted there)
            self.queued = self._queued[max(self._queued)] if self._queued else 0
            if ok:
                self.exported += points
                return
            self.dropped += points
            dropped, last = self.dropped, self._stopping
        # (the last export, or the backend found unreachable at exit: shutdown() is False
        # and the exit warning says it once, with the counts)
        if not last and not said_at_exit():
            _diagnostics.warn_every_minute(
                "export-metrics", f"exporting metrics failed; {dropped} points lost so far")

    def start_last_export(self) -> None:
        """Have the reader's thread make its last collection now, at the start of the exit,
        and export it alongside the spans and logs: its points are then counted (queued)
        whatever happens next, a signal that abandons the exit included, and arrive even if
        the spans' collector takes the whole shutdown timeout. ``shutdown()`` then waits for
        it. A reader laid out otherwise (another SDK version) makes it at ``shutdown()``."""
        with self._counts_lock:
            self._stopping = True
        # (duck-typed, not ``isinstance(event, threading.Event)``: gevent's monkey-patching
        # replaces that class, and an event made before it was then never set, the reader
        # woken only by the SDK's shutdown, once too late: see ``_ticking_thread``)
        event = getattr(self, "_shutdown_event", None)
        if callable(getattr(event, "set", None)):
            event.set()

    def collects_for(self, provider: Any) -> None:
        """``provider`` is the meter provider this reader collects for: its observable
        instruments are never late (see ``late_metric_points``)."""
        self._provider = weakref.ref(provider)

    def export_late_points(self, deadline: float, *, count_lost: bool = True) -> None:
        """The points recorded since the newest collection handed over (the exit's last,
        or a final flush's): exported if its export has finished and there is time left
        until ``deadline``, else (``count_lost``: the process ends with this) counted as
        dropped; as one loss with that collection's series if it was not exported either.

        On a thread of its own, waited for until ``deadline`` (at most ``_COUNTING_GRACE``
        when only counting): the collection runs the program's observable callbacks, and
        the export may find the collector silent (``close()`` then drops it, queued)."""
        with self._counts_lock:
            newest, exported = self._newest, self._newest_ok
            if self._closed or newest is None:
                return  # (nothing handed over: the collection to come, if any, holds all)
            export = not self._queued and time.monotonic() < deadline
        if not export and not count_lost:
            return

        def run() -> None:
            data = self._collect_late()
            if data is None:
                return
            late, points, new = late_points(newest, data, self._asynchronous())
            if late is None:
                return
            with self._counts_lock:
                if self._newest is not newest:
                    return  # (a newer collection holds them, exported or counted with it)
                if not export or self._closed:
                    self.dropped += points if exported else new
                    return
                number = self._hand_over(data, points)
            self._export(number, late, max(deadline - time.monotonic(), 0.0) * 1000)

        thread = threading.Thread(target=run, name="telemetryflow-metrics-late", daemon=True)
        try:
            start_quietly(thread)
        except RuntimeError:  # (no new threads: the interpreter is shutting down)
            return
        thread.join(max(deadline - time.monotonic(), 0.0) if export else _COUNTING_GRACE)

    def _collect_late(self) -> Any:
        """A collection, returned instead of exported (see ``_receive_metrics``)."""
        local = self._late_local
        local.collecting, local.data = True, None
        try:
            self.collect(timeout_millis=_COUNTING_GRACE * 1000)
        except Exception as exc:
            _diagnostics.debug(f"collecting the late metric points failed: {exc!r}")
        finally:
            local.collecting = False
        data, local.data = local.data, None
        return data

    def _asynchronous(self) -> frozenset[tuple[str, str]]:
        provider = self._provider() if self._provider is not None else None
        return asynchronous_metrics(provider) if provider is not None else frozenset()

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """The SDK's shutdown (the last collection, then the exporter's shutdown), every
        export handed over by then finished first, within ``timeout_millis``."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._counts_lock:
            self._stopping = True
            if self._stopped:
                return
            self._stopped = True
        self._shut_down.set()
        self._finish_exports(deadline)
        if self._last_handed_over:  # (if not, close() collects the last one, late or not)
            self.export_late_points(deadline)
        super().shutdown(timeout_millis=max(deadline - time.monotonic(), 0.0) * 1000,
                         **kwargs)

    def _finish_exports(self, deadline: float) -> None:
        """Wait, until ``deadline``, for the last collection's export and every other one
        handed over before the exporter is shut down; what comes after is too late.

        Why: the SDK's shutdown waits only for its reader's thread, then shuts the
        exporter down, and the OTLP exporters cut off an export under way (gRPC cancels
        it: "Channel closed!") and refuse the next ("Exporter already shutdown"). Exports
        take turns (``_sending``), so a flush's collection handed over while the exit's
        last export runs was still waiting then, and its points were counted lost though
        the collector answered. It happened at nearly every SIGTERM of a uvicorn worker:
        its server returns, so the multiprocessing child's end-of-process flush runs on
        the main thread while the SIGTERM that uvicorn raises again shuts down on ours. A
        collection made after this is the same series again, exported already (or counted
        as dropped): ignored as after ``close()``. (What was recorded since the last
        collection, while the exit ran, is collected once more after this, and only that
        is exported: ``export_late_points``.)"""
        self.start_last_export()
        ticker = _ticking_thread(self)
        if ticker is not None:
            with contextlib.suppress(RuntimeError):  # (never started)
                ticker.join(max(deadline - time.monotonic(), 0.0))
        with self._settled:
            self._settled.wait_for(lambda: not self._queued,
                                   max(deadline - time.monotonic(), 0.0))
            self._late = True

    def close(self) -> None:
        """The process stops waiting (the shutdown deadline): what is still queued is
        dropped, the last collection is counted as dropped if it was never handed over, and
        nothing is exported any more."""
        self._shut_down.set()
        with self._counts_lock:
            self._stopping = self._closed = True
            self._abandoned = self.queued
            self.dropped += self.queued
            self.queued = 0
            self._queued.clear()
            counted = self._last_handed_over
        if not counted:
            self._collect_to_count()
            with self._counts_lock:
                # (late or never: whatever collection comes now is not counted again)
                self._last_handed_over = True
        try:
            self.shutdown(timeout_millis=0)  # (if the SDK did not get to: interrupts the export)
        except Exception as exc:
            _diagnostics.debug(f"metric reader shutdown raised {exc!r}")

    def _collect_to_count(self) -> None:
        """The last collection, made only to count its points (``_receive_metrics`` drops
        it, closed): on a thread of its own, waited for at most ``_COUNTING_GRACE``, since a
        collection runs the program's observable callbacks and waits for any collection
        under way."""
        def collect() -> None:
            try:
                self.collect(timeout_millis=_COUNTING_GRACE * 1000)
            except Exception as exc:
                _diagnostics.debug(f"counting the last metric points failed: {exc!r}")

        thread = threading.Thread(target=collect, name="telemetryflow-metrics-count",
                                  daemon=True)
        try:
            start_quietly(thread)
        except RuntimeError:  # (no new threads: the interpreter is shutting down)
            return
        thread.join(_COUNTING_GRACE)
