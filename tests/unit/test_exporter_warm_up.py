"""The exporter's imports happen when the first item is queued, not at the first export
(``LazyExporter.warm_up``, ``BatchQueue(prepare=)``, ``OTLPExporterFactory.warm_up``)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import exporters
from telemetryflow_bootstrap.infrastructure.batching import BatchQueue
from telemetryflow_bootstrap.infrastructure.exporters import LazyExporter


@pytest.fixture(autouse=True)
def _switch_interval_restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    _diagnostics.reset_for_tests()
    yield
    sys.setswitchinterval(before)
    _diagnostics.reset_for_tests()


def test_warm_up_runs_under_the_build_lock_with_a_short_switch_interval() -> None:
    seen: list[tuple[bool, float]] = []
    lazy = LazyExporter(lambda: "exporter", "items",
                        lambda: seen.append((lazy._lock.locked(), sys.getswitchinterval())))
    sys.setswitchinterval(0.005)

    lazy.warm_up()

    assert seen == [(True, exporters._WARM_UP_SWITCH_INTERVAL)]
    assert sys.getswitchinterval() == 0.005
    assert lazy.built is None  # warmed, not built
    assert lazy.get() == "exporter"


def test_a_switch_interval_changed_during_the_warm_up_is_left_as_set() -> None:
    lazy = LazyExporter(lambda: "exporter", "items", lambda: sys.setswitchinterval(0.002))
    sys.setswitchinterval(0.005)

    lazy.warm_up()

    assert sys.getswitchinterval() == 0.002


def test_a_shorter_switch_interval_than_ours_is_kept() -> None:
    seen: list[float] = []
    lazy = LazyExporter(lambda: "exporter", "items",
                        lambda: seen.append(sys.getswitchinterval()))
    sys.setswitchinterval(0.0001)
    shorter = sys.getswitchinterval()  # (as stored: whole microseconds)

    lazy.warm_up()

    assert seen == [shorter]
    assert sys.getswitchinterval() == shorter


def test_a_failing_warm_up_leaves_the_build_to_report() -> None:
    def fail() -> None:
        raise ImportError("no module named grpc")

    lazy = LazyExporter(lambda: "exporter", "items", fail)
    sys.setswitchinterval(0.005)

    lazy.warm_up()  # does not raise

    assert sys.getswitchinterval() == 0.005
    assert lazy.get() == "exporter"


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
    ("http/protobuf", "METRICS", "opentelemetry.exporter.otlp.proto.http.metric_exporter",
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


def test_the_console_exporter_needs_no_warm_up() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORTED, "grpc", "console", "LOGS"],
                          capture_output=True, text=True, check=True)

    assert json.loads(done.stdout) == {"before": [], "after": []}
