"""The span encoder's status cache is bounded in size, as its other caches are: a status
description is often an exception's message, and one holding a payload (megabytes) was
kept, with its encoding, until 256 other statuses came. Now a big one is encoded each
time, a middling one is kept within a budget, and the common small ones stay cached. The
bytes are the exporter's encoder's in every case."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from telemetryflow_bootstrap.infrastructure import span_encoding
from telemetryflow_bootstrap.infrastructure.otlp_wire import CACHED_MAX_BYTES
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder


def _failed_spans(descriptions: list[str]) -> list[object]:
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t")
    for description in descriptions:
        span = tracer.start_span("call")
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
    return list(memory.get_finished_spans())


def _held(encoder: SpanEncoder) -> int:
    return sum(len(encoded) + len(key[1] or "") for key, encoded in encoder._statuses.items())


def test_a_big_description_is_not_kept() -> None:
    encoder = SpanEncoder()
    spans = _failed_spans([f"{n}" + "x" * (CACHED_MAX_BYTES + 1) for n in range(3)])
    assert encoder.encode(spans) == encode_spans(spans).SerializeToString()
    assert not encoder._statuses


def test_middling_descriptions_are_kept_within_the_budget() -> None:
    """200 descriptions of 8 KiB (1.6 MiB with their encodings, and 200 of them fit the
    count): what stays cached is within twice the budget (texts and encodings)."""
    encoder = SpanEncoder()
    spans = _failed_spans([f"{n:04d}" + "y" * 8192 for n in range(200)])
    assert encoder.encode(spans) == encode_spans(spans).SerializeToString()
    assert 0 < _held(encoder) <= 2 * span_encoding._STATUS_BUDGET_BYTES
    assert len(encoder._statuses) < 200


def test_small_descriptions_stay_cached() -> None:
    encoder = SpanEncoder()
    spans = _failed_spans(["connection refused", "timed out"] * 50)
    assert encoder.encode(spans) == encode_spans(spans).SerializeToString()
    assert len(encoder._statuses) == 2
    assert encoder._status_bytes == 0
