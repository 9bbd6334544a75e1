"""Console exporters against the real SDK: what a user without a backend sees on stderr."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetryflow_bootstrap.infrastructure.console import (
    ConsoleLogExporter,
    ConsoleMetricExporter,
    ConsoleSpanExporter,
)

_ROOT = Path(__file__).resolve().parents[2]
_RESOURCE = Resource.create({"service.name": "shop"})
_T0 = 1_700_000_000_000_000_000
_NEVER = 10**9  # export interval (ms) long enough that only force_flush/shutdown export


def _trace8(span) -> str:
    return format(span.get_span_context().trace_id, "032x")[:8]


def _span8(span) -> str:
    return format(span.get_span_context().span_id, "016x")[:8]


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


@pytest.fixture
def traced():
    """A tracer whose spans go synchronously to a ConsoleSpanExporter over a StringIO."""
    stream = io.StringIO()
    exporter = ConsoleSpanExporter(stream=stream)
    provider = TracerProvider(resource=_RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter, stream
    provider.shutdown()


@pytest.fixture
def logged():
    """A logger provider exporting synchronously to a ConsoleLogExporter, and a tracer."""
    stream = io.StringIO()
    exporter = ConsoleLogExporter(stream=stream)
    provider = LoggerProvider(resource=_RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer_provider = TracerProvider(resource=_RESOURCE)
    yield provider, tracer_provider.get_tracer("test"), exporter, stream
    provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
def metered():
    """A meter provider whose reader only exports on force_flush and shutdown."""
    stream = io.StringIO()
    exporter = ConsoleMetricExporter(stream=stream)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=_NEVER)
    provider = MeterProvider(metric_readers=[reader], resource=_RESOURCE)
    yield provider, exporter, stream
    provider.shutdown()


# --- spans -----------------------------------------------------------------------------------


def test_server_span_line_has_trace_name_kind_status_duration_and_service(traced):
    """A server span renders as one exact line: trace prefix, 200, 1-decimal duration."""
    tracer, exporter, stream = traced
    span = tracer.start_span(
        "GET /users/{id}",
        kind=SpanKind.SERVER,
        attributes={"http.response.status_code": 200},
        start_time=_T0,
    )
    span.end(end_time=_T0 + 12_345_678)

    assert _lines(stream) == [
        f"telemetryflow: span [{_trace8(span)}] GET /users/{{id}} server 200 12.3ms"
        f"  service=shop id={_span8(span)}"
    ]
    assert exporter.exported == 1


def test_internal_span_omits_kind_and_status(traced):
    """An INTERNAL span without HTTP status or error shows just name and duration."""
    tracer, _, stream = traced
    span = tracer.start_span("work", start_time=_T0)
    span.end(end_time=_T0 + 500_000)

    assert _lines(stream) == [
        f"telemetryflow: span [{_trace8(span)}] work 0.5ms  service=shop id={_span8(span)}"
    ]


def test_old_semconv_http_status_code_is_used(traced):
    """Instrumentations still on the old conventions report http.status_code, which is shown too."""
    tracer, _, stream = traced
    span = tracer.start_span(
        "GET", kind=SpanKind.CLIENT, attributes={"http.status_code": 404}, start_time=_T0
    )
    span.end(end_time=_T0 + 1_000_000)

    expected = f"telemetryflow: span [{_trace8(span)}] GET client 404 1.0ms  "
    assert _lines(stream)[0].startswith(expected)


def test_child_span_shares_trace_prefix_and_names_its_parent(traced):
    """A child span carries the parent's trace prefix and a parent= reference to its id."""
    tracer, exporter, stream = traced
    with (
        tracer.start_as_current_span("handle") as parent,
        tracer.start_as_current_span("SELECT shop", kind=SpanKind.CLIENT) as child,
    ):
        pass

    child_line, parent_line = _lines(stream)
    assert child_line.startswith(f"telemetryflow: span [{_trace8(parent)}] SELECT shop client ")
    assert child_line.endswith(f"  service=shop id={_span8(child)} parent={_span8(parent)}")
    assert parent_line.endswith(f"  service=shop id={_span8(parent)}")
    assert "parent=" not in parent_line
    assert exporter.exported == 2


