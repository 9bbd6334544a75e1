"""A batch neither our encoder nor the exporter's can encode loses only the items that cannot
be encoded: our OTLP exporters (gRPC and HTTP, spans and logs) against the real loopback
receiver send every other item, count the ones left out (once, retries or not), say it once
per signal with a reason and no value, and report success (nothing the backend did failed).
A schema URL holding a lone surrogate is sent escaped, its items kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import otlp_exporters, otlp_wire
from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    grpc_log_exporter,
    grpc_span_exporter,
    http_log_exporter,
    http_span_exporter,
)
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder
from tests.otlp_receiver import OTLPReceiver

_TRANSPORTS = ("grpc", "http")
_RESOURCE = Resource({"service.name": "shop"})
_SECRET = "/users/4111-1111-1111-1111"  # (what a bad item holds must never be shown)
_LONE_URL = "https://example.com/schemas/" + b"\xff".decode("utf-8", "surrogateescape")
_ESCAPED_URL = "https://example.com/schemas/\\udcff"


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with nothing counted or said (the counts are per process)."""
    monkeypatch.setattr(otlp_wire, "_counts", dict.fromkeys(otlp_wire._counts, 0))
    monkeypatch.setattr(otlp_wire, "_said", set())
    monkeypatch.setattr(otlp_exporters, "_left_out", {"traces": 0, "logs": 0}, raising=False)
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _warnings() -> list[str]:
    return [message for level, message in _diagnostics.recorded() if level == "warn"]


def _spans(make: Any, schema_url: str | None = None) -> list[ReadableSpan]:
    provider = TracerProvider(resource=_RESOURCE)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t", "1.0", schema_url=schema_url)
    for i in range(3):
        tracer.start_span("before", attributes={"i": i}).end()
    make(tracer)
    for i in range(3):
        tracer.start_span("after", attributes={"i": i}).end()
    return list(memory.get_finished_spans())


def _records(make: Any, schema_url: str | None = None) -> list[ReadableLogRecord]:
    provider = LoggerProvider(resource=_RESOURCE)
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("t", "1.0", schema_url=schema_url)
    for i in range(3):
        logger.emit(body=f"before {i}")
    make(logger)
    for i in range(3):
        logger.emit(body=f"after {i}")
    return list(memory.get_finished_logs())


def _span_exporter(transport: str, receiver: OTLPReceiver) -> Any:
    if transport == "grpc":
        return grpc_span_exporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=10)
    return http_span_exporter(endpoint=f"{receiver.http_endpoint}/v1/traces", timeout=10)


def _log_exporter(transport: str, receiver: OTLPReceiver) -> Any:
    if transport == "grpc":
        return grpc_log_exporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=10)
    return http_log_exporter(endpoint=f"{receiver.http_endpoint}/v1/logs", timeout=10)


def _export(exporter: Any, batch: list[Any]) -> Any:
    try:
        return exporter.export(batch)
    finally:
        exporter.shutdown()


class _RaisingAttributes(dict):  # type: ignore[type-arg]
    """An attribute mapping that is not empty but raises when iterated (a hand-made span)."""

    def items(self) -> Any:
        raise RuntimeError("attributes gone")

    def __iter__(self) -> Any:
        raise RuntimeError("attributes gone")


def _odd_spans(tracer: Any) -> None:
    """A float start time (``time.time()``), a kind given as text, a float event timestamp,
    a name that is an object (whose text must not be shown)."""
    tracer.start_span("seconds-start", start_time=time.time()).end()
    tracer.start_span("string-kind", kind="server").end()
    span = tracer.start_span("seconds-event")
    span.add_event("retry", timestamp=time.time())
    span.end()
    span = tracer.start_span("renamed")
    span.update_name(PurePosixPath(_SECRET))
    span.end()


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_spans_no_encoder_can_encode_are_left_out_and_the_rest_arrives(
        transport: str, otlp_receiver: OTLPReceiver) -> None:
    """The six normal spans arrive in one request, the four odd ones are counted (globally
    and by the exporter), and one warning names spans and the first reason, no value."""
    batch = _spans(_odd_spans)
    exporter = _span_exporter(transport, otlp_receiver)
    assert _export(exporter, batch) is SpanExportResult.SUCCESS
    names = [span.name for span in otlp_receiver.wait_for_spans(6)]
    assert sorted(names) == ["after"] * 3 + ["before"] * 3
    assert len(otlp_receiver.requests("traces")) == 1
    assert otlp_exporters.unencodable_items() == {"traces": 4, "logs": 0}
    assert exporter.unencodable_items == 4
    [said] = [w for w in _warnings() if "left out of the export" in w]
    assert said.startswith("spans left out")
    assert "start_time is a float" in said
    assert _SECRET not in " ".join(_warnings())


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_log_records_no_encoder_can_encode_are_left_out_and_the_rest_arrives(
        transport: str, otlp_receiver: OTLPReceiver) -> None:
    """A float timestamp, an int severity text and an object event name cost only their
    records; one warning names log records."""
    def odd(logger: Any) -> None:
        logger.emit(body="seconds", timestamp=time.time())
        logger.emit(body="int severity text", severity_text=30)
        logger.emit(body="object event name", event_name=PurePosixPath(_SECRET))

    exporter = _log_exporter(transport, otlp_receiver)
    assert _export(exporter, _records(odd)) is LogRecordExportResult.SUCCESS
    bodies = [log.body for log in otlp_receiver.wait_for_logs(6)]
    assert sorted(bodies) == sorted([f"before {i}" for i in range(3)]
                                    + [f"after {i}" for i in range(3)])
    assert otlp_exporters.unencodable_items() == {"traces": 0, "logs": 3}
    [said] = [w for w in _warnings() if "left out of the export" in w]
    assert said.startswith("log records left out")
    assert "timestamp is a float" in said
    assert _SECRET not in " ".join(_warnings())


