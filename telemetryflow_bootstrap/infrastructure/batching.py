"""Our own batching processors for spans and log records.

Why not the SDK's: its ``force_flush`` ignores the timeout and exports on the caller's
thread, so a program exiting with the backend down waits for the exporter's retries; it logs
a warning for every item dropped from a full queue (a flood); and it starts a worker thread
at construction, before the program needs one. Here:

- ``emit`` is a deque append (the hot path); the worker thread starts on first use, and
  first runs ``prepare`` (the exporter's imports: see ``exporters.LazyExporter.warm_up``).
- ``flush(timeout)``/``shutdown(timeout)`` never block the caller past ``timeout``; the
  export runs on the worker, with instrumentation suppressed so our own traffic is never
  traced.
- A full queue drops the new item, counts it and warns at most once a minute.
- After ``fork()`` the child starts empty (the parent's queued items are the parent's to
  export, never exported twice) with a fresh lock and, on first use, a fresh worker.
"""

from __future__ import annotations

import collections
import copy
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, set_value
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from .. import _diagnostics
from .reachability import said_at_exit
from .signal_masks import start_quietly

ExportFunction = Callable[[Sequence[Any]], bool]
_PREPARATION_WAIT = 1.0  # seconds a program may wait, once, for the exporter's imports


class BatchQueue:
    """A bounded queue drained in batches by one lazily started worker thread."""

    def __init__(
        self,
        export: ExportFunction,
        *,
        signal: str,
        max_queue_size: int,
        max_batch_size: int,
        schedule_delay_ms: int,
        on_shutdown: Callable[[], None] | None = None,
        prepare: Callable[[], None] | None = None,
        queue_size_setting: str = "TELEMETRYFLOW_MAX_QUEUE_SIZE",
        left_out: Callable[[], int] | None = None,
        too_large: Callable[[], int] | None = None,
    ) -> None:
        self._export = export
        # How many items the exporter has left out so far, none of its encoders able to
        # encode them, or their request alone past its limit (``otlp_exporters``: the rest
        # of their batch was sent, the loss said).
        self._left_out = left_out
        self._too_large = too_large
        # what a full queue's warning tells to raise: the variable that sized this queue
        # (OTEL_BLRP_MAX_QUEUE_SIZE for a log queue it sized)
        self._queue_size_setting = queue_size_setting
        self._prepare = prepare
        self._signal = signal
        self._max_queue_size = max_queue_size
        self._max_batch_size = max_batch_size
        self._delay = max(schedule_delay_ms, 1) / 1000.0
        self._on_shutdown = on_shutdown
        self.exported = 0
        self.failed = 0
        self.dropped = 0
        self.unencodable = 0  # (lost, but not a failed export: the exporter said why)
        self.too_large = 0  # (the same, for an item past the exporter's request limit)
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (q := ref()) and q._after_fork_in_child())

    def _init_state(self) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        # Until the worker has run ``prepare``: see _wait_for_preparation.
        self._preparing = self._prepare is not None
        self._prepared = threading.Event()
        self._cond = threading.Condition(threading.Lock())
        self._flush_waiters: list[threading.Event] = []
        self._worker: threading.Thread | None = None
        self._wake_pending = False
        self._next_drop_warning = 0.0
        self._stopping = False
        self._closed = False
        self._in_flight = 0  # items of the batch being exported

    def _after_fork_in_child(self) -> None:
        self.exported = self.failed = self.dropped = self.unencodable = self.too_large = 0
        self._init_state()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Items of the batch an export is under way for (lost too if the process ends
        before it returns)."""
        return self._in_flight

    def emit(self, item: Any) -> None:
        queue = self._queue
        if self._closed or len(queue) >= self._max_queue_size:
            if self._closed:  # a thread still running at exit (see shutdown): counted only
                self.dropped += 1
            else:
                self._drop(1, "queue full")
            return
        queue.append(item)
        if self._worker is None:
            self._start_worker()
        elif self._preparing and len(queue) >= self._max_queue_size // 2:
            self._wait_for_preparation()
        elif len(queue) >= self._max_batch_size and not self._wake_pending:
            self._wake_pending = True  # one wake-up per batch, not a lock per emit
            with self._cond:
                self._cond.notify()

    def _wait_for_preparation(self) -> None:
        """The queue is half full and the worker is still importing the exporter: wait for
        it (once, at most ``_PREPARATION_WAIT``) instead of dropping what comes next.

        Why: a thread that keeps the GIL busy (a program logging or tracing in a tight loop)
        slows the worker's import down to seconds, since each of its file reads waits for
        the GIL again: measured, over 5 s for a program logging at full speed, against
        ~0.2 s with the program waiting. The queue was full long before, and ~90% of such a
        burst was lost. Waiting here hands the worker the GIL: the program pauses once,
        for about as long as the import takes on its own, and loses nothing. Only ever
        before the first export; a full queue after that drops as always."""
        if threading.current_thread() is self._worker:
            return
        self._prepared.wait(_PREPARATION_WAIT)
        self._preparing = False  # (waited once: from now on, a full queue drops)

    def _drop(self, count: int, why: str, setting: str | None = None) -> None:
        # On the hot path when the backend cannot keep up: count, and only look at the clock
        # (no lock) until it is time for the once-a-minute warning.
        self.dropped += count
        if time.monotonic() < self._next_drop_warning:
            return
        self._next_drop_warning = time.monotonic() + 60.0
        # (the setting that decided: the queue's size, or the shutdown's deadline)
        detail = setting or f"{self._queue_size_setting}={self._max_queue_size}"
        _diagnostics.warn_every_minute(
            f"drop-{self._signal}",
            f"dropping {self._signal} ({why}); {self.dropped} dropped so far ({detail})",
        )

    def _start_worker(self) -> None:
        with self._cond:
            if self._worker is not None or self._stopping:
                return
            worker = threading.Thread(
                target=self._run, name=f"telemetryflow-{self._signal}", daemon=True
            )
            self._worker = worker
        start_quietly(worker)

    def _run(self) -> None:
        # This thread only ever exports: suppress instrumentation for its whole life.
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        if self._prepare is not None:
            try:
                self._prepare()  # (the exporter's imports, before the first export needs them)
            except Exception as exc:
                _diagnostics.debug(f"{self._signal} export preparation raised {exc!r}")
            finally:
                self._preparing = False
                self._prepared.set()
        while True:
            with self._cond:
                # A wake-up sent while we were exporting found nobody waiting: it is lost.
                # Clear its flag before looking at the queue, or the next full batch would
                # not wake us (we would sleep the whole delay while the queue fills).
                self._wake_pending = False
                if (
                    not self._stopping
                    and not self._flush_waiters
                    and len(self._queue) < self._max_batch_size
                ):
                    self._cond.wait(self._delay)
                self._wake_pending = False
                waiters, self._flush_waiters = self._flush_waiters, []
                stopping = self._stopping
            self._drain(everything=bool(waiters) or stopping)
            for event in waiters:
                event.set()
            if stopping:
                return

    def _drain(self, everything: bool) -> None:
        """Export what is queued: one batch, then more only while full batches are waiting
        (all of it for a flush or shutdown). Not "until the queue is empty": the program
        keeps adding while an export waits on the network, and exporting each trickle at
        once made batches of 2-3 spans, each paying a whole export request (in a program
        making a Redis call every 50 µs, that was most of our cost)."""
        queue = self._queue
        first = True
        while queue and (first or everything or len(queue) >= self._max_batch_size):
            first = False
            batch = []
            while len(batch) < self._max_batch_size:
                try:
                    batch.append(queue.popleft())
                except IndexError:  # (emptied meanwhile: a shutdown past its timeout)
                    break
            if not batch:
                break
            self._in_flight = len(batch)
            left_out = self._left_out() if self._left_out is not None else 0
            too_large = self._too_large() if self._too_large is not None else 0
            try:
                ok = self._export(batch)
            except Exception as exc:
                ok = False
                _diagnostics.debug(f"{self._signal} export raised {exc!r}")
            if self._left_out is not None:
                left_out = self._left_out() - left_out
            if self._too_large is not None:
                too_large = self._too_large() - too_large
            in_flight, self._in_flight = self._in_flight, 0
            if not in_flight:
                continue  # a shutdown past its deadline counted this batch as dropped
            if ok:
                self.exported += len(batch) - left_out - too_large
                self.unencodable += left_out
                self.too_large += too_large
            else:
                self.failed += len(batch)

    def flush(self, timeout: float) -> bool:
        """Export everything queued before this call; False if any of it failed or it took
        over ``timeout``."""
        if self._closed:
            return False
        failed_before = self.failed
        with self._cond:
            if self._worker is None and not self._queue:
                return True
            event = threading.Event()
            self._flush_waiters.append(event)
            self._cond.notify()
        if self._worker is None:
            self._start_worker()
        return event.wait(max(timeout, 0.0)) and self.failed == failed_before

    def shutdown(self, timeout: float) -> bool:
        """Export what is queued within ``timeout``, then stop; what is left is dropped.
        False if anything was dropped or failed on the way."""
        if self._closed:
            return True
        deadline = time.monotonic() + max(timeout, 0.0)
        failed_before = self.failed
        with self._cond:
            self._stopping = True
            worker = self._worker
            self._cond.notify()
        if worker is None and self._queue:
            self._start_worker_for_shutdown()
            worker = self._worker
        finished = True
        if worker is not None:
            worker.join(max(deadline - time.monotonic(), 0.0))
            finished = not worker.is_alive()
        self._closed = True
        if self._on_shutdown is not None:
            try:
                self._on_shutdown()  # also interrupts an export stuck in retries
            except Exception as exc:
                _diagnostics.debug(f"{self._signal} exporter shutdown raised {exc!r}")
        left = len(self._queue)
        if not finished:  # (the batch the worker is still trying to export is lost too)
            left, self._in_flight = left + self._in_flight, 0
        if left:
            self._queue.clear()
            if finished:
                # The worker drained the queue in time and stopped: these came after it,
                # from threads still running at exit (a daemon thread's loop), as do items
                # emitted once closed. Bare, they are lost the same way, silently; counted
                # here, but neither a timeout nor a failed shutdown.
                self.dropped += left
            elif said_at_exit():
                self.dropped += left
            else:
                self._drop(left, "shutdown timeout reached", "TELEMETRYFLOW_SHUTDOWN_TIMEOUT")
        return finished and self.failed == failed_before

    def _start_worker_for_shutdown(self) -> None:
        worker = threading.Thread(
            target=self._run, name=f"telemetryflow-{self._signal}", daemon=True
        )
        self._worker = worker
        start_quietly(worker)


class BatchSpanProcessor(SpanProcessor):
    """Sampled, ended spans → ``BatchQueue``."""

    def __init__(self, queue: BatchQueue) -> None:
        self.queue = queue

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self.queue.emit(span)

    def shutdown(self) -> None:
        self.queue.shutdown(5.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.flush(timeout_millis / 1000.0)


class BatchLogProcessor(LogRecordProcessor):
    """Emitted log records → ``BatchQueue`` (as the read-only records exporters expect)."""

    def __init__(self, queue: BatchQueue) -> None:
        self.queue = queue

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        api_record = copy.copy(log_record.log_record)
        api_record.context = Context()  # do not keep the whole context alive in the queue
        self.queue.emit(
            ReadableLogRecord(
                log_record=api_record,
                resource=log_record.resource if log_record.resource is not None else Resource({}),
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def shutdown(self) -> None:
        self.queue.shutdown(5.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.flush(timeout_millis / 1000.0)