def test_error_span_shows_error_and_exception_type(traced):
    """An exception escaping a span yields ERROR plus the exception type from its event."""
    tracer, _, stream = traced
    with pytest.raises(ValueError), tracer.start_as_current_span("checkout") as span:
        raise ValueError("bad cart")

    (line,) = _lines(stream)
    assert re.fullmatch(
        rf"telemetryflow: span \[{_trace8(span)}\] checkout ERROR ValueError \d+\.\dms"
        rf"  service=shop id={_span8(span)}",
        line,
    )


def test_http_error_keeps_status_code_before_error(traced):
    """A failed request shows its HTTP code first, then ERROR and the exception type."""
    tracer, _, stream = traced
    with (
        pytest.raises(ZeroDivisionError),
        tracer.start_as_current_span(
            "POST /pay", kind=SpanKind.SERVER, attributes={"http.response.status_code": 500}
        ),
    ):
        _ = 1 / 0

    assert " POST /pay server 500 ERROR ZeroDivisionError " in _lines(stream)[0]


def test_error_type_attribute_is_used_without_exception_event(traced):
    """Without an exception event the error.type attribute names the failure."""
    tracer, _, stream = traced
    span = tracer.start_span("call", attributes={"error.type": "timeout"}, start_time=_T0)
    span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=_T0 + 2_000_000)

    assert f"[{_trace8(span)}] call ERROR timeout 2.0ms  " in _lines(stream)[0]


def test_explicit_service_name_wins_over_resource():
    """The launcher's configured service name is shown even if the resource says otherwise."""
    stream = io.StringIO()
    provider = TracerProvider(resource=_RESOURCE)
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(stream=stream, service_name="billing"))
    )
    provider.get_tracer("test").start_span("x").end()

    assert "  service=billing id=" in _lines(stream)[0]
    provider.shutdown()


def test_newlines_in_span_names_stay_on_one_line(traced):
    """Control characters are escaped so one span is always exactly one line."""
    tracer, _, stream = traced
    tracer.start_span("multi\nline\rname").end()

    (line,) = _lines(stream)
    assert " multi\\nline\\rname " in line