def test_a_hand_made_span_whose_attributes_raise_costs_only_itself(
        otlp_receiver: OTLPReceiver) -> None:
    """A span whose attribute mapping raises when read, made by hand, is left out, the
    reason being what its encoding raised."""
    odd = ReadableSpan(name="hand-made", context=SpanContext(5, 6, False, TraceFlags(1)),
                       attributes=_RaisingAttributes(x=1), resource=_RESOURCE,
                       start_time=1, end_time=2)
    batch = _spans(lambda tracer: None)
    batch.insert(3, odd)
    assert _export(_span_exporter("grpc", otlp_receiver), batch) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.wait_for_spans(6)) == 6
    assert otlp_exporters.unencodable_items()["traces"] == 1
    assert any("encoding raised RuntimeError" in w for w in _warnings())


def test_a_retried_export_counts_its_items_left_out_once(otlp_receiver: OTLPReceiver) -> None:
    """gRPC encodes again on each retry: the items left out are counted (and the batch
    split) once."""
    otlp_receiver.set_failure("UNAVAILABLE", count=1, retry_after=0.01)
    exporter = _span_exporter("grpc", otlp_receiver)
    assert _export(exporter, _spans(_odd_spans)) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.wait_for_spans(6)) == 6
    assert exporter.unencodable_items == 4
    assert otlp_exporters.unencodable_items()["traces"] == 4


def test_a_value_left_out_of_a_split_batch_is_counted_once(otlp_receiver: OTLPReceiver) -> None:
    """Each item is encoded alone, then together: an attribute OTLP cannot carry in a
    kept span is counted once, not per trial."""
    def odd(tracer: Any) -> None:
        tracer.start_span("big", attributes={"big": 2**70, "ok": 1}).end()
        tracer.start_span("seconds-start", start_time=time.time()).end()

    assert _export(_span_exporter("http", otlp_receiver), _spans(odd)) \
        is SpanExportResult.SUCCESS
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(7)}
    assert spans["big"].attributes == {"ok": 1}
    assert otlp_wire.unencodable_counts()["attributes_left_out"] == 1


def test_a_batch_that_encodes_is_never_split(otlp_receiver: OTLPReceiver) -> None:
    """The common path pays nothing: a normal batch is encoded once, nothing counted."""
    exporter = _span_exporter("grpc", otlp_receiver)
    assert _export(exporter, _spans(lambda tracer: None)) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.wait_for_spans(6)) == 6
    assert exporter.unencodable_items == 0
    assert otlp_exporters.unencodable_items() == {"traces": 0, "logs": 0}
    assert _warnings() == []


def test_a_scope_schema_url_with_a_lone_surrogate_is_sent_escaped() -> None:
    """Where the exporter's encoder raises (and every span of the tracer was lost), ours
    sends the schema URL escaped and keeps the spans; counted as a value sent as text."""
    spans = _spans(lambda tracer: None, schema_url=_LONE_URL)
    request = ExportTraceServiceRequest.FromString(SpanEncoder().encode(spans))
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    assert scope_spans.schema_url == _ESCAPED_URL
    assert len(scope_spans.spans) == 6
    assert otlp_wire.unencodable_counts()["values_sent_as_text"] == 1


def test_a_resource_schema_url_with_a_lone_surrogate_is_sent_escaped() -> None:
    """A resource's schema URL (every item of the process) alike, for log records."""
    provider = LoggerProvider(resource=Resource({"service.name": "shop"}, schema_url=_LONE_URL))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("t").emit(body="kept")
    request = ExportLogsServiceRequest.FromString(
        LogEncoder().encode(list(memory.get_finished_logs())))
    [resource_logs] = request.resource_logs
    assert resource_logs.schema_url == _ESCAPED_URL
    assert resource_logs.scope_logs[0].log_records[0].body.string_value == "kept"
