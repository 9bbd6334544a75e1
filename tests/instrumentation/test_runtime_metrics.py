"""Runtime metrics: names and units from the semantic conventions, plausible values from this
very process, read through the real SDK with an in-memory reader."""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.semconv._incubating.metrics import cpython_metrics, process_metrics

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _process_level, runtime_metrics
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

LINUX = sys.platform.startswith("linux")


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    runtime_metrics.install(provider.get_meter("test"))
    yield reader
    provider.shutdown()
    _diagnostics.reset_for_tests()


def _collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    if data is None:  # nothing registered
        return {}
    return {metric.name: metric for rm in data.resource_metrics for sm in rm.scope_metrics
            for metric in sm.metrics}


def _points(metric: Any) -> dict[tuple[tuple[str, Any], ...], Any]:
    return {tuple(sorted(p.attributes.items())): p.value for p in metric.data.data_points}


def test_names_and_units_follow_the_semantic_conventions(reader):
    """Every metric is named and measured as the process/CPython conventions say (the file
    descriptor count under its current, non-deprecated name)."""
    metrics = _collect(reader)
    expected = {
        process_metrics.PROCESS_CPU_TIME: "s",
        process_metrics.PROCESS_THREAD_COUNT: "{thread}",
        process_metrics.PROCESS_UPTIME: "s",
        process_metrics.PROCESS_CONTEXT_SWITCHES: "{context_switch}",
        cpython_metrics.CPYTHON_GC_COLLECTIONS: "{collection}",
        cpython_metrics.CPYTHON_GC_COLLECTED_OBJECTS: "{object}",
        cpython_metrics.CPYTHON_GC_UNCOLLECTABLE_OBJECTS: "{object}",
    }
    if LINUX:
        expected.update({process_metrics.PROCESS_MEMORY_USAGE: "By",
                         process_metrics.PROCESS_MEMORY_VIRTUAL: "By",
                         process_metrics.PROCESS_UNIX_FILE_DESCRIPTOR_COUNT: "{file_descriptor}"})
    assert {name: metrics[name].unit for name in expected} == expected
    assert set(metrics) == set(expected)
    assert metrics["process.cpu.time"].data.is_monotonic
    assert not metrics["process.memory.usage" if LINUX else "process.thread.count"
                       ].data.is_monotonic


def test_cpu_time_per_mode(reader):
    """process.cpu.time has a user and a system point, and this process has used CPU."""
    sum(i * i for i in range(200_000))
    points = _points(_collect(reader)["process.cpu.time"])
    assert set(points) == {(("cpu.mode", "user"),), (("cpu.mode", "system"),)}
    assert sum(points.values()) > 0
    assert points[(("cpu.mode", "user"),)] <= os.times().user


@pytest.mark.skipif(not LINUX, reason="memory and descriptors come from /proc")
def test_memory_and_file_descriptors(reader):
    """Resident memory is over 1 MiB and at most the virtual size; the descriptor count goes
    up by one when this test opens a file."""
    metrics = _collect(reader)
    rss = metrics["process.memory.usage"].data.data_points[0].value
    virtual = metrics["process.memory.virtual"].data.data_points[0].value
    assert 1024 * 1024 < rss <= virtual
    before = metrics["process.unix.file_descriptor.count"].data.data_points[0].value
    with open(__file__):
        during = _collect(reader)["process.unix.file_descriptor.count"].data.data_points[0].value
    assert before > 0
    assert during == before + 1


def test_thread_count_follows_threads(reader):
    """process.thread.count is at least one and sees a thread the program starts. (Threads
    other tests left behind may end in between, a receiver's or an exporter's: a few tries,
    one of which must see exactly the one more.)"""
    seen = []
    for _ in range(5):
        before = _collect(reader)["process.thread.count"].data.data_points[0].value
        release = threading.Event()
        thread = threading.Thread(target=release.wait)
        thread.start()
        try:
            during = _collect(reader)["process.thread.count"].data.data_points[0].value
        finally:
            release.set()
            thread.join()
        assert before >= 1
        seen.append((before, during))
        if during == before + 1:
            break
    assert any(during == before + 1 for before, during in seen), seen


