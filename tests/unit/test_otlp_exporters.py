"""Our OTLP exporters (the exporter's classes with our encoders) against the real loopback
OTLP receiver: what arrives, over gRPC and HTTP, on our fast path and on the fallback to the
exporter's own encoder; and what importing them loads."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    grpc_log_exporter,
    grpc_span_exporter,
    http_log_exporter,
    http_span_exporter,
)
from tests.otlp_receiver import OTLPReceiver

_TRANSPORTS = ("grpc", "http")
_RESOURCE = Resource({"service.name": "orders", "service.version": "1.2.3", "pid": 42})
_OTHER = Resource({"service.name": "billing"}, schema_url="https://example/schema")
_SCOPE = InstrumentationScope("app.orders", "2.0")
_TRACE_ID, _SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


def _log_exporter(transport: str, receiver: OTLPReceiver, **kwargs: Any) -> Any:
    if transport == "grpc":
        return grpc_log_exporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=5,
                                 **kwargs)
    return http_log_exporter(endpoint=f"{receiver.http_endpoint}/v1/logs", timeout=5, **kwargs)


def _span_exporter(transport: str, receiver: OTLPReceiver) -> Any:
    if transport == "grpc":
        return grpc_span_exporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=5)
    return http_span_exporter(endpoint=f"{receiver.http_endpoint}/v1/traces", timeout=5)


def _record(body: Any, resource: Resource = _RESOURCE,
            scope: InstrumentationScope | None = _SCOPE, **fields: Any) -> ReadableLogRecord:
    log = LogRecord(timestamp=1_700_000_000_123_456_789, observed_timestamp=1_700_000_000_2,
                    body=body)
    for name, value in fields.items():
        setattr(log, name, value)
    return ReadableLogRecord(log_record=log, resource=resource, instrumentation_scope=scope)


def _batch() -> list[ReadableLogRecord]:
    return [
        _record("user 17 did thing", severity_number=SeverityNumber.INFO, severity_text="INFO",
                attributes={"code.function.name": "place", "code.line.number": 17,
                            "thread.name": "MainThread", "ratio": 0.5, "ok": True,
                            "tags": ("a", "b")},
                trace_id=_TRACE_ID, span_id=_SPAN_ID, trace_flags=TraceFlags(1),
                event_name="order.placed"),
        _record({"order": {"id": 7, "items": ["x", "y"]}, "raw": b"\x00\x01"}, scope=None,
                severity_number=SeverityNumber.ERROR, severity_text="ERROR"),
        _record("from billing", resource=_OTHER),
    ]


def _request_message(receiver: OTLPReceiver) -> Any:
    [request] = receiver.requests("logs")
    return request.message


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_log_records_arrive_with_their_fields(transport: str,
                                              otlp_receiver: OTLPReceiver) -> None:
    """Body (text and structured), severity, attributes, ids, flags, event name, resource and
    scope arrive as sent, in one request equal to what the exporter's encoder makes."""
    exporter = _log_exporter(transport, otlp_receiver)
    batch = _batch()
    try:
        assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    logs = {str(log.body): log for log in otlp_receiver.wait_for_logs(3)}
    first = logs["user 17 did thing"]
    assert (first.severity_number, first.severity_text) == (9, "INFO")
    assert first.attributes == {"code.function.name": "place", "code.line.number": 17,
                                "thread.name": "MainThread", "ratio": 0.5, "ok": True,
                                "tags": ["a", "b"]}
    assert (first.trace_id, first.span_id, first.flags) == (
        f"{_TRACE_ID:032x}", f"{_SPAN_ID:016x}", 1)
    assert first.event_name == "order.placed"
    assert (first.time_ns, first.observed_time_ns) == (1_700_000_000_123_456_789,
                                                       1_700_000_000_2)
    assert (first.resource, first.scope_name) == (dict(_RESOURCE.attributes), "app.orders")
    structured = next(log for log in logs.values() if isinstance(log.body, dict))
    assert structured.body == {"order": {"id": 7, "items": ["x", "y"]}, "raw": b"\x00\x01"}
    assert (structured.trace_id, structured.span_id, structured.scope_name) == ("", "", "")
    assert logs["from billing"].resource == {"service.name": "billing"}
    assert _request_message(otlp_receiver) == encode_logs(batch)


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_our_encoding_is_what_the_installed_exporter_sends(transport: str,
                                                           otlp_receiver: OTLPReceiver) -> None:
    """The installed exporter has what our fast path relies on (else every batch would take
    the slow path unnoticed)."""
    exporter = _log_exporter(transport, otlp_receiver)
    try:
        assert (exporter._raw if transport == "grpc" else exporter._fast) is True
        assert type(exporter._encoder) is LogEncoder
    finally:
        exporter.shutdown()


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_a_batch_our_encoder_refuses_still_arrives(transport: str, otlp_receiver: OTLPReceiver,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An int past 64 bits costs only its attribute: the batch arrives, that attribute left
    out, as the exporter's own encoder would (see tests/unit/test_encoding_bad_values.py)."""
    batch = [_record("fine", attributes={"n": 1}),
             _record("huge", attributes={"n": 1 << 70, "s": "kept"})]
    exporter = _log_exporter(transport, otlp_receiver)
    try:
        with caplog.at_level(logging.CRITICAL, "opentelemetry"):  # its "Failed to encode key"
            assert exporter.export(batch) is LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    logs = {log.body: log for log in otlp_receiver.wait_for_logs(2)}
    assert logs["fine"].attributes == {"n": 1}
    assert logs["huge"].attributes == {"s": "kept"}


def test_http_keeps_the_exporters_shutdown_check_and_size_limit(
        otlp_receiver: OTLPReceiver) -> None:
    """Records each past max_request_size on their own are left out and counted, not sent
    (nor the export failed: see test_request_size_limit.py); after shutdown an export
    fails and sends nothing."""
    exporter = _log_exporter("http", otlp_receiver, max_request_size=64)
    try:
        assert exporter.export(_batch()) is LogRecordExportResult.SUCCESS
        assert exporter.too_large_items == 3
    finally:
        exporter.shutdown()
    assert exporter.export(_batch()[:1]) is LogRecordExportResult.FAILURE
    assert otlp_receiver.requests() == []


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_spans_arrive_through_the_same_exporters(transport: str,
                                                 otlp_receiver: OTLPReceiver) -> None:
    """The span exporters (same module) still send what the exporter's encoder would."""
    spans = [ReadableSpan(name="GET /orders", context=SpanContext(_TRACE_ID, _SPAN_ID, False,
                                                                   TraceFlags(1)),
                          resource=_RESOURCE, attributes={"http.route": "/orders", "n": 3},
                          kind=SpanKind.SERVER, start_time=10, end_time=20,
                          instrumentation_scope=_SCOPE)]
    exporter = _span_exporter(transport, otlp_receiver)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    [span] = otlp_receiver.wait_for_spans(1)
    assert (span.name, span.attributes) == ("GET /orders", {"http.route": "/orders", "n": 3})
    [request] = otlp_receiver.requests("traces")
    assert request.message == encode_spans(spans)


_PROBE = """
import json, sys
import telemetryflow_bootstrap.infrastructure.otlp_exporters
print(json.dumps(sorted(m for m in ("grpc", "requests", "google.protobuf",
                                    "opentelemetry.exporter", "opentelemetry.proto")
                        if m in sys.modules)))
"""


def test_importing_the_exporters_module_loads_no_exporter_stack() -> None:
    """grpc, requests, protobuf and the OTLP exporter are imported when a class is first
    made (on the export thread), not when the module is."""
    result = subprocess.run([sys.executable, "-I", "-c", _PROBE], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