def test_default_stream_is_stderr_looked_up_at_write_time(monkeypatch, capsys):
    """stream=None follows sys.stderr replacements and never writes to stdout."""
    exporter = ConsoleSpanExporter()
    replacement = io.StringIO()
    monkeypatch.setattr(sys, "stderr", replacement)
    provider = TracerProvider(resource=_RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("test").start_span("late").end()
    provider.shutdown()

    assert _lines(replacement)[0].startswith("telemetryflow: span [")
    assert capsys.readouterr().out == ""


def test_export_after_shutdown_fails_without_writing(traced):
    """A shut-down exporter rejects batches instead of printing them."""
    tracer, exporter, stream = traced
    span = tracer.start_span("x")
    exporter.shutdown()
    span.end()

    assert stream.getvalue() == ""
    assert exporter.export([span]) is SpanExportResult.FAILURE


def test_unknown_format_is_rejected():
    """A typo in the format is a configuration error caught at construction."""
    with pytest.raises(ValueError, match="console format"):
        ConsoleSpanExporter(fmt="yaml")


# --- logs ------------------------------------------------------------------------------------


def test_log_inside_span_has_trace_prefix_of_that_span(logged):
    """A record emitted in a span is tagged with that span's trace prefix."""
    provider, tracer, exporter, stream = logged
    logger = provider.get_logger("shop.api")
    with tracer.start_as_current_span("handle") as span:
        logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO", body="user created")

    assert _lines(stream) == [f"telemetryflow: log [{_trace8(span)}] INFO  shop.api: user created"]
    assert exporter.exported == 1


def test_log_outside_span_has_no_trace_prefix(logged):
    """Without an active span the trace prefix is left out entirely."""
    provider, _, _, stream = logged
    provider.get_logger("shop.api").emit(
        severity_number=SeverityNumber.WARN, severity_text="WARN", body="cache cold"
    )

    assert _lines(stream) == ["telemetryflow: log WARN  shop.api: cache cold"]


def test_severity_falls_back_to_number_and_non_string_body(logged):
    """Records without severity text get a name from the number; structured bodies are shown."""
    provider, _, _, stream = logged
    provider.get_logger("jobs").emit(severity_number=SeverityNumber.ERROR2, body={"job": 7})

    assert _lines(stream) == ["telemetryflow: log ERROR jobs: {'job': 7}"]


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_stdlib_logging_records_show_logger_name_and_exception(logged):
    """Records bridged from logging show the logger name, OTel severity and exception type."""
    provider, _, _, stream = logged
    handler = LoggingHandler(logger_provider=provider)
    log = logging.getLogger("shop.db")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("slow query %d", 3)
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
        log.propagate = True

    assert _lines(stream) == [
        "telemetryflow: log WARN  shop.db: slow query 3",
        "telemetryflow: log ERROR shop.db: failed  exception=ZeroDivisionError",
    ]


# --- metrics ---------------------------------------------------------------------------------


def test_metric_summaries_for_counter_gauge_histogram(metered):
    """Each instrument becomes one summary line aggregated over its attribute sets."""
    provider, exporter, stream = metered
    meter = provider.get_meter("shop")
    orders = meter.create_counter("orders")
    orders.add(40, {"region": "eu"})
    orders.add(2, {"region": "us"})
    meter.create_up_down_counter("inflight").add(5)
    meter.create_up_down_counter("inflight").add(-2)
    depth = meter.create_gauge("queue.depth")
    depth.set(1.0)
    depth.set(3.5)
    latency = meter.create_histogram("latency", unit="s")
    for value in (0.5, 1.5, 3):
        latency.record(value)

    provider.force_flush()

    assert _lines(stream) == [
        "telemetryflow: metric orders counter sum=42 series=2",
        "telemetryflow: metric inflight updowncounter sum=3",
        "telemetryflow: metric queue.depth gauge last=3.5",
        "telemetryflow: metric latency histogram count=3 sum=5 min=0.5 max=3 unit=s",
    ]
    assert exporter.exported == 5  # data points: 2 + 1 + 1 + 1


def test_metric_sums_are_cumulative_across_exports(metered):
    """Every export reprints running totals so the last line at shutdown covers the whole run."""
    provider, _, stream = metered
    counter = provider.get_meter("shop").create_counter("orders")
    counter.add(42)
    provider.force_flush()
    counter.add(1)
    provider.force_flush()

    assert _lines(stream) == [
        "telemetryflow: metric orders counter sum=42",
        "telemetryflow: metric orders counter sum=43",
    ]


def test_observable_gauge_reports_last_value(metered):
    """Asynchronous gauges are summarised like synchronous ones."""
    provider, _, stream = metered
    from opentelemetry.metrics import Observation

    provider.get_meter("shop").create_observable_gauge(
        "temperature", callbacks=[lambda _options: [Observation(21.25)]]
    )
    provider.force_flush()

    assert _lines(stream) == ["telemetryflow: metric temperature gauge last=21.25"]


def test_runtime_metrics_collapse_into_one_line(metered):
    """process.* and cpython.* instruments are counted, not listed, to keep the output short."""
    provider, _, stream = metered
    meter = provider.get_meter("runtime")
    for name in ("process.cpu.time", "process.memory.usage", "cpython.gc.collections"):
        meter.create_counter(name).add(1)
    meter.create_counter("orders").add(1)
    provider.force_flush()

    assert _lines(stream) == [
        "telemetryflow: metric orders counter sum=1",
        "telemetryflow: metric process.*,cpython.* 3 instruments",
    ]


# --- json ------------------------------------------------------------------------------------


def test_json_spans_are_one_otlp_line_per_batch_with_hex_ids():
    """JSON mode writes an OTLP/JSON trace request whose ids are hex, as OTLP/JSON requires."""
    stream = io.StringIO()
    exporter = ConsoleSpanExporter(stream=stream, fmt="json")
    provider = TracerProvider(resource=_RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("test").start_span("GET /", kind=SpanKind.SERVER)
    span.end()
    provider.shutdown()

    (line,) = _lines(stream)
    payload = json.loads(line)
    exported = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert exported["traceId"] == format(span.get_span_context().trace_id, "032x")
    assert exported["spanId"] == format(span.get_span_context().span_id, "016x")
    assert exported["kind"] == 2
    assert exporter.exported == 1
    empty = ConsoleSpanExporter(stream=stream, fmt="json")
    assert empty.export([]) is SpanExportResult.SUCCESS
    assert len(_lines(stream)) == 1  # no bare "{}" line for an empty batch


def test_json_logs_are_one_otlp_line():
    """JSON mode for logs writes an ExportLogsServiceRequest with resourceLogs."""
    stream = io.StringIO()
    provider = LoggerProvider(resource=_RESOURCE)
    provider.add_log_record_processor(
        SimpleLogRecordProcessor(ConsoleLogExporter(stream=stream, fmt="json"))
    )
    provider.get_logger("shop").emit(severity_number=SeverityNumber.INFO, body="hello")
    provider.shutdown()

    (line,) = _lines(stream)
    record = json.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["body"] == {"stringValue": "hello"}


def test_json_metrics_are_one_otlp_line():
    """JSON mode for metrics writes an ExportMetricsServiceRequest with resourceMetrics."""
    stream = io.StringIO()
    exporter = ConsoleMetricExporter(stream=stream, fmt="json")
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=_NEVER)],
        resource=_RESOURCE,
    )
    provider.get_meter("shop").create_counter("orders").add(3)
    provider.force_flush()
    provider.shutdown()

    first = json.loads(_lines(stream)[0])
    metric = first["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert metric["name"] == "orders"
    assert metric["sum"]["dataPoints"][0]["asInt"] == "3"


# --- robustness ------------------------------------------------------------------------------


def test_closed_stream_fails_quietly_for_every_signal():
    """A closed stream turns exports into FAILURE results instead of exceptions."""
    stream = io.StringIO()
    stream.close()

    tracer_provider = TracerProvider(resource=_RESOURCE)
    span = tracer_provider.get_tracer("test").start_span("x")
    span.end()
    span_exporter = ConsoleSpanExporter(stream=stream)
    assert span_exporter.export([span]) is SpanExportResult.FAILURE
    assert ConsoleSpanExporter(stream=stream, fmt="json").export([span]) is SpanExportResult.FAILURE
    assert span_exporter.exported == 0

    log_provider = LoggerProvider(resource=_RESOURCE)
    log_exporter = ConsoleLogExporter(stream=stream)
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    log_provider.get_logger("x").emit(body="lost")
    assert log_exporter.exported == 0

    metric_exporter = ConsoleMetricExporter(stream=stream)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=_NEVER)
    meter_provider = MeterProvider(metric_readers=[reader], resource=_RESOURCE)
    meter_provider.get_meter("x").create_counter("c").add(1)
    meter_provider.force_flush()
    meter_provider.shutdown()
    assert metric_exporter.exported == 0

    assert log_exporter.export([]) is LogRecordExportResult.SUCCESS
    tracer_provider.shutdown()
    log_provider.shutdown()


