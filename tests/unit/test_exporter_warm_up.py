"""The exporter is made (imports and all) when the first item is queued, not at the first
export (``LazyExporter.warm_up``, ``BatchQueue(prepare=)``, ``OTLPExporterFactory.warm_up``),
and a program filling the queue meanwhile waits for it once instead of losing items."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import batching
from telemetryflow_bootstrap.infrastructure.batching import BatchQueue
from telemetryflow_bootstrap.infrastructure.exporters import LazyExporter


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def test_warm_up_imports_then_builds_under_the_build_lock() -> None:
    seen: list[tuple[str, bool]] = []

    def build() -> str:
        seen.append(("build", lazy._lock.locked()))
        return "exporter"

    lazy = LazyExporter(build, "items", lambda: seen.append(("imports", lazy._lock.locked())))

    lazy.warm_up()

    assert seen == [("imports", True), ("build", True)]
    assert lazy.built == "exporter"
    assert lazy.get() == "exporter"
    assert len(seen) == 2  # built once


def test_the_warm_up_leaves_the_gil_switch_interval_alone() -> None:
    """(A shorter one made the import finish sooner under a busy program, but put its CPU
    on the program's first requests.)"""
    seen: list[float] = []
    lazy = LazyExporter(lambda: "exporter", "items",
                        lambda: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()

    lazy.warm_up()

    assert seen == [before]
    assert sys.getswitchinterval() == before


def test_a_failing_import_still_lets_the_build_run_and_report() -> None:
    def fail() -> None:
        raise ImportError("no module named grpc")

    lazy = LazyExporter(lambda: "exporter", "items", fail)

    lazy.warm_up()  # does not raise

    assert lazy.built == "exporter"


def test_a_build_failing_during_the_warm_up_is_reported_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    def build() -> str:
        raise ValueError("bad certificate")

    lazy = LazyExporter(build, "items", lambda: None)

    lazy.warm_up()

    assert lazy.get() is None
    assert capsys.readouterr().err.count("cannot create the items exporter: bad certificate") == 1


def test_warm_up_does_nothing_once_built_or_without_a_warm_up() -> None:
    calls: list[int] = []
    lazy = LazyExporter(lambda: "exporter", "items", lambda: calls.append(1))
    lazy.get()
    lazy.warm_up()
    LazyExporter(lambda: "exporter", "items").warm_up()

    assert calls == []


def test_the_worker_prepares_before_its_first_export() -> None:
    order: list[str] = []
    exported = threading.Event()

    def export(batch: Sequence[Any]) -> bool:
        order.append(f"export {len(batch)}")
        exported.set()
        return True

    queue = BatchQueue(export, signal="items", max_queue_size=10, max_batch_size=2,
                       schedule_delay_ms=10_000, prepare=lambda: order.append("prepare"))
    try:
        queue.emit("a")
        queue.emit("b")
        assert exported.wait(5.0)
    finally:
        queue.shutdown(1.0)

    assert order == ["prepare", "export 2"]


def test_a_failing_preparation_does_not_stop_the_exports() -> None:
    def prepare() -> None:
        raise RuntimeError("boom")

    batches: list[list[Any]] = []
    queue = BatchQueue(lambda batch: batches.append(list(batch)) or True, signal="items",
                       max_queue_size=10, max_batch_size=2, schedule_delay_ms=10_000,
                       prepare=prepare)
    queue.emit("a")
    assert queue.shutdown(5.0)

    assert batches == [["a"]]
    assert queue.exported == 1


_IMPORTED = """
import json, sys
from telemetryflow_bootstrap.domain.config import load_config
from telemetryflow_bootstrap.domain.signals import SignalType
from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory
config, _ = load_config({"TELEMETRYFLOW_ENDPOINT": "127.0.0.1:4317",
                         "TELEMETRYFLOW_PROTOCOL": sys.argv[1],
                         "TELEMETRYFLOW_EXPORTER": sys.argv[2]})
factory = OTLPExporterFactory(config)
def loaded():
    return sorted(m for m in sys.modules if m.startswith(("grpc", "requests",
                                                          "opentelemetry.exporter.otlp.proto")))
before = loaded()
factory.warm_up(SignalType[sys.argv[3]])
print(json.dumps({"before": before, "after": loaded()}))
"""


@pytest.mark.parametrize(("protocol", "signal", "module", "transport"), [
    ("grpc", "LOGS", "opentelemetry.exporter.otlp.proto.grpc._log_exporter", "grpc"),
    ("grpc", "TRACES", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "grpc"),
    ("http/protobuf", "LOGS", "opentelemetry.exporter.otlp.proto.http._log_exporter",
     "requests"),
    ("http/protobuf", "TRACES", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
     "requests"),
])
def test_the_factory_warm_up_imports_the_signals_exporter_stack(
        protocol: str, signal: str, module: str, transport: str) -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORTED, protocol, "otlp", signal],
                          capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout)

    assert modules["before"] == []
    assert module in modules["after"]
    assert transport in modules["after"]


