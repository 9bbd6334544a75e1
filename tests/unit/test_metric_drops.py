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
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.domain.signals import Protocol
from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides
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
