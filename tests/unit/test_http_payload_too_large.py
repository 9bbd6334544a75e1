"""An OTLP/HTTP backend whose request limit is lower than the exporter's answers 413 Payload
Too Large, against the real loopback receiver given such a limit: the refused batch's items
are sent again at once in requests within half the refused one, that limit kept for later
exports; an item refused alone is left out, counted and said once (its size, never its
value); the exporter's own "Failed to export" line about a refusal we answer is left
unsaid. Before, the exporter failed the whole batch (413 is not retried) and blamed the
backend."""

from __future__ import annotations

import logging
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
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    http_log_exporter,
    http_span_exporter,
)
from telemetryflow_bootstrap.infrastructure.watched_exporters import watch
from tests.otlp_receiver import OTLPReceiver

_LIMIT = 16_384  # the backend's
_PAYLOAD = "p" * 1000
_SECRET = "4111-1111-1111-1111"


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
    """A receiver answering 413 to an HTTP request past ``_LIMIT``, as a proxy would."""
    receiver = OTLPReceiver(http_max_request_bytes=_LIMIT).start()
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


def _many(count: int, first: int = 0) -> Callable[[Any], None]:
    def make(tracer: Any) -> None:
        for n in range(first, first + count):
            tracer.start_span("big", attributes={"payload": _PAYLOAD, "n": n}).end()
    return make


def _exporter(receiver: OTLPReceiver, signal: str = "traces") -> Any:
    make = http_span_exporter if signal == "traces" else http_log_exporter
    return watch(make(endpoint=f"{receiver.http_endpoint}/v1/{signal}", timeout=5))


def _sizes(receiver: OTLPReceiver, signal: str = "traces") -> list[int]:
    return [len(request.message.SerializeToString()) for request in receiver.requests(signal)]


def test_a_batch_refused_with_413_is_sent_again_in_requests_that_fit(
        small_backend: OTLPReceiver, caplog: pytest.LogCaptureFixture) -> None:
    """60 spans of ~1 KiB (~64 KiB together) to a backend taking 16 KiB: refused once,
    then halved until they fit; every span arrives exactly once, the export succeeds, and
    the exporter's error line about the refusal is not logged."""
    exporter = _exporter(small_backend)
    try:
        with caplog.at_level(logging.WARNING):
            assert exporter.export(_spans(_many(60))) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    ns = sorted(span.attributes["n"] for span in small_backend.spans())
    assert ns == list(range(60))
    assert all(size <= _LIMIT for size in _sizes(small_backend))
    refused = small_backend.rejected("traces")
    assert refused and all(r.error.startswith("payload too large") for r in refused)
    assert len(refused) <= 3  # (64 KiB -> 32 -> 16: at most a few refusals, then it fits)
    assert exporter.too_large_items == 0
    assert not [r for r in caplog.records if "Failed to export" in r.getMessage()]
    assert not _warnings()


def test_the_learned_limit_is_kept_for_later_exports(small_backend: OTLPReceiver) -> None:
    """Once refused, the exporter's later batches go out within the learned limit without
    another refusal."""
    exporter = _exporter(small_backend)
    try:
        assert exporter.export(_spans(_many(60))) is SpanExportResult.SUCCESS
        refusals = len(small_backend.rejected())
        assert exporter.export(_spans(_many(60, 60))) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert len(small_backend.rejected()) == refusals
    assert sorted(span.attributes["n"] for span in small_backend.spans()) == list(range(120))


def test_an_item_refused_alone_is_left_out_counted_and_said_once(
        small_backend: OTLPReceiver) -> None:
    """A span whose request alone is past the backend's limit: the rest of its batch
    arrives, it is counted as too large and said once, with its size and never its value;
    a second one is counted, not said."""
    def make(tracer: Any) -> None:
        _many(5)(tracer)
        tracer.start_span("huge", attributes={"card": _SECRET + "x" * _LIMIT}).end()
        _many(5, 5)(tracer)

    exporter = _exporter(small_backend)
    try:
        assert exporter.export(_spans(make)) is SpanExportResult.SUCCESS
        assert exporter.export(_spans(make)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    names = [span.name for span in small_backend.spans()]
    assert names.count("big") == 20 and "huge" not in names
    assert exporter.too_large_items == 2
    assert otlp_exporters.too_large_items() == {"traces": 2, "logs": 0}
    said = _warnings()
    assert len(said) == 1, said
    assert "413 Payload Too Large" in said[0] and _SECRET not in said[0]


def test_log_records_too(small_backend: OTLPReceiver) -> None:
    """The log exporter behaves alike: 40 records of ~1 KiB all arrive, within the limit."""
    provider = LoggerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("t")
    for n in range(40):
        logger.emit(body=_PAYLOAD, attributes={"n": n})
    exporter = _exporter(small_backend, "logs")
    try:
        assert exporter.export(memory.get_finished_logs()) is LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert sorted(log.attributes["n"] for log in small_backend.logs()) == list(range(40))
    assert small_backend.rejected("logs")
    assert all(size <= _LIMIT for size in _sizes(small_backend, "logs"))


def test_a_backend_refusing_even_a_small_request_fails_the_export(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """413 to a request no bigger than ``_MIN_LEARNED``: not a size the backend can mean;
    the batch fails as before (not split item by item), with the exporter's own line."""
    with OTLPReceiver(http_max_request_bytes=100).start() as receiver:
        exporter = _exporter(receiver)
        try:
            spans = _spans(lambda tracer: [tracer.start_span(f"s{i}").end() for i in range(3)])
            assert exporter.export(spans) is SpanExportResult.FAILURE
        finally:
            exporter.shutdown()
        assert len(receiver.rejected()) == 1 and not receiver.requests()
