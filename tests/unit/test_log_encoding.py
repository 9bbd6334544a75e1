"""Our log encoder writes exactly the bytes the OTLP exporter's own encoder would."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordLimits,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags

from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder

_TEXTS = ["", "plain", "ünïcødé", "日本語のテキスト", "emoji 🎉🚀", "tab\tnew\nline", "\x00nul",
          "x" * 300, "user 17 did thing"]
_INTS = [0, 1, -1, 127, 128, 300, -300, 1 << 31, -(1 << 31), 1 << 32, (1 << 63) - 1,
         -(1 << 63), 17]
_FLOATS = [0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, math.inf, -math.inf, math.nan]
_BYTES = [b"", b"\x00\xff", b"abc" * 50]
_KEYS = ["k", "code.line.number", "ключ", "", "a.b.c", "🔑"]

_ATTRS_15 = {f"attr.{i}": (f"value-{i}" if i % 3 else i) for i in range(15)}
_RESOURCE = Resource(_ATTRS_15)
# Distinct objects the exporter puts in _RESOURCE's group (equal, and hashing alike: its hash
# dumps the attributes with sorted keys), and ones it keeps apart (1 == True, but not in JSON).
_RESOURCE_COPY = Resource(dict(_ATTRS_15))
_RESOURCE_REORDERED = Resource(dict(reversed(list(_ATTRS_15.items()))))
_RESOURCE_ONE, _RESOURCE_TRUE = Resource({"n": 1}), Resource({"n": True})
_RESOURCES = [_RESOURCE, _RESOURCE_COPY, _RESOURCE_REORDERED, _RESOURCE_ONE, _RESOURCE_TRUE,
              Resource({"service.name": "other"}, schema_url="https://example/resource"),
              Resource({"service.name": "other"}), Resource({})]
_SCOPE = InstrumentationScope("app.orders", "1.0")
_SCOPES = [None, _SCOPE, InstrumentationScope("app.orders", "1.0"),  # equal, distinct
           InstrumentationScope("app.orders", "1.0", None, {"x": 1}),  # same hash, unequal
           InstrumentationScope("app.orders", "2.0", "https://example/scope", {"a": "b"}),
           InstrumentationScope(""), InstrumentationScope("日本", None)]
_LIMITS = [LogRecordLimits(), LogRecordLimits(max_attributes=2), LogRecordLimits(max_attributes=0),
           LogRecordLimits(max_attribute_length=4)]


def _scalar(rng: random.Random) -> Any:
    return rng.choice([rng.choice(_TEXTS), rng.choice([True, False]), rng.choice(_INTS),
                       rng.choice(_FLOATS), rng.choice(_BYTES)])


def _sequence(rng: random.Random) -> Any:
    """A homogeneous sequence (what plain attributes allow)."""
    pick = rng.choice([_TEXTS, [True, False], _INTS, _FLOATS, _BYTES])
    items = [rng.choice(pick) for _ in range(rng.randrange(4))]
    return tuple(items) if rng.random() < 0.5 else items


def _any(rng: random.Random, depth: int = 0) -> Any:
    """Any AnyValue: scalars, None, and mixed nested sequences and mappings."""
    roll = rng.random()
    if depth < 3 and roll < 0.15:
        items = [_any(rng, depth + 1) for _ in range(rng.randrange(4))]
        return tuple(items) if rng.random() < 0.5 else items
    if depth < 3 and roll < 0.3:
        # (a non-str key is sent as str(key), by both encoders)
        return {rng.choice([*_KEYS, 7]): _any(rng, depth + 1) for _ in range(rng.randrange(4))}
    if roll < 0.35:
        return None
    if roll < 0.45:
        return _sequence(rng)
    return _scalar(rng)


def _attributes(rng: random.Random) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(rng.randrange(7)):
        roll = rng.random()
        out[rng.choice(_KEYS) + str(rng.randrange(3))] = (
            _scalar(rng) if roll < 0.6 else _sequence(rng) if roll < 0.85 else _any(rng))
    return out


def _record(rng: random.Random) -> Any:
    log = LogRecord(
        timestamp=rng.choice([None, 0, 1, rng.randrange(1 << 64), 1_700_000_000_000_000_000]),
        severity_number=rng.choice([None, *SeverityNumber]),
        severity_text=rng.choice([None, "", "INFO", "WARN", "débug"]),
        body=_any(rng),
        attributes=_attributes(rng),
        event_name=rng.choice([None, "", "order.placed", "événement"]),
    )
    log.observed_timestamp = rng.choice([None, 0, rng.randrange(1 << 64)])
    log.trace_id = rng.choice([0, 1, rng.getrandbits(128), (1 << 128) - 1])
    log.span_id = rng.choice([0, 1, rng.getrandbits(64), (1 << 64) - 1])
    log.trace_flags = TraceFlags(rng.choice([0, 1, 255]))
    resource, scope = rng.choice(_RESOURCES), rng.choice(_SCOPES)
    kind = rng.randrange(3)
    if kind == 2:  # attributes as a plain dict: no limits, nothing dropped
        return ReadableLogRecord(log_record=log, resource=resource, instrumentation_scope=scope)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns about the attributes limits drop
        writable = ReadWriteLogRecord(log, resource, scope, rng.choice(_LIMITS))
    if kind == 1:  # what the SDK's own processors hand exporters
        return writable
    # ... and what ours do (batching.BatchLogProcessor)
    return ReadableLogRecord(log_record=writable.log_record, resource=resource,
                             instrumentation_scope=scope, limits=writable.limits)


def _batch(seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [_record(rng) for _ in range(rng.randrange(12))]


def _theirs(batch: list[Any]) -> bytes:
    return encode_logs(batch).SerializeToString()


@pytest.mark.parametrize("seed", range(300))
def test_same_bytes_as_the_exporters_encoder(seed: int) -> None:
    """Generated batches (every field and value kind) encode to the exporter's bytes."""
    batch = _batch(seed)
    assert LogEncoder().encode(batch) == _theirs(batch)