def test_context_switches_and_uptime(reader):
    """Voluntary and involuntary context switches are counted; uptime is positive and less
    than a day for a test process."""
    metrics = _collect(reader)
    switches = _points(metrics["process.context_switches"])
    assert set(switches) == {(("process.context_switch.type", "voluntary"),),
                             (("process.context_switch.type", "involuntary"),)}
    assert sum(switches.values()) > 0
    uptime = metrics["process.uptime"].data.data_points[0].value
    assert 0 < uptime < 86_400


def test_gc_metrics_per_generation(reader):
    """Collections, collected and uncollectable objects have one point per generation, and a
    full collection that frees a reference cycle shows up in generation 2."""
    cycle: list[Any] = []
    cycle.append(cycle)
    del cycle
    before = _points(_collect(reader)["cpython.gc.collections"])
    gc.collect()
    metrics = _collect(reader)
    generations = [(("cpython.gc.generation", g),) for g in range(len(gc.get_stats()))]
    for name in ("cpython.gc.collections", "cpython.gc.collected_objects",
                 "cpython.gc.uncollectable_objects"):
        assert sorted(_points(metrics[name])) == generations
    after = _points(metrics["cpython.gc.collections"])
    assert after[(("cpython.gc.generation", 2),)] == before[(("cpython.gc.generation", 2),)] + 1
    assert _points(metrics["cpython.gc.collected_objects"])[(("cpython.gc.generation", 2),)] >= 1


def test_a_failing_callback_yields_nothing_and_is_reported_once(monkeypatch):
    """A source that raises leaves its metric out (the others still arrive) and is reported
    once, however often it is collected."""

    def broken() -> Any:
        raise OSError("no such source")

    monkeypatch.setattr(runtime_metrics, "_cpu_time", broken)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        runtime_metrics.install(provider.get_meter("test"))
        for _ in range(3):
            metrics = _collect(reader)
        assert "process.cpu.time" not in metrics
        assert "process.thread.count" in metrics
        reports = [m for _, m in _diagnostics.recorded() if "process.cpu.time" in m]
        assert len(reports) == 1 and "no such source" in reports[0]
    finally:
        provider.shutdown()
        _diagnostics.reset_for_tests()


def test_uptime_without_proc_falls_back_to_time_since_start(monkeypatch):
    """Where /proc is missing, uptime is the time since our module was loaded."""
    monkeypatch.setattr(runtime_metrics, "_PROC", "/nonexistent/proc")
    monkeypatch.setattr(runtime_metrics, "_read", _raise_oserror)
    (observation,) = runtime_metrics._uptime()
    assert observation.value > 0
    (threads,) = runtime_metrics._thread_count()
    assert threads.value == threading.active_count()
    names = [spec[0] for spec in runtime_metrics._instruments()]
    assert "process.memory.usage" not in names
    assert "process.unix.file_descriptor.count" not in names


def _raise_oserror(path: str) -> str:
    raise OSError(path)


def _context(meter: Any, **config: Any) -> PatchContext:
    return PatchContext(tracer=None, meter=meter, logger_provider=None,
                        config=TelemetryConfig(service_name="svc", **config), handler=None)


@pytest.mark.parametrize("config", [{"runtime_metrics": False},
                                    {"disabled_instrumentations": ("runtime_metrics",)}],
                         ids=["TELEMETRYFLOW_RUNTIME_METRICS=false", "disabled-by-name"])
def test_process_level_can_turn_runtime_metrics_off(config):
    """TELEMETRYFLOW_RUNTIME_METRICS=false or disabling 'runtime_metrics' by name registers
    no instrument."""
    import logging

    factory = logging.getLogRecordFactory()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        names = _process_level.install(_context(provider.get_meter("test"), **config))
        assert "runtime_metrics" not in names
        assert _collect(reader) == {}
    finally:
        provider.shutdown()
        logging.setLogRecordFactory(factory)


def test_process_level_without_a_meter_installs_no_metrics():
    """With metrics disabled (no meter) runtime metrics are skipped, not failed."""
    import logging

    factory = logging.getLogRecordFactory()
    try:
        assert _process_level.install(_context(None)) == []
    finally:
        logging.setLogRecordFactory(factory)
    assert not any("runtime metrics" in m for _, m in _diagnostics.recorded())