def test_missing_stderr_fails_quietly(monkeypatch):
    """Processes without stderr (pythonw, some daemons) lose console output, not the program."""
    monkeypatch.setattr(sys, "stderr", None)
    provider = TracerProvider(resource=_RESOURCE)
    span = provider.get_tracer("test").start_span("x")
    span.end()

    assert ConsoleSpanExporter().export([span]) is SpanExportResult.FAILURE
    provider.shutdown()


class _ChoppyStream(io.StringIO):
    """Writes in tiny pieces with thread switches, as a slow pipe would, to expose interleaving."""

    def write(self, text: str) -> int:
        for start in range(0, len(text), 7):
            super().write(text[start : start + 7])
            threading.Event().wait(0)
        return len(text)


def test_concurrent_exports_never_interleave_lines():
    """Spans and metrics written from several threads still come out as whole lines."""
    stream = _ChoppyStream()
    span_exporter = ConsoleSpanExporter(stream=stream)
    metric_exporter = ConsoleMetricExporter(stream=stream)
    provider = TracerProvider(resource=_RESOURCE)
    spans = []
    for index in range(5):
        span = provider.get_tracer("test").start_span(f"span-{index}")
        span.end()
        spans.append(span)
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=_NEVER)
        ],
        resource=_RESOURCE,
    )
    meter_provider.get_meter("m").create_counter("hits").add(1)

    def export_spans() -> None:
        for _ in range(20):
            span_exporter.export(spans)

    def export_metrics() -> None:
        for _ in range(20):
            meter_provider.force_flush()

    threads = [threading.Thread(target=export_spans) for _ in range(3)]
    threads.append(threading.Thread(target=export_metrics))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    meter_provider.shutdown()
    provider.shutdown()

    pattern = re.compile(
        r"telemetryflow: (span \[[0-9a-f]{8}\] span-\d \d+\.\dms  service=shop id=[0-9a-f]{8}"
        r"|metric hits counter sum=1)"
    )
    lines = _lines(stream)
    assert len(lines) == 3 * 20 * 5 + 21
    assert all(pattern.fullmatch(line) for line in lines)
    assert span_exporter.exported == 300


