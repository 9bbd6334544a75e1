"""Metric points not exported by the shutdown deadline are dropped and counted, in
``get_status()``: the export still under way (a collector that never answers, or answers
UNAVAILABLE until then), the last collection the reader never got to make, and nothing
twice. Through the client, with the SDK's real ``MeterProvider`` and reader, and exporters
that stand in for a collector or are the real OTLP ones."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.domain.signals import Protocol
from telemetryflow_bootstrap.infrastructure.exporters import LazyExporter, OTLPExporterFactory
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides
from telemetryflow_bootstrap.infrastructure.metric_reader import (
    CountingMetricReader,
    LazyMetricExporter,
)
from telemetryflow_bootstrap.infrastructure.reachability import final_exports
from tests.otlp_receiver import OTLPReceiver

_MARGIN = 0.5  # seconds a bounded call may overrun its timeout on a loaded machine


class SilentExporter:
    """Blocks in export until the test releases it: a collector that never answers (and an
    export its exporter's shutdown does not interrupt). Then answers ``result``: the late
    answer, which a shutdown past its deadline must not count again."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()
        self.answered = threading.Event()
        self.calls = 0

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        self.release.wait(10.0)
        self.answered.set()
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


class AnsweringExporter:
    """Answers every export at once with ``result``."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls = 0

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def silent() -> Iterator[Callable[[Any], SilentExporter]]:
    """Makes ``SilentExporter``s, all released at the end of the test."""
    made: list[SilentExporter] = []

    def make(result: Any) -> SilentExporter:
        made.append(SilentExporter(result))
        return made[-1]

    yield make
    for exporter in made:
        exporter.release.set()


@pytest.fixture
def clients() -> Iterator[Callable[..., TelemetryFlowClient]]:
    """Private clients (set_global=False) whose exporters come from the (patched) OTLP
    factory; shut down after the test if it did not."""
    made: list[TelemetryFlowClient] = []

    def make(config: TelemetryConfig) -> TelemetryFlowClient:
        client = TelemetryFlowClient(config, exporters=ExporterOverrides(), set_global=False)
        made.append(client.initialize())
        return client

    yield make
    for client in made:
        client.shutdown(0.5)


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _config(endpoint: str = "127.0.0.1:4317", **changes: Any) -> TelemetryConfig:
    settings = {"enable_traces": False, "enable_logs": False, **changes}
    return TelemetryFlowBuilder().with_service("metric-drops").build_config().replace(
        endpoint=endpoint, insecure=True, **settings)


def _metric_exporter(monkeypatch: pytest.MonkeyPatch, exporter: Any) -> None:
    monkeypatch.setattr(OTLPExporterFactory, "create_metric_exporter", lambda self: exporter)


def _record_three_points(client: TelemetryFlowClient) -> None:
    for route in ("/a", "/b"):
        client.increment_counter("requests", attributes={"route": route})
    client.record_gauge("depth", 3)


def _metric_counts(client: TelemetryFlowClient) -> tuple[int, int, int]:
    status = client.get_status()
    return (status["metric_points_exported"], status["metric_points_dropped"],
            status["metric_points_queued"])


# ----- a collector that never answers ------------------------------------------------------

def test_points_whose_export_never_returns_are_dropped_at_the_deadline(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """shutdown() within its timeout counts the points of the export still waiting for an
    answer as dropped (they were 'queued', and lost uncounted), and the late answer
    changes nothing."""
    exporter = silent(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    started = time.monotonic()
    assert client.shutdown(0.3) is False
    assert time.monotonic() - started < 0.3 + _MARGIN
    assert exporter.entered.is_set()
    assert _metric_counts(client) == (0, 3, 0)
    exporter.release.set()
    assert exporter.answered.wait(5.0)
    time.sleep(0.1)  # (the reader settles the answer)
    assert _metric_counts(client) == (0, 3, 0)


def test_points_the_spans_left_no_time_for_are_counted(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """Spans to a collector that never answers take the whole shutdown timeout: the metric
    points are still collected and counted as dropped (the reader used to be given no
    time at all, never collected them, and the count said 0)."""
    spans = silent(SpanExportResult.SUCCESS)
    metrics = silent(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", lambda self: spans)
    _metric_exporter(monkeypatch, metrics)
    client = clients(_config(enable_traces=True))
    with client.span("work"):
        _record_three_points(client)
    started = time.monotonic()
    assert client.shutdown(0.5) is False
    assert time.monotonic() - started < 0.5 + _MARGIN
    status = client.get_status()
    assert (status["spans_dropped"], status["metric_points_dropped"]) == (1, 3)


def test_metrics_are_exported_while_the_spans_wait(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """A flush (the last one before os._exit or exec) and the shutdown collect and export
    the metrics alongside the spans instead of after them: with the spans' collector
    silent and the metrics' answering, the points arrive (they were left no time: neither
    exported nor counted)."""
    spans = silent(SpanExportResult.SUCCESS)
    metrics = AnsweringExporter(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", lambda self: spans)
    _metric_exporter(monkeypatch, metrics)
    client = clients(_config(enable_traces=True))
    with client.span("work"):
        _record_three_points(client)
    assert client.flush(0.3) is False  # (the span is not exported)
    assert _metric_counts(client) == (3, 0, 0)
    assert client.shutdown(0.3) is False
    assert _metric_counts(client) == (6, 0, 0)  # (the last collection: the same 3 again)


def test_the_last_points_are_queued_as_soon_as_the_exit_starts(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """While the shutdown waits for a silent collector, get_status() already counts the
    last metric points as queued: what a signal that abandons the exit says is lost (see
    lifecycle._abandon_exit) includes them."""
    spans = silent(SpanExportResult.SUCCESS)
    metrics = silent(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", lambda self: spans)
    _metric_exporter(monkeypatch, metrics)
    client = clients(_config(enable_traces=True))
    with client.span("work"):
        _record_three_points(client)
    shutdown = threading.Thread(target=client.shutdown, args=(2.0,), daemon=True)
    shutdown.start()
    try:
        assert spans.entered.wait(2.0) and metrics.entered.wait(2.0)
        status = client.get_status()
        assert (status["spans_queued"], status["metric_points_queued"]) == (1, 3)
    finally:
        shutdown.join(5.0)
    assert _metric_counts(client) == (0, 3, 0)


def test_a_short_runs_runtime_only_sample_is_neither_exported_nor_dropped(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """(Unchanged.) A process younger than one export interval that recorded only runtime
    metrics skips its exit-time export: not counted as lost, even when the spans take the
    whole shutdown timeout and the points are counted at its end."""
    spans = silent(SpanExportResult.SUCCESS)
    metrics = AnsweringExporter(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", lambda self: spans)
    _metric_exporter(monkeypatch, metrics)
    client = clients(_config(enable_traces=True))
    with client.span("work"):
        client.record_gauge("process.uptime", 1.5)
    assert client.shutdown(0.3) is False
    assert metrics.calls == 0
    assert _metric_counts(client) == (0, 0, 0)


def test_the_last_collection_is_counted_once_when_the_reader_is_stuck(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """The reader's thread is stuck in a periodic export when the program ends: its last
    collection is never made. The points are counted anyway, and once: the stuck export's
    2 points are among the 3 of the state at the end (cumulative), not added to them."""
    exporter = silent(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config(metric_export_interval_ms=50))
    for route in ("/a", "/b"):
        client.increment_counter("requests", attributes={"route": route})
    assert exporter.entered.wait(5.0), "the periodic reader never exported"
    assert _metric_counts(client) == (0, 0, 2)
    client.record_gauge("depth", 3)
    assert client.shutdown(0.3) is False
    assert exporter.calls == 1  # (nothing exported after the stuck export)
    assert _metric_counts(client) == (0, 3, 0)


def test_flushes_waiting_for_the_same_answer_are_one_loss(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """Two flushes that time out waiting for a silent collector each collect the same 3
    points: 3 are queued, and 3 dropped at shutdown, not 6 (a multiprocessing child
    flushes when its target returns and again at os._exit)."""
    exporter = silent(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    assert client.flush(0.2) is False
    assert client.flush(0.2) is False
    assert _metric_counts(client) == (0, 0, 3)
    assert client.shutdown(0.2) is False
    assert _metric_counts(client) == (0, 3, 0)


# ----- a flush racing the exit's shutdown ---------------------------------------------------

class ShutDownCutsOffExporter:
    """An OTLP exporter as gRPC's behaves: its shutdown cuts off the export under way
    (CANCELLED) and it refuses every export after it. The first export waits until the
    test releases it (an answer still on its way)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.is_shut_down = threading.Event()
        self.exported: list[bool] = []  # (one per export: whether it went through)

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.exported and not self.entered.is_set():
            self.entered.set()
            self.release.wait(10.0)
        ok = not self.is_shut_down.is_set()
        self.exported.append(ok)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.is_shut_down.set()
        self.release.set()


