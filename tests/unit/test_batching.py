"""``BatchQueue``: batching, flush, bounded shutdown and fork safety, with plain Python export
functions standing in for exporters."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure.batching import BatchQueue

_MARGIN = 0.5  # seconds a bounded call may overrun its timeout on a loaded machine


class Recorder:
    """An export function that records every batch (and can fail or block on demand)."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.batches: list[list[Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, batch: Sequence[Any]) -> bool:
        self.entered.set()
        self.release.wait(10.0)
        self.batches.append(list(batch))
        return self.ok

    @property
    def items(self) -> list[Any]:
        return [item for batch in self.batches for item in batch]


@pytest.fixture
def queues() -> Iterator[Callable[..., BatchQueue]]:
    """Builds queues (long schedule delay unless given) and shuts them all down after."""
    made: list[BatchQueue] = []

    def make(export: Callable[[Sequence[Any]], bool], **settings: Any) -> BatchQueue:
        options = {"max_queue_size": 100, "max_batch_size": 10, "schedule_delay_ms": 10_000,
                   **settings}
        queue = BatchQueue(export, signal="items", **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.shutdown(1.0)


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def test_batches_never_exceed_max_batch_size(queues: Callable[..., BatchQueue]) -> None:
    """Items are exported in order, in batches of at most max_batch_size."""
    recorder = Recorder()
    queue = queues(recorder, max_batch_size=3)
    for item in range(7):
        queue.emit(item)
    assert queue.flush(2.0)
    assert recorder.items == list(range(7))
    assert max(len(batch) for batch in recorder.batches) <= 3
    assert len(recorder.batches) >= 3
    assert queue.exported == 7


def test_full_batch_is_exported_without_waiting_for_the_delay(
        queues: Callable[..., BatchQueue]) -> None:
    """Reaching max_batch_size wakes the worker before the schedule delay runs out."""
    recorder = Recorder()
    queue = queues(recorder, max_batch_size=2, schedule_delay_ms=60_000)
    queue.emit("a")
    queue.emit("b")
    deadline = time.monotonic() + 2.0
    while not recorder.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.items == ["a", "b"]


def test_items_added_during_an_export_wait_for_a_full_batch_or_the_delay(
        queues: Callable[..., BatchQueue]) -> None:
    """What the program adds while an export is in flight is not exported at once as a
    trickle of tiny batches (each a whole export request): after the batch it woke for,
    the worker goes on only while full batches wait, else until the schedule delay."""
    batches: list[int] = []
    holder: list[BatchQueue] = []

    def export(batch: Sequence[Any]) -> bool:
        batches.append(len(batch))
        if len(batches) <= 20:
            for _ in range(3):  # the program keeps going while we wait on the network
                holder[0].emit("late")
        return True

    queue = queues(export, max_queue_size=1000, max_batch_size=100,
                   schedule_delay_ms=60_000)
    holder.append(queue)
    for item in range(200):
        queue.emit(item)
    deadline = time.monotonic() + 2.0
    while len(batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # (before the fix: ~20 more exports of 3 items here)
    assert batches == [100, 100]
    assert queue.queued == 6
    assert queue.flush(2.0)
    assert sum(batches) == 200 + 3 * min(len(batches), 20)


def test_a_full_batch_reached_during_an_export_still_wakes_the_worker_later(
        queues: Callable[..., BatchQueue]) -> None:
    """A wake-up sent while the worker was busy exporting (nobody waiting: it is lost) must
    not keep the next full batch from waking it. Before the fix the worker slept the whole
    schedule delay while the queue filled and dropped: the program's burst lost ~80%."""
    first = threading.Event()
    holder: list[BatchQueue] = []
    exported: list[list[Any]] = []

    def export(batch: Sequence[Any]) -> bool:
        exported.append(list(batch))
        if len(exported) == 1:
            for item in ("b1", "b2", "b3", "b4"):  # a full batch while the export runs
                holder[0].emit(item)
            first.set()
        return True

    queue = queues(export, max_queue_size=100, max_batch_size=4, schedule_delay_ms=60_000)
    holder.append(queue)
    for item in ("a1", "a2", "a3", "a4"):
        queue.emit(item)
    assert first.wait(2.0)
    deadline = time.monotonic() + 2.0
    while len(exported) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # (the worker is waiting again, for the next full batch)
    for item in ("c1", "c2", "c3", "c4"):
        queue.emit(item)
    deadline = time.monotonic() + 2.0
    while len(exported) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert exported == [["a1", "a2", "a3", "a4"], ["b1", "b2", "b3", "b4"],
                        ["c1", "c2", "c3", "c4"]]


def test_items_are_exported_after_the_schedule_delay(queues: Callable[..., BatchQueue]) -> None:
    """An incomplete batch is exported once the schedule delay has passed."""
    recorder = Recorder()
    queue = queues(recorder, schedule_delay_ms=30)
    queue.emit("only")
    deadline = time.monotonic() + 2.0
    while not recorder.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.items == ["only"]


def test_flush_exports_everything_queued(queues: Callable[..., BatchQueue]) -> None:
    """flush() exports every queued item, across batches, and reports True."""
    recorder = Recorder()
    queue = queues(recorder, max_batch_size=4)
    assert queue.flush(1.0) is True  # nothing queued, no worker yet
    for item in range(25):
        queue.emit(item)
    assert queue.flush(2.0) is True
    assert recorder.items == list(range(25))
    assert (queue.exported, queue.queued, queue.failed, queue.dropped) == (25, 0, 0, 0)


def test_flush_reports_failed_exports(queues: Callable[..., BatchQueue]) -> None:
    """flush() is False when an export fails, and the items count as failed."""
    queue = queues(Recorder(ok=False))
    for item in range(3):
        queue.emit(item)
    assert queue.flush(2.0) is False
    assert (queue.exported, queue.failed) == (0, 3)


def test_raising_export_is_counted_as_failed(queues: Callable[..., BatchQueue]) -> None:
    """An export function that raises fails its batch; the worker survives for the next."""
    calls: list[int] = []

    def export(batch: Sequence[Any]) -> bool:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return True

    queue = queues(export)
    queue.emit("first")
    assert queue.flush(2.0) is False
    queue.emit("second")
    assert queue.flush(2.0) is True
    assert (queue.failed, queue.exported) == (1, 1)


def test_full_queue_drops_new_items(queues: Callable[..., BatchQueue]) -> None:
    """Past max_queue_size new items are dropped and counted; the queued ones still export."""
    recorder = Recorder()
    queue = queues(recorder, max_queue_size=3)
    for item in range(5):
        queue.emit(item)
    assert (queue.queued, queue.dropped) == (3, 2)
    assert queue.flush(2.0)
    assert recorder.items == [0, 1, 2]


def test_shutdown_exports_the_rest_and_then_drops(queues: Callable[..., BatchQueue]) -> None:
    """shutdown() exports what is queued, runs on_shutdown, and later items are dropped."""
    recorder = Recorder()
    stopped: list[bool] = []
    queue = BatchQueue(recorder, signal="items", max_queue_size=10, max_batch_size=10,
                       schedule_delay_ms=10_000, on_shutdown=lambda: stopped.append(True))
    for item in range(4):
        queue.emit(item)
    assert queue.shutdown(2.0) is True
    assert recorder.items == [0, 1, 2, 3]
    assert stopped == [True]
    queue.emit("late")
    assert queue.dropped == 1
    assert queue.flush(1.0) is False
    assert queue.shutdown(1.0) is True  # already shut down: a no-op


def test_items_from_threads_still_running_at_exit_are_counted_quietly(
        queues: Callable[..., BatchQueue], capsys: pytest.CaptureFixture[str]) -> None:
    """A daemon thread emitting in a loop while the program exits: what it emits after the
    final drain is dropped and counted, but the shutdown did not time out or fail, and
    nothing is said (it used to warn "shutdown timeout reached" and return False)."""
    recorder = Recorder()
    queue = queues(recorder, max_queue_size=100_000, max_batch_size=512)
    running = threading.Event()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            queue.emit("x")
            running.set()

    emitter = threading.Thread(target=loop, daemon=True)
    emitter.start()
    running.wait(5.0)
    try:
        assert queue.shutdown(5.0) is True
        time.sleep(0.05)  # (still emitting: after the shutdown)
    finally:
        stop.set()
        emitter.join(5.0)
    assert queue.dropped > 0
    assert capsys.readouterr().err == ""


def test_shutdown_with_blocking_exporter_returns_in_time(queues: Callable[..., BatchQueue]) -> None:
    """shutdown(timeout) with an export that hangs returns False within ~timeout, counts what
    was still queued as dropped, and calls on_shutdown (which can interrupt the export)."""
    recorder = Recorder()
    recorder.release.clear()
    queue = BatchQueue(recorder, signal="items", max_queue_size=100, max_batch_size=2,
                       schedule_delay_ms=10_000, on_shutdown=recorder.release.set)
    queue.emit(0)
    queue.emit(1)  # a full batch: the worker takes it and hangs in the export
    assert recorder.entered.wait(2.0)
    for item in range(2, 6):
        queue.emit(item)
    started = time.monotonic()
    assert queue.shutdown(0.3) is False
    assert time.monotonic() - started < 0.3 + _MARGIN
    assert queue.queued == 0
    # on_shutdown released the hung export: the batch is counted exported if it finished
    # before the shutdown looked, else dropped (and then not counted again): once, either way
    assert queue.dropped in (4, 6)
    deadline = time.monotonic() + 2.0
    while (not recorder.batches or queue.dropped + queue.exported < 6) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.items == [0, 1]
    time.sleep(0.05)
    assert queue.dropped + queue.exported == 6 and queue.failed == 0


def test_a_batch_still_exporting_at_the_deadline_counts_as_dropped(
        queues: Callable[..., BatchQueue]) -> None:
    """Its export outlives the shutdown: those items are lost and must be in the count the
    exit warning prints (they were counted neither exported nor dropped), once."""
    recorder = Recorder()
    recorder.release.clear()  # the export blocks
    queue = queues(recorder, max_batch_size=10)
    for item in range(13):
        queue.emit(item)
    queue.flush(0.0)
    assert recorder.entered.wait(5.0)
    assert queue.shutdown(0.2) is False
    assert queue.dropped == 13 and queue.exported == 0 and queue.failed == 0
    recorder.release.set()  # the export finishes after all: not counted again
    time.sleep(0.2)
    assert queue.dropped == 13 and queue.exported == 0 and queue.failed == 0


def test_the_batch_being_exported_is_counted_in_flight(
        queues: Callable[..., BatchQueue]) -> None:
    """While an export is under way its items are neither queued nor exported yet: they
    show as in flight (lost too if the process ends now), and no longer once it returns."""
    recorder = Recorder()
    recorder.release.clear()
    queue = queues(recorder, max_batch_size=4)
    for item in range(6):
        queue.emit(item)
    assert recorder.entered.wait(5.0)
    assert (queue.in_flight, queue.queued) == (4, 2)
    recorder.release.set()
    assert queue.flush(5.0)
    assert (queue.in_flight, queue.queued, queue.exported) == (0, 0, 6)


def test_shutdown_reports_a_failed_final_export(queues: Callable[..., BatchQueue]) -> None:
    """shutdown() is False when the export it ran failed, as flush() is."""
    queue = queues(Recorder(ok=False))
    queue.emit("x")
    assert queue.shutdown(2.0) is False


def test_concurrent_emitters_lose_nothing(queues: Callable[..., BatchQueue]) -> None:
    """Items emitted from many threads are each exported exactly once."""
    recorder = Recorder()
    queue = queues(recorder, max_queue_size=100_000, max_batch_size=64, schedule_delay_ms=5)

    def emit(base: int) -> None:
        for offset in range(2_000):
            queue.emit(base + offset)

    threads = [threading.Thread(target=emit, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert queue.flush(5.0)
    assert sorted(recorder.items) == sorted(n * 10_000 + o for n in range(4) for o in range(2_000))
    assert (queue.exported, queue.dropped, queue.failed) == (8_000, 0, 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_starts_empty_and_exports_its_own_items(
        queues: Callable[..., BatchQueue]) -> None:
    """After fork() the child's queue is empty (the parent's items are never exported twice)
    and the child exports its own items; the parent still exports its queued items."""
    recorder = Recorder()
    queue = queues(recorder)
    queue.emit("parent-1")
    queue.emit("parent-2")  # the worker runs, waiting out the long schedule delay
    assert queue.queued == 2
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            report: dict[str, Any] = {"queued_after_fork": queue.queued}
            recorder.batches.clear()  # the copied list holds nothing exported in this process
            queue.emit("child-1")
            report["flushed"] = queue.flush(2.0)
            report["exported_items"] = recorder.items
            report["counts"] = [queue.exported, queue.dropped, queue.failed]
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {"queued_after_fork": 0, "flushed": True,
                      "exported_items": ["child-1"], "counts": [1, 0, 0]}
    assert queue.flush(2.0)
    assert recorder.items == ["parent-1", "parent-2"]