def test_output_feeding_back_into_the_exporter_does_not_deadlock():
    """A stderr that logs its writes back into the exporter drops the echo instead of hanging."""
    exporter = ConsoleLogExporter(stream=None)
    provider = LoggerProvider(resource=_RESOURCE)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("echo")
    sink = io.StringIO()

    class _EchoingStderr:
        def write(self, text: str) -> int:
            sink.write(text)
            logger.emit(body=f"stderr said {text.strip()}")
            return len(text)

        def flush(self) -> None:
            pass

    original = sys.stderr
    sys.stderr = _EchoingStderr()
    try:
        logger.emit(severity_text="INFO", body="hello")
    finally:
        sys.stderr = original
    provider.shutdown()

    assert _lines(sink) == ["telemetryflow: log INFO  echo: hello"]
    assert exporter.exported == 1


def test_text_import_does_not_load_grpc_or_protobuf():
    """Importing the console module keeps protobuf and grpc off the start-up path."""
    code = (
        "import sys, telemetryflow_bootstrap.infrastructure.console\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'grpc'"
        " or m.startswith('google.protobuf'))\n"
        "print(heavy)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_json_without_protobuf_warns_once_and_fails(monkeypatch):
    """If protobuf cannot be imported, JSON mode says so once rather than failing silently."""
    monkeypatch.setitem(sys.modules, "google.protobuf.json_format", None)
    stream = io.StringIO()
    exporter = ConsoleSpanExporter(stream=stream, fmt="json")
    provider = TracerProvider(resource=_RESOURCE)
    span = provider.get_tracer("test").start_span("x")
    span.end()

    assert exporter.export([span]) is SpanExportResult.FAILURE
    assert exporter.export([span]) is SpanExportResult.FAILURE
    (line,) = _lines(stream)
    assert line.startswith("telemetryflow: json console output unavailable")
    assert exporter.exported == 0
    provider.shutdown()
