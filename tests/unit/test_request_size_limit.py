"""A batch whose OTLP/HTTP request is past the exporter's limit (``max_request_size``) is sent
in as many requests as fit, against the real loopback receiver: what a request can hold
arrives, an item past the limit on its own is left out, counted apart from failed exports
and said once (its size, never its value), and the export succeeds unless the backend fails
a request. Before, the exporter's own ``export`` dropped the whole batch and failed it, and
the backend got the blame. Also: what an export leaves out or escapes is counted once per
value sent, wherever in a split batch it is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
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

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import otlp_exporters, otlp_wire
from telemetryflow_bootstrap.infrastructure.batching import BatchQueue
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    grpc_span_exporter,
    http_log_exporter,
    http_span_exporter,
)
from tests.otlp_receiver import OTLPReceiver

_LIMIT = 16_384
_PAYLOAD = "p" * (_LIMIT * 9 // 16)  # two fit in no request, one in any
_SECRET = "4111-1111-1111-1111"  # (what an item left out holds must never be shown)
_LONE = b"\xff".decode("utf-8", "surrogateescape")


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with nothing counted or said (the counts are per process)."""
    monkeypatch.setattr(otlp_wire, "_counts", dict.fromkeys(otlp_wire._counts, 0))
    monkeypatch.setattr(otlp_wire, "_said", set())
    monkeypatch.setattr(otlp_exporters, "_left_out", {"traces": 0, "logs": 0})
    monkeypatch.setattr(otlp_exporters, "_too_large", {"traces": 0, "logs": 0})
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _warnings() -> list[str]:
    return [message for level, message in _diagnostics.recorded() if level == "warn"]


def _spans(make: Any) -> list[ReadableSpan]:
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t", "1.0")
    for i in range(5):
        tracer.start_span("before", attributes={"i": i}).end()
    make(tracer)
    for i in range(5):
        tracer.start_span("after", attributes={"i": i}).end()
    return list(memory.get_finished_spans())


def _big_spans(tracer: Any) -> None:
    """Two spans that fit a request each but not together, one that fits none, and one
    no encoder can encode (a start time in float seconds)."""
    tracer.start_span("big", attributes={"payload": _PAYLOAD, "n": 1}).end()
    tracer.start_span("seconds-start", start_time=time.time()).end()
    tracer.start_span("big", attributes={"payload": _PAYLOAD, "n": 2}).end()
    tracer.start_span("too-big", attributes={"payload": _PAYLOAD, "card": _SECRET + _PAYLOAD}
                      ).end()


def _http_spans(receiver: OTLPReceiver, limit: int = _LIMIT) -> Any:
    return http_span_exporter(endpoint=f"{receiver.http_endpoint}/v1/traces", timeout=5,
                              max_request_size=limit)


def _export(exporter: Any, batch: list[Any]) -> Any:
    try:
        return exporter.export(batch)
    finally:
        exporter.shutdown()


def _request_sizes(receiver: OTLPReceiver, signal: str) -> list[int]:
    return [len(request.message.SerializeToString()) for request in receiver.requests(signal)]


def test_a_split_batch_past_the_limit_sends_what_fits_and_leaves_out_the_rest(
        otlp_receiver: OTLPReceiver) -> None:
    """Split item by item (one span cannot be encoded) and past the limit: every span a
    request can hold arrives, in requests within the limit; the span past it on its own
    and the one that cannot be encoded are left out, each counted under its own reason and
    said once, and the export succeeds (it failed whole, blaming the backend)."""
    exporter = _http_spans(otlp_receiver)
    assert _export(exporter, _spans(_big_spans)) is SpanExportResult.SUCCESS
    names = sorted(span.name for span in otlp_receiver.wait_for_spans(12))
    assert names == ["after"] * 5 + ["before"] * 5 + ["big", "big"]
    sizes = _request_sizes(otlp_receiver, "traces")
    assert len(sizes) >= 2 and max(sizes) <= _LIMIT, sizes
    assert (exporter.unencodable_items, exporter.too_large_items) == (1, 1)
    assert otlp_exporters.too_large_items() == {"traces": 1, "logs": 0}
    assert otlp_exporters.unencodable_items() == {"traces": 1, "logs": 0}
    [said] = [w for w in _warnings() if "past the exporter's limit" in w]
    assert said.startswith("spans left out of the export") and f"limit of {_LIMIT}" in said
    assert _SECRET not in " ".join(_warnings())


def test_a_batch_that_encodes_but_is_past_the_limit_is_sent_in_parts(
        otlp_receiver: OTLPReceiver) -> None:
    """No item left out: a batch our encoder takes whole goes in parts, all of it, the
    parts of several items encoded together (one resource and scope each)."""
    def two_big(tracer: Any) -> None:
        for n in range(2):
            tracer.start_span("big", attributes={"payload": _PAYLOAD, "n": n}).end()

    exporter = _http_spans(otlp_receiver)
    assert _export(exporter, _spans(two_big)) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.wait_for_spans(12)) == 12
    assert exporter.too_large_items == exporter.unencodable_items == 0
    requests = otlp_receiver.requests("traces")
    assert len(requests) == 2 and all(len(r.message.resource_spans) == 1 for r in requests)
    assert _warnings() == []


