"""Console exporters: the default sink when no OTLP endpoint is configured.

A first-time user runs ``telemetryflow-run python app.py`` with no backend and
must still see that instrumentation works, so every signal is written to
stderr (never stdout, which belongs to the program) as short, greppable lines
prefixed with ``telemetryflow:``.  ``fmt="json"`` writes one OTLP/JSON object
per export batch instead, for piping into tools.

Text lines::

    telemetryflow: span [4bf92f35] GET /users/{id} server 200 12.3ms  service=shop id=00f067aa
    telemetryflow: span [4bf92f35] SELECT client 1.0ms  service=shop id=b7ad6b71 parent=00f067aa
    telemetryflow: span [4bf92f35] checkout 500 ERROR ValueError 3.2ms  service=shop id=53995c3f
    telemetryflow: log [4bf92f35] INFO  shop.api: user created
    telemetryflow: log WARN  shop.api: cache cold
    telemetryflow: metric orders counter sum=42
    telemetryflow: metric queue.depth gauge last=3.5 series=2
    telemetryflow: metric http.server.duration histogram count=10 sum=1.23 min=0.01 max=0.5 unit=s
    telemetryflow: metric process.*,cpython.* 12 instruments

Only the standard library and the OpenTelemetry SDK are imported here: the
protobuf encoders are imported on the first JSON export so the text default
keeps interpreter start-up cheap.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import threading
from base64 import b64decode
from collections.abc import Sequence
from typing import IO, Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    Gauge,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

__all__ = ["ConsoleLogExporter", "ConsoleMetricExporter", "ConsoleSpanExporter"]

_PREFIX = "telemetryflow: "
_FORMATS = ("text", "json")

# One lock for all exporters: spans (batch thread), logs and metrics (reader
# thread) usually share sys.stderr, and a line must never be split by another.
_WRITE_LOCK = threading.Lock()
# If the program routes sys.stderr into logging and logging into our log
# exporter, our own write would come back to us on the same thread; that nested
# write is dropped instead of deadlocking on the lock or looping.
_WRITING = threading.local()

_ERROR = StatusCode.ERROR
_KIND_LABELS = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
# Old semantic conventions are still the default of many instrumentations.
_HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
# Runtime instrumentation emits dozens of these each interval; listing them
# would bury the application's own metrics.
_RUNTIME_PREFIXES = ("process.", "cpython.")
_ENCODERS = "opentelemetry.exporter.otlp.proto.common"
_ID_KEYS = frozenset(("traceId", "spanId", "parentSpanId"))
# Severity ranges of the log data model, used when a record has no text.
_SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


class _ConsoleWriter:
    """Shared stream handling so the three exporters fail and count the same way."""

    def __init__(self, stream: IO[str] | None, fmt: str, service_name: str | None) -> None:
        fmt = (fmt or "text").lower()
        if fmt not in _FORMATS:
            raise ValueError(f"console format must be one of {_FORMATS}, got {fmt!r}")
        self._stream = stream
        self._json = fmt == "json"
        self._service_name = service_name
        self._shut_down = False
        self._json_broken = False
        self._service_cache: tuple[Resource | None, str | None] = (None, None)
        self.exported = 0

    def _write(self, lines: Sequence[str], items: int) -> bool:
        """Write whole lines at once; a closed or broken stream only loses this batch."""
        if not lines:
            return True
        if getattr(_WRITING, "active", False):
            return False
        # Looked up now, not at construction: programs and test runners swap sys.stderr.
        stream = self._stream if self._stream is not None else sys.stderr
        if stream is None:  # pythonw and some daemons run without stderr
            return False
        text = "\n".join(lines) + "\n"
        with _WRITE_LOCK:
            _WRITING.active = True
            try:
                stream.write(text)
                flush = getattr(stream, "flush", None)
                if flush is not None:
                    flush()
            except Exception:
                return False
            finally:
                _WRITING.active = False
            self.exported += items
        return True

    def _write_json(self, module: str, encoder: str, payload: Any, items: int) -> bool:
        """Encode one batch as a single OTLP/JSON line, warning once if protobuf is missing.

        The encoder is imported here, at the first JSON export, because it pulls
        in protobuf, which the text default must not pay for at start-up.
        """
        if not items:  # an empty request would print a bare "{}"
            return True
        if self._json_broken:
            return False
        try:
            encode = getattr(importlib.import_module(f"{_ENCODERS}.{module}"), encoder)
            line = _otlp_json(encode(payload))
        except ImportError as exc:
            self._json_broken = True
            self._write([f"{_PREFIX}json console output unavailable ({exc})"], 0)
            return False
        except Exception:
            return False
        return self._write([line], items)

    def _service_of(self, resource: Resource | None) -> str | None:
        if self._service_name:
            return self._service_name
        # A process has one resource in practice: remember its answer (one tuple,
        # so a concurrent export never pairs a resource with another's name).
        cached_resource, service = self._service_cache
        if resource is not cached_resource:
            name = resource.attributes.get("service.name") if resource is not None else None
            service = str(name) if name else None
            self._service_cache = (resource, service)
        return service


class ConsoleSpanExporter(_ConsoleWriter, SpanExporter):
    """Prints one line per finished span so a local run shows its traces without a backend."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        fmt: str = "text",
        service_name: str | None = None,
    ) -> None:
        super().__init__(stream, fmt, service_name)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        if self._json:
            ok = self._write_json("trace_encoder", "encode_spans", spans, len(spans))
        else:
            lines = []
            for span in spans:
                try:
                    lines.append(self._format(span))
                except Exception:  # one odd span must not cost the batch
                    continue
            ok = self._write(lines, len(lines))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def _format(self, span: ReadableSpan) -> str:
        ctx = span.context
        parts = [f"{_PREFIX}span [{ctx.trace_id >> 96:08x}] {_one_line(span.name)}"]
        kind = _KIND_LABELS.get(span.kind)
        if kind:
            parts.append(kind)
        attributes = span.attributes or {}
        code = None
        for key in _HTTP_STATUS_KEYS:
            code = attributes.get(key)
            if code is not None:
                parts.append(str(code))
                break
        if span.status.status_code is _ERROR:
            parts.append("ERROR")
            error_type = _error_type(span)
            if error_type and error_type != str(code):
                parts.append(_one_line(error_type))
        if span.start_time is not None and span.end_time is not None:
            parts.append(f"{(span.end_time - span.start_time) / 1e6:.1f}ms")
        details = []
        service = self._service_of(span.resource)
        if service:
            details.append(f"service={service}")
        details.append(f"id={ctx.span_id >> 32:08x}")
        if span.parent is not None:
            details.append(f"parent={span.parent.span_id >> 32:08x}")
        return " ".join(parts) + "  " + " ".join(details)

    def shutdown(self) -> None:
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConsoleLogExporter(_ConsoleWriter, LogRecordExporter):
    """Prints one line per log record, tagged with its trace so it can be matched to spans."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        fmt: str = "text",
        service_name: str | None = None,
    ) -> None:
        super().__init__(stream, fmt, service_name)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._shut_down:
            return LogRecordExportResult.FAILURE
        if self._json:
            ok = self._write_json("_log_encoder", "encode_logs", batch, len(batch))
        else:
            lines = []
            for readable in batch:
                try:
                    lines.append(_format_log(readable))
                except Exception:
                    continue
            ok = self._write(lines, len(lines))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._shut_down = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ConsoleMetricExporter(_ConsoleWriter, MetricExporter):
    """Prints a per-instrument summary at every reader export (each interval and at shutdown).

    Temporality is cumulative so each summary is a running total and the
    final one, printed at shutdown, describes the whole run.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        fmt: str = "text",
        service_name: str | None = None,
    ) -> None:
        _ConsoleWriter.__init__(self, stream, fmt, service_name)
        # The sync Gauge is left out: its class is private in the SDK and a
        # last-value aggregation has no temporality to choose anyway.
        MetricExporter.__init__(
            self,
            preferred_temporality={
                instrument: AggregationTemporality.CUMULATIVE
                for instrument in (
                    Counter,
                    UpDownCounter,
                    Histogram,
                    ObservableCounter,
                    ObservableUpDownCounter,
                    ObservableGauge,
                )
            },
        )

    def export(
        self,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        if self._shut_down:
            return MetricExportResult.FAILURE
        try:
            metrics = [
                metric
                for resource_metrics in metrics_data.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics
                for metric in scope_metrics.metrics
            ]
            points = sum(len(metric.data.data_points) for metric in metrics)
        except Exception:
            return MetricExportResult.FAILURE
        if self._json:
            ok = self._write_json("metrics_encoder", "encode_metrics", metrics_data, points)
        else:
            ok = self._write(_format_metrics(metrics), points)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._shut_down = True

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True


def _one_line(text: str) -> str:
    """Keep one item per line so grep and line-oriented log collectors stay accurate."""
    if "\n" in text or "\r" in text:
        return text.replace("\r", "\\r").replace("\n", "\\n")
    return text


def _error_type(span: ReadableSpan) -> str | None:
    for event in span.events:
        if event.name == "exception" and event.attributes:
            exc_type = event.attributes.get("exception.type")
            if exc_type:
                return str(exc_type)
    error_type = (span.attributes or {}).get("error.type")
    return str(error_type) if error_type else None


def _format_log(readable: ReadableLogRecord) -> str:
    record = readable.log_record
    parts = [f"{_PREFIX}log"]
    if record.trace_id:
        parts.append(f"[{record.trace_id >> 96:08x}]")
    parts.append(_severity(record.severity_text, record.severity_number).ljust(5))
    body = record.body
    if body is None:
        body = record.event_name or ""
    scope = readable.instrumentation_scope
    text = _one_line(body if isinstance(body, str) else str(body))
    line = " ".join(parts) + (f" {scope.name}: {text}" if scope and scope.name else f" {text}")
    exc_type = (record.attributes or {}).get("exception.type")
    if exc_type:
        line += f"  exception={exc_type}"
    return line


def _severity(text: str | None, number: Any) -> str:
    if text:
        return text
    value = getattr(number, "value", 0) or 0
    if 1 <= value <= 24:
        return _SEVERITY_NAMES[(value - 1) // 4]
    return "-"


def _format_metrics(metrics: Sequence[Any]) -> list[str]:
    lines = []
    runtime_families: dict[str, int] = {}
    for metric in metrics:
        family = next((p for p in _RUNTIME_PREFIXES if metric.name.startswith(p)), None)
        if family is not None:
            runtime_families[family] = runtime_families.get(family, 0) + 1
            continue
        try:
            summary = _summarise(metric.data)
        except Exception:
            continue
        if summary is None:
            continue
        kind, text = summary
        line = f"{_PREFIX}metric {metric.name} {kind} {text}"
        if metric.unit and metric.unit != "1":
            line += f" unit={metric.unit}"
        series = len(metric.data.data_points)
        if series > 1:
            line += f" series={series}"
        lines.append(line)
    if runtime_families:
        names = ",".join(f"{family}*" for family in runtime_families)
        lines.append(f"{_PREFIX}metric {names} {sum(runtime_families.values())} instruments")
    return lines


def _summarise(data: Any) -> tuple[str, str] | None:
    """Fold every attribute set into one figure: the line answers 'is it moving?', not 'where?'."""
    points = data.data_points
    if not points:
        return None
    if isinstance(data, Sum):
        kind = "counter" if data.is_monotonic else "updowncounter"
        return kind, f"sum={_num(sum(point.value for point in points))}"
    if isinstance(data, Gauge):
        latest = max(points, key=lambda point: point.time_unix_nano)
        return "gauge", f"last={_num(latest.value)}"
    if isinstance(data, (HistogramData, ExponentialHistogram)):
        count = sum(point.count for point in points)
        text = f"count={count} sum={_num(sum(point.sum for point in points))}"
        lows = [p.min for p in points if p.count and _finite(p.min)]
        highs = [p.max for p in points if p.count and _finite(p.max)]
        if lows and highs:
            text += f" min={_num(min(lows))} max={_num(max(highs))}"
        return "histogram", text
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _num(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _otlp_json(message: Any) -> str:
    """Serialise as OTLP/JSON on one line: proto3 JSON plus hex ids and integer enums."""
    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(data)
    return json.dumps(data, separators=(",", ":"))


def _hex_ids(node: Any) -> None:
    """Re-encode trace/span ids as hex: OTLP/JSON requires it where proto3 JSON gives base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                node[key] = b64decode(value).hex()
            elif isinstance(value, (dict, list)):
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _hex_ids(item)