def test_same_bytes_from_one_encoder_over_many_batches() -> None:
    """One encoder's caches, warm across batches, never leak into another batch's bytes."""
    encoder = LogEncoder()
    for seed in range(1000, 1400):
        batch = _batch(seed)
        assert encoder.encode(batch) == _theirs(batch), seed


def _record_at(resource: Resource, scope: InstrumentationScope | None, body: str) -> Any:
    log = LogRecord(timestamp=1, observed_timestamp=2, body=body)
    return ReadableLogRecord(log_record=log, resource=resource, instrumentation_scope=scope)


def test_grouping_follows_resource_and_scope_equality_in_first_seen_order() -> None:
    """Equal but distinct resources and scopes share a group (encoded from the first seen,
    the records in batch order); the same values hashing apart do not."""
    reordered_first = [_record_at(_RESOURCE_REORDERED, _SCOPES[2], "a")]
    batch = [*reordered_first,
             _record_at(_RESOURCE, _SCOPE, "b"), _record_at(_RESOURCE_ONE, None, "c"),
             _record_at(_RESOURCE_COPY, None, "d"), _record_at(_RESOURCE_TRUE, None, "e"),
             _record_at(_RESOURCE, _SCOPES[3], "f"), _record_at(_RESOURCE_COPY, _SCOPE, "g"),
             _record_at(_RESOURCE_ONE, _SCOPES[5], "h")]
    ours = LogEncoder().encode(batch)
    assert ours == _theirs(batch)
    request = ExportLogsServiceRequest.FromString(ours)
    grouped = [[[r.body.string_value for r in s.log_records] for s in rl.scope_logs]
               for rl in request.resource_logs]
    assert grouped == [[["a", "b", "g"], ["d"], ["f"]], [["c"], ["h"]], [["e"]]]
    first = request.resource_logs[0].resource.attributes
    assert [kv.key for kv in first] == list(_RESOURCE_REORDERED.attributes)