def _handed_over(client: TelemetryFlowClient) -> int:
    """How many collections the reader holds, handed over and not yet exported."""
    return len(client._handler._metric_reader._queued)


def test_a_flush_racing_the_shutdown_is_exported_before_the_exporter_shuts_down(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush whose collection waits behind the exit's last export (a uvicorn worker's
    end-of-process flush, on its main thread, during the SIGTERM shutdown on ours) is
    exported before the exporter is shut down: nothing dropped, the shutdown True (it was
    cut off, counted lost, and every worker warned at SIGTERM)."""
    exporter = ShutDownCutsOffExporter()
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    done: dict[str, bool] = {}
    shutdown = threading.Thread(target=lambda: done.update(shutdown=client.shutdown(5.0)))
    shutdown.start()
    flush = threading.Thread(target=lambda: done.update(flush=client.flush(5.0)))
    try:
        assert exporter.entered.wait(5.0), "no last export"
        flush.start()
        deadline = time.monotonic() + 5.0
        while _handed_over(client) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _handed_over(client) == 2, "the flush's collection was not handed over"
    finally:
        exporter.release.set()
        shutdown.join(10.0)
        if flush.is_alive() or flush.ident is not None:
            flush.join(10.0)
    assert done == {"shutdown": True, "flush": True}
    assert exporter.exported == [True, True]
    assert _metric_counts(client) == (6, 0, 0)


def test_a_collection_after_the_exporters_shutdown_is_not_counted_again(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection made once the reader has shut its exporter down, before the shutdown's
    deadline closes it (a flush that came too late), is the same series the last export
    sent: not exported, and not counted as dropped."""
    exporter = ShutDownCutsOffExporter()
    exporter.entered.set()  # (no export waits)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    reader = client._handler._metric_reader
    reader.shutdown(timeout_millis=5000)  # (what MeterProvider.shutdown does)
    assert exporter.is_shut_down.is_set()
    reader.collect()
    assert exporter.exported == [True]
    assert _metric_counts(client) == (3, 0, 0)
    assert client.shutdown(5.0) is True