def test_log_records_past_the_limit_alike(otlp_receiver: OTLPReceiver) -> None:
    """The log exporter is the same class: a record past the limit on its own is left out
    and said as a log record; the others arrive."""
    provider = LoggerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("t")
    for body in ("first", _PAYLOAD, _PAYLOAD + _PAYLOAD, "last"):
        logger.emit(body=body)
    records: list[ReadableLogRecord] = list(memory.get_finished_logs())
    exporter = http_log_exporter(endpoint=f"{otlp_receiver.http_endpoint}/v1/logs",
                                 timeout=5, max_request_size=_LIMIT)
    assert _export(exporter, records) is LogRecordExportResult.SUCCESS
    bodies = sorted(str(log.body)[:5] for log in otlp_receiver.wait_for_logs(3))
    assert bodies == ["first", "last", "ppppp"]
    assert exporter.too_large_items == 1
    assert any(w.startswith("log records left out") and "past the exporter's limit" in w
               for w in _warnings())


def test_a_part_the_backend_fails_fails_the_export(otlp_receiver: OTLPReceiver) -> None:
    """A request the backend refuses (after the exporter's own retries) ends the export,
    failed: that loss is the backend's, and is not counted as left out."""
    otlp_receiver.set_failure("INVALID_ARGUMENT")
    exporter = _http_spans(otlp_receiver)
    assert _export(exporter, _spans(_big_spans)) is SpanExportResult.FAILURE
    assert len(otlp_receiver.rejected("traces")) == 1
    assert exporter.too_large_items == 0


def test_no_limit_and_a_batch_within_it_are_sent_whole(otlp_receiver: OTLPReceiver) -> None:
    """max_request_size 0 (no limit), or a batch within the limit: one request, as
    before."""
    exporter = _http_spans(otlp_receiver, limit=0)
    assert _export(exporter, _spans(_big_spans)) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.requests("traces")) == 1
    assert exporter.too_large_items == 0
    exporter = _http_spans(otlp_receiver)
    assert _export(exporter, _spans(lambda tracer: None)) is SpanExportResult.SUCCESS
    assert len(otlp_receiver.requests("traces")) == 2


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("odd_first", [True, False], ids=["odd-value-first", "odd-value-last"])
def test_values_in_a_split_batch_are_counted_once_each(otlp_receiver: OTLPReceiver,
                                                       transport: str, odd_first: bool) -> None:
    """An attribute left out and a name sent escaped, before or after the span no encoder
    can encode, each count once: the name counted twice when it came before (the failed
    whole-batch encoding counted too), the attribute not at all when it came after (its
    encoding, cached during an uncounted trial, was reused)."""
    def odd_values(tracer: Any) -> None:
        tracer.start_span("odd-attribute", attributes={"big": 2**70, "kept": 1}).end()
        tracer.start_span("odd-name-" + _LONE).end()

    def make(tracer: Any) -> None:
        if odd_first:
            odd_values(tracer)
        tracer.start_span("seconds-start", start_time=time.time()).end()
        if not odd_first:
            odd_values(tracer)

    exporter = (grpc_span_exporter(endpoint=otlp_receiver.grpc_endpoint, insecure=True,
                                   timeout=5) if transport == "grpc"
                else _http_spans(otlp_receiver))
    assert _export(exporter, _spans(make)) is SpanExportResult.SUCCESS
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(12)}
    assert spans["odd-attribute"].attributes == {"kept": 1}
    assert "odd-name-\\udcff" in spans
    assert otlp_wire.unencodable_counts() == {"attributes_left_out": 1,
                                              "values_sent_as_text": 1}


def test_the_queue_counts_items_left_out_as_too_large_apart(otlp_receiver: OTLPReceiver) -> None:
    """The batch queue's counts: items left out for their size are neither exported nor
    failed, and apart from those no encoder could encode."""
    exporter = _http_spans(otlp_receiver)
    queue = BatchQueue(lambda batch: exporter.export(batch) is SpanExportResult.SUCCESS,
                       signal="spans", max_queue_size=100, max_batch_size=100,
                       schedule_delay_ms=10,
                       left_out=lambda: exporter.unencodable_items,
                       too_large=lambda: exporter.too_large_items)
    for span in _spans(_big_spans):
        queue.emit(span)
    try:
        assert queue.flush(10)
    finally:
        queue.shutdown(5)
        exporter.shutdown()
    assert (queue.exported, queue.failed, queue.unencodable, queue.too_large) == (12, 0, 1, 1)
