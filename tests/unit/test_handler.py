"""``TelemetryCommandHandler`` through the client: counts of what was really exported or
dropped, bounded flush/shutdown, the bounded active-span table and the instrument cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import metrics as metrics_api
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import export as metrics_export
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.domain.signals import Protocol
from telemetryflow_bootstrap.infrastructure import handler as handler_module
from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides, build_sampler
from tests.otlp_receiver import free_port

_MARGIN = 0.5  # seconds a bounded call may overrun its timeout on a loaded machine


class FailingSpanExporter:
    """Answers every export with FAILURE (a backend rejecting everything)."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.calls += 1
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class RaisingLogExporter:
    """Raises from every export (a broken exporter)."""

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        raise ConnectionError("backend gone")

    def shutdown(self) -> None:
        pass


class BlockingExporter:
    """Blocks in export until released (or shut down): a backend that never answers."""

    def __init__(self, result: Any = SpanExportResult.SUCCESS) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self._result = result

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.release.wait(10.0)
        return self._result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.release.set()


class RecordingExporter:
    """Records each batch and whether instrumentation was suppressed while exporting it."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.batches: list[Any] = []
        self.suppressed: list[Any] = []
        self.exported = threading.Event()

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.batches.append(batch)
        self.suppressed.append(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))
        self.exported.set()
        return self.result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def clients() -> Iterator[Callable[..., TelemetryFlowClient]]:
    """Builds private clients (set_global=False) from a config and overrides; shuts them down."""
    made: list[TelemetryFlowClient] = []

    def make(config: TelemetryConfig | None = None, overrides: ExporterOverrides | None = None,
             ) -> TelemetryFlowClient:
        config = config or _config()
        overrides = overrides or ExporterOverrides(
            InMemorySpanExporter(), InMemoryMetricReader(), InMemoryLogRecordExporter())
        client = TelemetryFlowClient(config, exporters=overrides, set_global=False)
        made.append(client.initialize())
        return client

    yield make
    for client in made:
        client.shutdown(2.0)


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    """Rate-limited warnings start unsaid in every test."""
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _config(**batch: int) -> TelemetryConfig:
    settings = {"timeout_ms": 20, **batch}
    return TelemetryFlowBuilder().with_service("handler-svc").with_batch_settings(
        **settings).build_config()


def _otlp_config(**changes: Any) -> TelemetryConfig:
    """A config whose exporters come from the (patched) OTLP factory."""
    return _config().replace(endpoint="127.0.0.1:4317", insecure=True, **changes)


def _spans(client: TelemetryFlowClient, count: int, name: str = "op") -> None:
    for _ in range(count):
        with client.span(name):
            pass


# ----- get_status(): items, not API calls ----------------------------------------------------

def test_status_counts_exported_items(clients: Callable[..., TelemetryFlowClient]) -> None:
    """spans_exported/logs_exported count items the exporter accepted."""
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    client = clients(overrides=ExporterOverrides(spans, InMemoryMetricReader(), logs))
    _spans(client, 3)
    client.log_info("a")
    client.log_info("b")
    assert client.flush(2.0)
    status = client.get_status()
    assert (status["spans_exported"], status["spans_dropped"], status["spans_queued"]) == (3, 0, 0)
    assert (status["logs_exported"], status["logs_dropped"]) == (2, 0)
    assert len(spans.get_finished_spans()) == 3 and len(logs.get_finished_logs()) == 2


def test_status_does_not_count_unsampled_span_calls(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """Span API calls that produce no exported span (sampled out) are not counted as exported."""
    spans = InMemorySpanExporter()
    config = _config().replace(sampler="always_off")
    client = clients(config, ExporterOverrides(spans, InMemoryMetricReader(),
                                               InMemoryLogRecordExporter()))
    _spans(client, 5)
    client.end_span(client.start_span("manual"))
    assert client.flush(2.0)
    status = client.get_status()
    assert (status["spans_exported"], status["spans_dropped"]) == (0, 0)
    assert spans.get_finished_spans() == ()


def test_failing_exporter_counts_drops_and_flush_reports_false(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """Items a failing (or raising) exporter did not take are counted as dropped; flush is False."""
    exporter = FailingSpanExporter()
    client = clients(overrides=ExporterOverrides(exporter, InMemoryMetricReader(),
                                                 RaisingLogExporter()))
    _spans(client, 4)
    client.log_error("lost")
    assert client.flush(2.0) is False
    status = client.get_status()
    assert (status["spans_exported"], status["spans_dropped"]) == (0, 4)
    assert (status["logs_exported"], status["logs_dropped"]) == (0, 1)
    assert exporter.calls >= 1
    assert client.get_health()["dropped"] == 5


def test_full_queue_counts_drops_and_warns_once(
        clients: Callable[..., TelemetryFlowClient], capsys: pytest.CaptureFixture[str]) -> None:
    """With max_queue_size=2 the extra spans are dropped and counted, with one warning line."""
    spans = InMemorySpanExporter()
    config = _config(timeout_ms=10_000, max_queue_size=2)
    client = clients(config, ExporterOverrides(spans, InMemoryMetricReader(),
                                               InMemoryLogRecordExporter()))
    _spans(client, 7)
    status = client.get_status()
    assert (status["spans_queued"], status["spans_dropped"]) == (2, 5)
    assert client.flush(2.0)
    assert client.get_status()["spans_exported"] == 2
    assert len(spans.get_finished_spans()) == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "queue full" in line]
    assert len(warnings) == 1
    assert "TELEMETRYFLOW_MAX_QUEUE_SIZE=2" in warnings[0]


def test_spans_ended_after_shutdown_are_counted_as_dropped(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """A span ended by a tracer after shutdown is dropped and counted, not silently lost."""
    client = clients()
    tracer = client.tracer
    assert client.shutdown(2.0)
    tracer.start_span("late").end()
    assert client.get_status()["spans_dropped"] == 1


# ----- flush() ----------------------------------------------------------------------------

def test_flush_true_when_everything_was_exported(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """flush() exports what was queued and reports True; with nothing queued it is True too."""
    spans = InMemorySpanExporter()
    client = clients(_config(timeout_ms=10_000), ExporterOverrides(
        spans, InMemoryMetricReader(), InMemoryLogRecordExporter()))
    assert client.flush(1.0) is True
    _spans(client, 2)
    assert spans.get_finished_spans() == ()  # batch timeout far away: still queued
    assert client.flush(2.0) is True
    assert len(spans.get_finished_spans()) == 2


def test_flush_false_and_bounded_when_the_exporter_blocks(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """flush(timeout) with an exporter that never answers returns False within ~timeout."""
    exporter = BlockingExporter()
    client = clients(overrides=ExporterOverrides(exporter, InMemoryMetricReader(),
                                                 InMemoryLogRecordExporter()))
    _spans(client, 1)
    started = time.monotonic()
    assert client.flush(0.3) is False
    assert time.monotonic() - started < 0.3 + _MARGIN
    exporter.release.set()


def test_flush_is_bounded_when_the_metric_exporter_blocks(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """flush(timeout) returns False within ~timeout while the metric export hangs (the SDK
    exports metrics on the caller's thread and the OTLP exporters ignore its timeout)."""
    exporter = BlockingExporter(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_metric_exporter", lambda self: exporter)
    client = clients(_otlp_config(enable_traces=False, enable_logs=False),
                     ExporterOverrides())
    client.increment_counter("requests")
    started = time.monotonic()
    try:
        assert client.flush(0.3) is False
        assert time.monotonic() - started < 0.3 + _MARGIN
        assert exporter.entered.is_set()
    finally:
        exporter.release.set()


def test_metric_points_exported_and_dropped_are_counted(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Metric points the OTLP exporter accepted or refused show in get_status()."""
    exporter = RecordingExporter(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_metric_exporter", lambda self: exporter)
    client = clients(_otlp_config(enable_traces=False, enable_logs=False),
                     ExporterOverrides())
    client.increment_counter("requests", attributes={"route": "/a"})
    client.increment_counter("requests", attributes={"route": "/b"})
    client.record_gauge("depth", 3)
    assert client.flush(2.0) is True
    assert client.get_status()["metric_points_exported"] == 3
    exporter.result = MetricExportResult.FAILURE
    assert client.flush(2.0) is False
    status = client.get_status()
    assert (status["metric_points_exported"], status["metric_points_dropped"]) == (3, 3)


def test_exports_run_with_instrumentation_suppressed(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Span, log and periodic metric exports run with instrumentation suppressed, so the
    exporter's own HTTP traffic is never traced."""
    spans = RecordingExporter(SpanExportResult.SUCCESS)
    logs = RecordingExporter(LogRecordExportResult.SUCCESS)
    metrics = RecordingExporter(MetricExportResult.SUCCESS)
    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", lambda self: spans)
    monkeypatch.setattr(OTLPExporterFactory, "create_log_exporter", lambda self: logs)
    monkeypatch.setattr(OTLPExporterFactory, "create_metric_exporter", lambda self: metrics)
    client = clients(_otlp_config(metric_export_interval_ms=50), ExporterOverrides())
    client.increment_counter("ticks")
    _spans(client, 1)
    client.log_info("hello")
    assert metrics.exported.wait(5.0), "the periodic reader never exported"
    assert client.flush(2.0)
    for exporter in (spans, logs, metrics):
        assert exporter.suppressed and all(flag is True for flag in exporter.suppressed)


# ----- shutdown() -------------------------------------------------------------------------

def test_shutdown_reports_false_when_the_final_export_fails(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """shutdown() is False when what it had to export was refused (it is not 'all exported')."""
    client = clients(_config(timeout_ms=10_000), ExporterOverrides(
        FailingSpanExporter(), InMemoryMetricReader(), InMemoryLogRecordExporter()))
    _spans(client, 3)
    assert client.get_status()["spans_queued"] == 3
    assert client.shutdown(2.0) is False
    assert client.get_status()["spans_dropped"] == 3


def test_shutdown_reports_false_when_the_final_metric_export_fails(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """shutdown() is False when the last metric export is refused."""
    exporter = RecordingExporter(MetricExportResult.FAILURE)
    monkeypatch.setattr(OTLPExporterFactory, "create_metric_exporter", lambda self: exporter)
    client = clients(_otlp_config(enable_traces=False, enable_logs=False),
                     ExporterOverrides())
    client.increment_counter("requests")
    assert client.shutdown(2.0) is False
    assert client.get_status()["metric_points_dropped"] == 1


def test_shutdown_true_when_everything_was_exported(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """shutdown() exports what is queued and reports True; a second shutdown is a no-op."""
    spans = InMemorySpanExporter()
    client = clients(_config(timeout_ms=10_000), ExporterOverrides(
        spans, InMemoryMetricReader(), InMemoryLogRecordExporter()))
    _spans(client, 3)
    assert client.shutdown(2.0) is True
    assert len(spans.get_finished_spans()) == 3
    assert client.shutdown(2.0) is True


def test_shutdown_is_bounded_when_the_exporter_blocks(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """shutdown(timeout) with a hung exporter returns False within ~timeout; what was still
    queued, and the batch stuck in the export, are counted as dropped."""
    exporter = BlockingExporter()
    client = clients(_config(max_size=1), ExporterOverrides(
        exporter, InMemoryMetricReader(), InMemoryLogRecordExporter()))
    _spans(client, 1)
    assert exporter.entered.wait(2.0)
    _spans(client, 3)
    started = time.monotonic()
    assert client.shutdown(0.3) is False
    assert time.monotonic() - started < 0.3 + _MARGIN
    # (the exporter's shutdown releases the stuck export: that span counts as dropped
    # unless its export finished before the shutdown looked)
    assert client.get_status()["spans_dropped"] in (3, 4)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_shutdown_with_the_backend_refusing_is_quick_and_says_why(
        clients: Callable[..., TelemetryFlowClient], protocol: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The real OTLP exporters against a port nobody listens on: shutdown gives up after one
    attempt per backend instead of retrying for its whole timeout, counts every span, log
    and metric point as dropped, says in its status that the backend refused, and leaves
    the saying to the exit warning (no line per failed export)."""
    port = free_port()
    config = _config().replace(endpoint=f"http://127.0.0.1:{port}", insecure=True,
                               protocol=Protocol(protocol), timeout=10)
    client = clients(config, ExporterOverrides())
    _spans(client, 3)
    client.log_info("hello")
    client.increment_counter("requests")
    started = time.monotonic()
    assert client.shutdown(5.0) is False
    assert time.monotonic() - started < 1.0 + _MARGIN  # (it was the whole 5 s)
    status = client.get_status()
    assert (status["spans_dropped"], status["logs_dropped"]) == (3, 1)
    assert status["metric_points_dropped"] >= 1
    assert status["backend_unreachable"].endswith(
        f"127.0.0.1:{port} refused the connection")
    assert "telemetryflow:" not in capsys.readouterr().err


def test_shutdown_ends_spans_still_open(clients: Callable[..., TelemetryFlowClient]) -> None:
    """Spans started but never ended are ended (and marked) at shutdown, so they are exported."""
    spans = InMemorySpanExporter()
    client = clients(overrides=ExporterOverrides(spans, InMemoryMetricReader(),
                                                 InMemoryLogRecordExporter()))
    client.start_span("never-ended")
    assert client.shutdown(2.0)
    [span] = spans.get_finished_spans()
    assert span.name == "never-ended"
    assert span.attributes["telemetryflow.span.ended_at_shutdown"] is True


# ----- active-span table ------------------------------------------------------------------

def test_active_span_table_is_bounded(clients: Callable[..., TelemetryFlowClient],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_ACTIVE_SPANS the oldest started span is evicted and counted; the rest still
    end normally and ending an evicted id is harmless."""
    monkeypatch.setattr(handler_module, "MAX_ACTIVE_SPANS", 3)
    spans = InMemorySpanExporter()
    client = clients(overrides=ExporterOverrides(spans, InMemoryMetricReader(),
                                                 InMemoryLogRecordExporter()))
    ids = [client.start_span(f"s{i}") for i in range(5)]
    status = client.get_status()
    assert (status["active_spans"], status["active_spans_evicted"]) == (3, 2)
    for span_id in ids:
        client.end_span(span_id)
    assert client.flush(2.0)
    assert sorted(s.name for s in spans.get_finished_spans()) == ["s2", "s3", "s4"]
    assert client.get_status()["active_spans"] == 0


# ----- instruments ------------------------------------------------------------------------

class SpyMeter:
    """Wraps a real Meter and records which create_* methods were called."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter
        self.created: list[tuple[str, str]] = []
        self.instruments: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        create = getattr(self._meter, name)
        if not name.startswith("create_"):
            return create

        def spy(instrument_name: str, *args: Any, **kwargs: Any) -> Any:
            self.created.append((name, instrument_name))
            instrument = create(instrument_name, *args, **kwargs)
            self.instruments.append(instrument)
            return instrument

        return spy


def test_instruments_are_created_once_and_cached(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """The second call for the same instrument reuses it instead of creating another."""
    client = clients()
    spy = SpyMeter(client.handler.meter)
    client.handler.meter = spy
    for _ in range(3):
        client.increment_counter("requests")
        client.record_histogram("latency", 1.0)
        client.record_gauge("depth", 1)
    client.increment_counter("requests", unit="{request}")  # another unit: another instrument
    assert spy.created == [("create_counter", "requests"), ("create_histogram", "latency"),
                           ("create_gauge", "depth"), ("create_counter", "requests")]


def test_gauge_is_a_synchronous_gauge(clients: Callable[..., TelemetryFlowClient]) -> None:
    """record_gauge() uses a synchronous Gauge (no callback), exported as gauge data."""
    reader = InMemoryMetricReader()
    client = clients(overrides=ExporterOverrides(
        InMemorySpanExporter(), reader, InMemoryLogRecordExporter()))
    spy = SpyMeter(client.handler.meter)
    client.handler.meter = spy
    client.record_gauge("temperature", 21.5)
    client.record_gauge("temperature", 19.0)
    assert spy.created == [("create_gauge", "temperature")]
    [instrument] = spy.instruments
    assert isinstance(instrument, metrics_api.Synchronous)
    data = reader.get_metrics_data()
    [metric] = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert isinstance(metric.data, metrics_export.Gauge)
    assert [p.value for p in metric.data.data_points] == [19.0]


# ----- construction -----------------------------------------------------------------------

def test_private_handler_installs_no_globals(clients: Callable[..., TelemetryFlowClient]) -> None:
    """With set_global=False nothing is registered globally."""
    client = clients()
    assert client.get_status()["globals_installed"] == {}


@pytest.mark.parametrize(("sampler", "rate", "expected"), [
    ("always_on", 1.0, "AlwaysOnSampler"),
    ("always_off", 1.0, "AlwaysOffSampler"),
    ("parentbased_always_on", 1.0, "ParentBased{root:AlwaysOnSampler"),
    ("parentbased_traceidratio", 1.0, "ParentBased{root:AlwaysOnSampler"),
    ("parentbased_traceidratio", 0.25, "ParentBased{root:TraceIdRatioBased{0.25}"),
    ("traceidratio", 0.5, "TraceIdRatioBased{0.5}"),
])
def test_build_sampler(sampler: str, rate: float, expected: str) -> None:
    """The configured sampler name and ratio map to the matching SDK sampler."""
    config = _config().replace(sampler=sampler, sample_rate=rate)
    assert build_sampler(config).get_description().startswith(expected)


def test_otel_sdk_disabled_does_not_silence_an_initialized_handler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The config decides (TELEMETRYFLOW_ENABLED wins over OTEL_SDK_DISABLED): the SDK's
    providers, which read OTEL_SDK_DISABLED themselves, still record."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    spans = InMemorySpanExporter()
    client = TelemetryFlowClient(
        TelemetryConfig(service_name="svc", batch_timeout_ms=10),
        exporters=handler_module.ExporterOverrides(
            span_exporter=spans, metric_reader=InMemoryMetricReader(),
            log_exporter=InMemoryLogRecordExporter()),
        set_global=False,
    ).initialize()
    try:
        with client.span("recorded"):
            pass
        client.increment_counter("counted")
        assert client.flush(5.0)
        assert [span.name for span in spans.get_finished_spans()] == ["recorded"]
        assert not client.handler.meter_provider._disabled
        assert not client.handler.logger_provider._disabled
    finally:
        client.shutdown(2.0)


# ----- per-signal settings ---------------------------------------------------------------

def test_per_signal_secrets_are_masked_from_initialisation(
        clients: Callable[..., TelemetryFlowClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal's own header value and endpoint password (OTEL_EXPORTER_OTLP_LOGS_*) are
    masked in our messages as soon as the client starts, before any exporter is built."""
    from telemetryflow_bootstrap.domain.config import load_config

    monkeypatch.setattr(_diagnostics, "_secrets", set())
    config, reading = load_config({
        "TELEMETRYFLOW_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:s3cr3t-pw@127.0.0.1:3100/otlp/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-scope-orgid=tenant-4711"})
    assert reading.problems == []
    clients(config)
    assert _diagnostics._redacted("sent tenant-4711 with s3cr3t-pw") == "sent **** with ****"


def test_status_names_each_signals_destination(
        clients: Callable[..., TelemetryFlowClient]) -> None:
    """``get_status()["destinations"]``: where each OTLP signal goes, a signal's own
    endpoint (used as is over HTTP) included; never a password."""
    from telemetryflow_bootstrap.domain.config import load_config

    config, _ = load_config({
        "TELEMETRYFLOW_ENDPOINT": "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://u:pw@127.0.0.1:3100/otlp/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"})
    status = clients(config).get_status()
    assert status["destinations"] == {"traces": "127.0.0.1:4317", "metrics": "127.0.0.1:4317",
                                      "logs": "http://127.0.0.1:3100/otlp/v1/logs"}