@pytest.mark.parametrize(("exporter", "signal"), [("console", "LOGS"), ("otlp", "METRICS")])
def test_the_console_exporter_and_metrics_need_no_warm_up(exporter: str, signal: str) -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORTED, "grpc", exporter, signal],
                          capture_output=True, text=True, check=True)

    assert json.loads(done.stdout) == {"before": [], "after": []}


def test_a_producer_waits_once_for_the_preparation_at_half_a_queue_and_loses_nothing(
        ) -> None:
    release = threading.Event()
    exported: list[Any] = []
    queue = BatchQueue(lambda batch: exported.extend(batch) or True, signal="items",
                       max_queue_size=10, max_batch_size=4, schedule_delay_ms=10_000,
                       prepare=lambda: release.wait(10.0))
    emitted: list[int] = []

    def produce() -> None:
        for i in range(12):
            queue.emit(i)
            emitted.append(i)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        deadline = time.monotonic() + 5.0
        while queue.queued < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert emitted == [0, 1, 2, 3]  # the fifth (half the queue) waits for prepare
        assert queue.queued == 5
        release.set()
        producer.join(5.0)
        assert emitted == list(range(12))
        assert queue.shutdown(5.0)
    finally:
        release.set()
    assert queue.dropped == 0
    assert sorted(exported) == list(range(12))


def test_a_preparation_that_does_not_end_costs_one_bounded_wait_then_drops_as_usual(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "_PREPARATION_WAIT", 0.3)
    release = threading.Event()
    queue = BatchQueue(lambda batch: True, signal="items", max_queue_size=10,
                       max_batch_size=4, schedule_delay_ms=10_000,
                       prepare=lambda: release.wait(10.0))
    try:
        started = time.monotonic()
        for i in range(30):
            queue.emit(i)
        waited = time.monotonic() - started
    finally:
        release.set()
        queue.shutdown(5.0)

    assert 0.3 <= waited < 3.0  # one wait, not one per item
    assert queue.dropped == 20


def test_items_queued_by_the_preparation_itself_never_wait() -> None:
    holder: list[BatchQueue] = []

    def prepare() -> None:
        for i in range(8):  # past half the queue, on the worker thread
            holder[0].emit(f"from prepare {i}")

    exported: list[Any] = []
    queue = BatchQueue(lambda batch: exported.extend(batch) or True, signal="items",
                       max_queue_size=10, max_batch_size=100, schedule_delay_ms=10_000,
                       prepare=prepare)
    holder.append(queue)
    queue.emit("first")
    assert queue.flush(5.0)
    queue.shutdown(5.0)

    assert exported == ["first"] + [f"from prepare {i}" for i in range(8)]


class _EmptiedWhileRead(collections.deque):  # type: ignore[type-arg]
    """A queue that says it holds items, then is found empty: what a shutdown past its
    timeout does when it clears the queue while the worker takes a batch from it."""

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return 1_000


def test_a_queue_emptied_while_the_worker_takes_a_batch_ends_the_drain_quietly(
        capfd: pytest.CaptureFixture[str]) -> None:
    exported: list[Any] = []
    queue = BatchQueue(lambda batch: exported.append(list(batch)) or True, signal="items",
                       max_queue_size=10, max_batch_size=4, schedule_delay_ms=10_000)
    queue._queue = _EmptiedWhileRead()

    queue._drain(everything=True)  # (the worker's step; it raised IndexError before)

    assert exported == []
    assert "Traceback" not in capfd.readouterr().err
