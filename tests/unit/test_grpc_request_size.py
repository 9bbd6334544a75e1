"""OTLP/gRPC requests within what the backend's gRPC server takes, against the real loopback
receiver (a real gRPC server, given a limit as a collector has one: ``max_recv_msg_size_mib``,
4 MiB by default). A batch past our limit (4 MiB; made small here) goes in requests that
fit, an item past it alone left out and counted; a backend whose limit is lower refuses a
request as too large once (RESOURCE_EXHAUSTED, naming its limit), and gets it again at once
in requests within that limit, as every later one; throttling (RESOURCE_EXHAUSTED with
RetryInfo) is retried as before. Before, a refused request was retried until the export's
deadline, and the whole batch lost. Also: a retried export encodes its request once, so
what it leaves out is counted once."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
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
from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    grpc_log_exporter,
    grpc_span_exporter,
)
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder
from tests.otlp_receiver import OTLPReceiver

_LIMIT = 16_384
_PAYLOAD = "p" * (_LIMIT * 9 // 16)  # two fit in no request, one in any
_SECRET = "4111-1111-1111-1111"  # (what an item left out holds must never be shown)


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


@pytest.fixture
def small_backend() -> Iterator[OTLPReceiver]:
    """A receiver refusing a gRPC request past ``_LIMIT``, as a collector past its own."""
    receiver = OTLPReceiver(grpc_max_receive_bytes=_LIMIT).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _warnings() -> list[str]:
    return [message for level, message in _diagnostics.recorded() if level == "warn"]


def _spans(make: Callable[[Any], None]) -> list[ReadableSpan]:
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    make(provider.get_tracer("t", "1.0"))
    return list(memory.get_finished_spans())


def _many(count: int, payload: str = _PAYLOAD) -> Callable[[Any], None]:
    def make(tracer: Any) -> None:
        for n in range(count):
            tracer.start_span("big", attributes={"payload": payload, "n": n}).end()
    return make


def _exporter(receiver: OTLPReceiver, signal: str = "traces") -> Any:
    make = grpc_span_exporter if signal == "traces" else grpc_log_exporter
    return make(endpoint=receiver.grpc_endpoint, insecure=True, timeout=5)


def _attempts(exporter: Any) -> list[int]:
    """The size of each request the exporter sends (each call of its stub's Export, as
    the exporter's own retry loop makes them), seen from outside."""
    sizes: list[int] = []
    make_stub = exporter._stub

    def stub(channel: Any) -> Any:  # (rebuilt by the exporter on reconnect)
        made = make_stub(channel)
        call = made.Export

        def export(*args: Any, **kwargs: Any) -> Any:
            sizes.append(len(kwargs["request"]))
            return call(*args, **kwargs)

        made.Export = export
        return made

    exporter._stub = stub
    exporter._client = stub(exporter._channel)
    return sizes


def _request_sizes(receiver: OTLPReceiver, signal: str = "traces") -> list[int]:
    return [len(request.message.SerializeToString()) for request in receiver.requests(signal)]


def test_a_batch_past_our_limit_goes_in_parts_and_an_item_past_it_alone_is_left_out(
        otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our limit (4 MiB, a collector's default; made 16 KiB): normal spans, two that fit a
    request each but not together, one that fits none: all but that one arrive, in
    requests within the limit; it is counted as too large (by the queue too, neither
    exported nor failed) and said once with its size, never its value."""
    monkeypatch.setattr(otlp_exporters, "_GRPC_LIMIT", _LIMIT)

    def make(tracer: Any) -> None:
        for i in range(5):
            tracer.start_span("normal", attributes={"i": i}).end()
        _many(2)(tracer)
        tracer.start_span("too-big", attributes={"payload": _PAYLOAD,
                                                 "card": _SECRET + _PAYLOAD}).end()

    exporter = _exporter(otlp_receiver)
    queue = BatchQueue(lambda batch: exporter.export(batch) is SpanExportResult.SUCCESS,
                       signal="spans", max_queue_size=100, max_batch_size=100,
                       schedule_delay_ms=10, left_out=lambda: exporter.unencodable_items,
                       too_large=lambda: exporter.too_large_items)
    for span in _spans(make):
        queue.emit(span)
    try:
        assert queue.flush(10)
    finally:
        queue.shutdown(5)
        exporter.shutdown()
    names = sorted(span.name for span in otlp_receiver.wait_for_spans(7))
    assert names == ["big", "big"] + ["normal"] * 5
    sizes = _request_sizes(otlp_receiver)
    assert len(sizes) == 2 and max(sizes) <= _LIMIT, sizes
    assert (queue.exported, queue.failed, queue.too_large) == (7, 0, 1)
    assert otlp_exporters.too_large_items() == {"traces": 1, "logs": 0}
    [said] = _warnings()
    assert said.startswith("spans left out of the export") and (
        f"past the limit of {_LIMIT} on a gRPC request" in said)
    assert _SECRET not in said


def test_a_backend_with_a_lower_limit_is_asked_once_then_kept_within(
        small_backend: OTLPReceiver) -> None:
    """Our limit is 4 MiB, the backend's 16 KiB: the first request (every span) is refused
    as too large and not retried; the spans go again at once in requests within the limit
    it stated, as a later batch's do, without a refusal."""
    exporter = _exporter(small_backend)
    attempts = _attempts(exporter)
    try:
        assert exporter.export(_spans(_many(5))) is SpanExportResult.SUCCESS
        assert len(small_backend.wait_for_spans(5)) == 5
        sent = _request_sizes(small_backend)
        assert len(sent) >= 3 and max(sent) <= _LIMIT, sent
        assert attempts == [attempts[0], *sent] and attempts[0] > _LIMIT, attempts
        assert exporter.export(_spans(_many(4))) is SpanExportResult.SUCCESS
        assert len(small_backend.wait_for_spans(9)) == 9
        assert attempts[len(sent) + 1:] == _request_sizes(small_backend)[len(sent):]
    finally:
        exporter.shutdown()
    assert exporter.too_large_items == 0 and _warnings() == []


def test_log_records_alike_and_an_item_refused_alone_is_left_out(
        small_backend: OTLPReceiver) -> None:
    """The log exporter is the same class (its ``export`` went past ours). A record the
    backend refuses alone is left out, counted and said as past the backend's limit; the
    export succeeds, the others of a later batch arrive."""
    provider = LoggerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("t")
    logger.emit(body=_PAYLOAD * 2)
    alone = list(memory.get_finished_logs())
    memory.clear()
    for body in ("first", _PAYLOAD, _PAYLOAD, _PAYLOAD * 2, "last"):
        logger.emit(body=body)
    exporter = _exporter(small_backend, "logs")
    attempts = _attempts(exporter)
    try:
        assert exporter.export(alone) is LogRecordExportResult.SUCCESS
        assert len(attempts) == 1 and exporter.too_large_items == 1
        assert exporter.export(list(memory.get_finished_logs())) \
            is LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    bodies = sorted(str(log.body)[:5] for log in small_backend.wait_for_logs(4))
    assert bodies == ["first", "last", "ppppp", "ppppp"]
    assert exporter.too_large_items == 2
    [said] = _warnings()
    assert said.startswith("log records left out of the export")
    assert f"past the backend's limit of {_LIMIT}" in said


def test_throttling_is_retried_as_before(otlp_receiver: OTLPReceiver) -> None:
    """RESOURCE_EXHAUSTED with RetryInfo is the backend asking for a pause, not a request
    too large: the exporter retries the same request, which arrives whole."""
    otlp_receiver.set_failure("RESOURCE_EXHAUSTED", count=1, retry_after=0.05)
    exporter = _exporter(otlp_receiver)
    attempts = _attempts(exporter)
    try:
        assert exporter.export(_spans(_many(3))) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert len(otlp_receiver.wait_for_spans(3)) == 3
    assert len(attempts) == 2 and attempts[0] == attempts[1]
    assert len(otlp_receiver.requests("traces")) == 1
    assert exporter._limit == otlp_exporters._GRPC_LIMIT


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_a_retried_export_counts_what_it_leaves_out_once(otlp_receiver: OTLPReceiver,
                                                         signal: str) -> None:
    """An attribute OTLP cannot carry, in an export the backend fails once and the
    exporter retries: counted once (each retry encoded the batch again, and a log
    record's attribute was counted again each time)."""
    otlp_receiver.set_failure("UNAVAILABLE", count=1, retry_after=0.05)
    exporter = _exporter(otlp_receiver, signal)
    attempts = _attempts(exporter)
    attributes = {"huge": 2**70, "kept": 1}
    if signal == "traces":
        items: list[Any] = _spans(lambda t: t.start_span("odd", attributes=attributes).end())
    else:
        provider = LoggerProvider(resource=Resource({"service.name": "shop"}))
        memory = InMemoryLogRecordExporter()
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        provider.get_logger("t").emit(body="odd", attributes=attributes)
        items = list(memory.get_finished_logs())
    try:
        assert exporter.export(items).name == "SUCCESS"
    finally:
        exporter.shutdown()
    received = (otlp_receiver.wait_for_spans(1) if signal == "traces"
                else otlp_receiver.wait_for_logs(1))
    assert received[0].attributes == {"kept": 1}
    assert len(attempts) == 2
    assert otlp_wire.unencodable_counts()["attributes_left_out"] == 1


def test_the_encoders_do_not_keep_a_big_value() -> None:
    """A big attribute value (or span name) is encoded, not cached: the encoder holds no
    reference to it once the batch is encoded (it held the value and its encoding until
    4096 other values came), while small values are cached as before; the bytes are the
    same either way."""
    big = "b" * (otlp_wire.CACHED_MAX_BYTES + 1)
    before = sys.getrefcount(big)
    spans = _spans(lambda t: [t.start_span(name, attributes={"v": big, "small": "s"}).end()
                              for name in (big, "small")])
    provider = LoggerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("t").emit(body="b", attributes={"v": big, "small": "s"})
    records = list(memory.get_finished_logs())
    held = sys.getrefcount(big)
    span_encoder, log_encoder = SpanEncoder(), LogEncoder()
    first = span_encoder.encode(spans), log_encoder.encode(records)
    assert sys.getrefcount(big) == held > before
    assert (span_encoder.encode(spans), log_encoder.encode(records)) == first
    for encoder in (span_encoder, log_encoder):
        assert ("small", "s") in encoder._attributes
        assert all(len(value) < len(big) for _, value in encoder._attributes)
    assert "small" in span_encoder._names and big not in span_encoder._names
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    assert first == (encode_spans(spans).SerializeToString(),
                     encode_logs(records).SerializeToString())


def test_the_value_caches_hold_a_bounded_size() -> None:
    """Distinct values each small enough to cache, more of them than the budget holds: the
    str attribute cache is cleared when its encodings pass the budget, not 4096 values
    later (~50 MiB here)."""
    value = "v" * (otlp_wire.CACHED_MAX_BYTES // 2)
    count = 2 * otlp_wire.CACHE_BUDGET_BYTES // len(value)
    spans = _spans(lambda t: [t.start_span("s", attributes={"v": f"{n}{value}"}).end()
                              for n in range(count)])
    encoder = SpanEncoder()
    encoder.encode(spans)
    held = sum(len(encoded) for encoded in encoder._attributes.values())
    assert 0 < held <= otlp_wire.CACHE_BUDGET_BYTES
    assert encoder._cached_bytes == held