# ----- the real OTLP exporters -------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_real_exporter_to_a_silent_collector_counts_the_points(
        clients: Callable[..., TelemetryFlowClient], protocol: str) -> None:
    """The SDK's OTLP exporter against a socket that accepts and never answers (export
    timeout 10 s, shutdown timeout 1 s): shutdown returns in time and counts the points."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = clients(_config(endpoint, protocol=Protocol(protocol), timeout=10))
        _record_three_points(client)
        started = time.monotonic()
        assert client.shutdown(1.0) is False
        assert time.monotonic() - started < 1.0 + _MARGIN
    assert _metric_counts(client) == (0, 3, 0)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_collector_answering_unavailable_until_the_deadline_counts_the_points(
        clients: Callable[..., TelemetryFlowClient], otlp_receiver: OTLPReceiver,
        protocol: str) -> None:
    """UNAVAILABLE (HTTP 503) to every export of spans and metrics: the exporters retry
    past the shutdown timeout, and the metric points are counted as dropped with the span
    when it ends."""
    otlp_receiver.set_failure("UNAVAILABLE")
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else \
        otlp_receiver.http_endpoint
    client = clients(_config(endpoint, protocol=Protocol(protocol), timeout=10,
                             enable_traces=True))
    with client.span("work"):
        _record_three_points(client)
    started = time.monotonic()
    assert client.shutdown(1.0) is False
    assert time.monotonic() - started < 1.0 + _MARGIN
    assert otlp_receiver.rejected()
    assert client.get_status()["spans_dropped"] == 1
    assert _metric_counts(client) == (0, 3, 0)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_collector_that_answers_gets_the_points_and_none_are_dropped(
        clients: Callable[..., TelemetryFlowClient], otlp_receiver: OTLPReceiver,
        protocol: str) -> None:
    """(Unchanged.) With the collector answering, shutdown is True and every point is
    counted as exported, none as dropped."""
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else \
        otlp_receiver.http_endpoint
    client = clients(_config(endpoint, protocol=Protocol(protocol), timeout=10))
    _record_three_points(client)
    assert client.shutdown(5.0) is True
    assert _metric_counts(client) == (3, 0, 0)
    assert sum(p.value for p in otlp_receiver.wait_for_metric("requests")) == 2


# ----- fork ----------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_counts_only_its_own_points(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """The counts are the process's (as the span and log queues'): a forked child does not
    report the points its parent exported, nor its parent's export under way."""
    exporter = AnsweringExporter(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    assert client.flush(2.0)
    assert _metric_counts(client) == (3, 0, 0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        try:
            os.write(write_end, json.dumps(_metric_counts(client)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "null")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == [0, 0, 0]


# ----- points recorded after the exit's last collection --------------------------------------

class RecordingExporter:
    """Answers each export with the next of ``results`` (the last one again after that),
    and keeps every ``jobs``/``depth`` point it was sent as (name, attributes, value)."""

    def __init__(self, *results: Any, hold_first: bool = False) -> None:
        self.results = list(results)
        self.sent: list[list[tuple[str, dict[str, Any], Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append([(m.name, dict(p.attributes or {}), p.value)
                          for rm in batch.resource_metrics for sm in rm.scope_metrics
                          for m in sm.metrics for p in m.data.data_points])
        if len(self.sent) == 1:
            self.entered.set()
            self.release.wait(10.0)
        return self.results[min(len(self.sent), len(self.results)) - 1]

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.release.set()


def _record_late(client: TelemetryFlowClient) -> None:
    """One more on a series the exit's collection had, and a new series."""
    client.increment_counter("requests", attributes={"route": "/a"})
    client.increment_counter("requests", attributes={"route": "/late"})


def _shutdown_recording_late(client: TelemetryFlowClient, exporter: RecordingExporter,
                             timeout: float) -> bool:
    """Shut down, recording late points while the exit's first export waits (the exit's
    last collection is made by then), then let it answer."""
    result: list[bool] = []
    shutdown = threading.Thread(target=lambda: result.append(client.shutdown(timeout)))
    shutdown.start()
    try:
        assert exporter.entered.wait(5.0), "the exit never exported"
        _record_late(client)
    finally:
        exporter.release.set()
        shutdown.join(timeout + 5.0)
    return result[0]


def test_points_recorded_after_the_exits_collection_are_exported_at_its_end(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Points recorded while the exit's export runs are collected again at its end and
    only they are exported, as a second export (they were lost, counted nowhere)."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS, hold_first=True)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    assert _shutdown_recording_late(client, exporter, 2.0) is True
    assert len(exporter.sent) == 2
    assert sorted((a["route"], v) for _, a, v in exporter.sent[1]) == [("/a", 2), ("/late", 1)]
    assert _metric_counts(client) == (5, 0, 0)


def test_nothing_recorded_late_sends_nothing_more(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing recorded after the exit's collection: one export, as before; an observable
    instrument whose reading changed at each collection is not a point recorded late."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    readings = iter(range(1000))
    client.meter.create_observable_gauge(
        "queue.size", callbacks=[lambda options: [Observation(next(readings))]])
    _record_three_points(client)
    assert client.shutdown(2.0) is True
    assert len(exporter.sent) == 1
    assert _metric_counts(client) == (4, 0, 0)


def test_late_points_under_delta_temporality_are_exported(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Delta temporality: a late point is an increment since the exit's collection (its
    value says nothing of whether it is new), and is sent as one."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS, hold_first=True)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config(metrics_temporality="delta"))
    _record_three_points(client)
    assert _shutdown_recording_late(client, exporter, 2.0) is True
    assert sorted((a["route"], v) for _, a, v in exporter.sent[1]) == [("/a", 1), ("/late", 1)]
    assert _metric_counts(client) == (5, 0, 0)


def test_late_points_whose_export_fails_are_counted(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """The exit's collection exported, the late points' export refused: they are dropped
    and counted, and the shutdown says it failed."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS, MetricExportResult.FAILURE,
                                 hold_first=True)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    assert _shutdown_recording_late(client, exporter, 2.0) is False
    assert _metric_counts(client) == (3, 2, 0)


def test_late_points_are_counted_once_with_a_collector_that_never_answers(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch,
        silent: Callable[[Any], SilentExporter]) -> None:
    """The exit's export never answers: at the deadline its 3 points are dropped, and of
    the late ones the new series (the other is one of those 3 series: one loss), within
    the timeout."""
    exporter = silent(MetricExportResult.SUCCESS)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    result: list[bool] = []
    started = time.monotonic()
    shutdown = threading.Thread(target=lambda: result.append(client.shutdown(0.5)))
    shutdown.start()
    assert exporter.entered.wait(5.0)
    _record_late(client)
    shutdown.join(5.0)
    assert time.monotonic() - started < 0.5 + _MARGIN
    assert result == [False]
    assert exporter.calls == 1
    assert _metric_counts(client) == (0, 4, 0)


def test_a_final_flush_exports_what_was_recorded_while_it_ran(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """The last flush before os._exit (a final export) collects again at its end: points
    recorded while its export ran are exported too. An ordinary flush leaves them to the
    next collection."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS, hold_first=True)
    _metric_exporter(monkeypatch, exporter)
    client = clients(_config())
    _record_three_points(client)
    result: list[bool] = []

    def final_flush() -> None:
        with final_exports():
            result.append(client.flush(2.0))

    flush = threading.Thread(target=final_flush)
    flush.start()
    try:
        assert exporter.entered.wait(5.0)
        _record_late(client)
    finally:
        exporter.release.set()
        flush.join(7.0)
    assert result == [True]
    assert len(exporter.sent) == 2
    assert _metric_counts(client) == (5, 0, 0)
    client.increment_counter("requests", attributes={"route": "/b"})
    assert client.flush(2.0) is True
    assert len(exporter.sent) == 3  # (the whole collection: no second one)


# ----- exporters given ------------------------------------------------------------------------

def test_a_metric_exporter_given_is_counted_in_the_status() -> None:
    """``ExporterOverrides(metric_exporter=...)`` exports through our reader: its points are
    counted in get_status() (a reader given instead counted none)."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS, MetricExportResult.FAILURE)
    client = TelemetryFlowClient(_config(), set_global=False,
                                 exporters=ExporterOverrides(metric_exporter=exporter))
    client.initialize()
    try:
        _record_three_points(client)
        assert client.flush(2.0) is True
        assert _metric_counts(client) == (3, 0, 0)
        assert client.flush(2.0) is False
        assert _metric_counts(client) == (3, 3, 0)
        assert client.get_health()["dropped"] == 3
    finally:
        client.shutdown(0.5)


def test_a_counting_metric_reader_given_is_counted_in_the_status() -> None:
    """A ``CountingMetricReader`` given as the reader keeps its counts in get_status()."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS)
    reader = CountingMetricReader(LazyMetricExporter(LazyExporter(lambda: exporter, "metrics")),
                                  export_interval_millis=60_000, export_timeout_millis=5_000)
    client = TelemetryFlowClient(_config(), set_global=False,
                                 exporters=ExporterOverrides(metric_reader=reader))
    client.initialize()
    _record_three_points(client)
    assert client.shutdown(2.0) is True
    assert _metric_counts(client) == (3, 0, 0)