def test_records_from_the_sdk_inside_a_span() -> None:
    """Records the SDK's logger makes (trace ids from the current span, limits applied)."""
    tracer = TracerProvider().get_tracer("t")
    provider = LoggerProvider(resource=_RESOURCE, shutdown_on_exit=False,
                              log_record_limits=LogRecordLimits(max_attributes=3))
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("app.orders", "1.0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with tracer.start_as_current_span("work"):
            logger.emit(body="user 17 did thing", severity_number=SeverityNumber.INFO,
                        severity_text="INFO", attributes={"a": 1, "b": "x", "c": 1.5, "d": True})
        logger.emit(body={"order": {"id": 7, "items": ["x", "y"]}}, event_name="order.placed")
    batch = list(memory.get_finished_logs())
    assert len(batch) == 2
    encoder = LogEncoder()
    assert encoder.encode(batch) == _theirs(batch)
    assert encoder.encode(batch) == _theirs(batch)


def test_an_int_and_the_equal_bool_are_told_apart_in_the_caches() -> None:
    """1 == True and they hash alike, but encode differently: alternated through one
    encoder, in attributes and in severity-less records."""
    encoder = LogEncoder()
    batch = [_record_at(_RESOURCE, _SCOPE, "x") for _ in range(8)]
    for record, value in zip(batch, (1, True, 0, False, 1, True, 2, "1"), strict=True):
        record.log_record.attributes = {"n": value, "code.line.number": 12}
        assert encoder.encode([record]) == _theirs([record])
    assert encoder.encode(batch) == _theirs(batch)


def test_a_severity_without_a_value_is_left_out_as_the_exporter_does() -> None:
    """A plain int severity has no ``.value``: the exporter sends no number for it."""
    record = _record_at(_RESOURCE, None, "x")
    record.log_record.severity_number = 9
    assert LogEncoder().encode([record]) == _theirs([record])
    assert ExportLogsServiceRequest.FromString(_theirs([record])).resource_logs[0] \
        .scope_logs[0].log_records[0].severity_number == 0


def test_encoding_grows_its_caches_only_to_a_bound() -> None:
    encoder = LogEncoder()
    batch = [_record_at(_RESOURCE, _SCOPE, "x") for _ in range(10_000)]
    for n, record in enumerate(batch):
        record.log_record.attributes = {"code.file.path": f"/src/{n}.py", "code.line.number": n}
    assert encoder.encode(batch) == _theirs(batch)
    assert len(encoder._attributes) <= 4096 and len(encoder._int_attributes) <= 4096


def _spoiled(field: str, value: Any) -> Iterator[Any]:
    record = _record_at(_RESOURCE, _SCOPE, "fine")
    setattr(record.log_record, field, value)
    yield record


@pytest.mark.parametrize(("field", "value"), [
    # (bodies and attributes OTLP cannot carry no longer raise: their value is sent as text
    # or left out, see tests/unit/test_encoding_bad_values.py)
    ("severity_text", b"INFO"),  # protobuf takes bytes for a string field; we do not copy it
    ("event_name", 7),
    ("timestamp", True),
    ("timestamp", 1.5),
    ("timestamp", -1),
    ("trace_flags", None),
    ("trace_id", 1 << 128),
])
def test_what_it_cannot_encode_raises(field: str, value: Any) -> None:
    """The exporter wraps us: on an exception it encodes the batch with its own encoder."""
    batch = list(_spoiled(field, value))
    with pytest.raises(Exception):  # noqa: B017 (any exception means: fall back)
        LogEncoder().encode(batch)


def test_an_empty_key_is_left_out_as_protobuf_does() -> None:
    """proto3 writes no empty string field: a KeyValue with key "" carries just its value
    (nested in a body mapping, or in attributes a hand-made record carries)."""
    record = _record_at(_RESOURCE, _SCOPE, "x")
    record.log_record.body = {"": {"": "v"}, "k": ""}
    record.log_record.attributes = {"": 1, "s": ""}
    assert LogEncoder().encode([record]) == _theirs([record])
