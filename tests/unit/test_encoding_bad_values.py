"""A value OTLP cannot carry costs only itself, in our span and log encoders: an attribute
holding one is left out exactly as the exporter's own encoder leaves it out (same bytes); a
name, description or log body holding one, where the exporter's encoder raises (and the
whole batch was lost), is sent as text; every other item of the batch is untouched; each is
counted, and the first of each kind said once on stderr."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import otlp_wire
from tests.otlp_receiver import any_value_to_python, attributes_to_dict

from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder  # isort: skip
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder  # isort: skip

_BIG = 2**70
_LONE = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # 'report-\udcff.csv'
_ESCAPED = "report-\\udcff.csv"
_RESOURCE = Resource({"service.name": "shop"})
# Attribute values OTLP cannot carry, as the SDK lets them through (its attribute checks
# allow any int and any str, and homogeneous sequences of them).
_BAD_VALUES = [_BIG, -_BIG, (1 << 63), -(1 << 63) - 1, (1 << 64) - 1, [1, _BIG], (_BIG,),
               _LONE, [_LONE, "fine"]]


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with nothing counted or said (they are per process)."""
    monkeypatch.setattr(otlp_wire, "_counts", dict.fromkeys(otlp_wire._counts, 0))
    monkeypatch.setattr(otlp_wire, "_said", set())
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _sdk_spans(make: Any, resource: Resource = _RESOURCE) -> list[ReadableSpan]:
    provider = TracerProvider(resource=resource)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("t", "1.0")
    tracer.start_span("before", attributes={"i": 1, "s": "x"}).end()
    make(tracer)
    tracer.start_span("after", attributes={"i": 2, "s": "y"}).end()
    return list(memory.get_finished_spans())


def _theirs(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def _decoded_spans(data: bytes) -> dict[str, Any]:
    request = ExportTraceServiceRequest.FromString(data)
    return {span.name: span for rs in request.resource_spans for ss in rs.scope_spans
            for span in ss.spans}


def _warnings() -> list[str]:
    return [message for level, message in _diagnostics.recorded() if level == "warn"]


@pytest.mark.parametrize("value", _BAD_VALUES)
def test_span_attribute_otlp_cannot_carry_is_left_out_as_the_exporter_leaves_it(
        value: Any) -> None:
    """The span keeps its other attributes, the batch its other spans: the same bytes the
    exporter's encoder writes, without raising."""
    spans = _sdk_spans(lambda t: t.start_span(
        "bad", attributes={"ok": "kept", "bad": value, "n": 3}).end())
    ours = SpanEncoder().encode(spans)
    assert ours == _theirs(spans)
    decoded = _decoded_spans(ours)
    assert set(decoded) == {"before", "bad", "after"}
    assert attributes_to_dict(decoded["bad"].attributes) == {"ok": "kept", "n": 3}
    assert otlp_wire.unencodable_counts()["attributes_left_out"] == 1


def test_the_int64_bounds_themselves_are_kept() -> None:
    spans = _sdk_spans(lambda t: t.start_span(
        "edge", attributes={"max": (1 << 63) - 1, "min": -(1 << 63)}).end())
    decoded = _decoded_spans(SpanEncoder().encode(spans))
    assert attributes_to_dict(decoded["edge"].attributes) == {"max": (1 << 63) - 1,
                                                               "min": -(1 << 63)}
    assert otlp_wire.unencodable_counts() == {"attributes_left_out": 0,
                                              "values_sent_as_text": 0}


def test_values_otlp_can_carry_are_not_counted_and_match() -> None:
    """bytes, nan and infinities are valid OTLP values (nothing left out)."""
    spans = _sdk_spans(lambda t: t.start_span("ok", attributes={
        "b": b"\x00\xff", "nan": math.nan, "inf": math.inf, "ninf": -math.inf}).end())
    assert SpanEncoder().encode(spans) == _theirs(spans)
    assert otlp_wire.unencodable_counts()["attributes_left_out"] == 0


def test_event_link_resource_and_scope_attributes_are_left_out_alike() -> None:
    """Every attribute set of a span: events, links, its resource and its scope."""
    resource = Resource({"service.name": "shop", "bad": _BIG})

    def make(tracer: Any) -> None:
        link = Link(SpanContext(5, 6, True, TraceFlags(1)), {"ok": 2, "bad": _BIG})
        span = tracer.start_span("linked", links=[link])
        span.add_event("event", {"ok": 1, "bad": [_BIG]})
        span.end()

    spans = _sdk_spans(make, resource)
    scoped = ReadableSpan(name="scoped", context=SpanContext(1, 2, False, TraceFlags(1)),
                          resource=resource, start_time=1, end_time=2,
                          instrumentation_scope=InstrumentationScope(
                              "s", "1", None, {"ok": 3, "bad": -_BIG}))
    spans.append(scoped)
    encoder = SpanEncoder()
    ours = encoder.encode(spans)
    assert ours == _theirs(spans)
    assert encoder.encode(spans) == ours  # (cached resource and scope: the same again)
    linked = _decoded_spans(ours)["linked"]
    assert attributes_to_dict(linked.events[0].attributes) == {"ok": 1}
    assert attributes_to_dict(linked.links[0].attributes) == {"ok": 2}
    request = ExportTraceServiceRequest.FromString(ours)
    [resource_spans] = request.resource_spans
    assert attributes_to_dict(resource_spans.resource.attributes) == {"service.name": "shop"}
    assert [attributes_to_dict(ss.scope.attributes) for ss in resource_spans.scope_spans] == [
        {}, {"ok": 3}]


def test_hand_made_span_with_a_value_of_another_type_or_key_matches_the_exporter() -> None:
    """Spans not from the SDK may hold any object, or a key that is not UTF-8."""
    span = ReadableSpan(name="x", context=SpanContext(1, 2, False, TraceFlags(1)),
                        resource=_RESOURCE, start_time=1, end_time=2,
                        attributes={"o": object(), "d": {"n": _BIG}, _LONE: "v", "ok": 1})
    ours = SpanEncoder().encode([span])
    assert ours == _theirs([span])
    assert attributes_to_dict(_decoded_spans(ours)["x"].attributes) == {"ok": 1}


def test_lone_surrogates_in_span_texts_are_escaped_where_the_exporter_loses_the_batch() -> None:
    """A span name, status description and event name: the exporter's encoder raises (the
    batch was lost); ours sends them escaped, everything else of the span and the batch as
    the exporter would."""

    def make(tracer: Any) -> None:
        span = tracer.start_span(f"open {_LONE}", attributes={"ok": "kept", "bad": _BIG})
        span.add_event(f"read {_LONE}", {"ok": 1})
        span.set_status(Status(StatusCode.ERROR, f"cannot read {_LONE}"))
        span.end()

    spans = _sdk_spans(make)
    with pytest.raises(UnicodeEncodeError):
        _theirs(spans)
    decoded = _decoded_spans(SpanEncoder().encode(spans))
    assert set(decoded) == {"before", f"open {_ESCAPED}", "after"}
    bad = decoded[f"open {_ESCAPED}"]
    assert bad.status.message == f"cannot read {_ESCAPED}"
    assert [(e.name, attributes_to_dict(e.attributes)) for e in bad.events] == [
        (f"read {_ESCAPED}", {"ok": 1})]
    assert attributes_to_dict(bad.attributes) == {"ok": "kept"}
    assert (bad.start_time_unix_nano, bad.end_time_unix_nano) == (
        spans[1].start_time, spans[1].end_time)
    fine = [s for s in spans if s.name in ("before", "after")]
    assert _decoded_spans(_theirs(fine)) == {n: s for n, s in decoded.items() if n in
                                             ("before", "after")}
    assert otlp_wire.unencodable_counts() == {"attributes_left_out": 1,
                                              "values_sent_as_text": 3}


def test_each_kind_is_said_once_and_names_no_value() -> None:
    """Many bad values over many batches: one warning for left-out attributes, one for values
    sent as text; the counts go on; the values themselves are never printed."""
    encoder = SpanEncoder()
    for _ in range(3):
        spans = _sdk_spans(lambda t: [t.start_span(f"n {_LONE}", attributes={"big": _BIG})
                                      .end() for _ in range(4)])
        encoder.encode(spans)
    said = sorted(_warnings())
    assert len(said) == 2, said
    assert said[0].startswith("a span name sent as text with its lone surrogates escaped")
    assert said[1].startswith("span attribute 'big' left out of the export: an int past 64 "
                              "bits, which OTLP cannot carry")
    assert all(str(_BIG) not in line and _ESCAPED not in line for line in said)
    assert otlp_wire.unencodable_counts() == {"attributes_left_out": 12,
                                              "values_sent_as_text": 12}


# ----- logs -----------------------------------------------------------------------------


def _record(body: Any = "fine", **fields: Any) -> ReadableLogRecord:
    log = LogRecord(timestamp=1_700_000_000_000_000_001, observed_timestamp=2,
                    severity_number=SeverityNumber.INFO, severity_text="INFO", body=body)
    for name, value in fields.items():
        setattr(log, name, value)
    return ReadableLogRecord(log_record=log, resource=_RESOURCE,
                             instrumentation_scope=InstrumentationScope("app", "1.0"))


def _decoded_logs(data: bytes) -> list[Any]:
    request = ExportLogsServiceRequest.FromString(data)
    return [record for rl in request.resource_logs for sl in rl.scope_logs
            for record in sl.log_records]


def _sdk_records(body: Any, attributes: dict[str, Any]) -> list[ReadableLogRecord]:
    """Through the OpenTelemetry Logs API and the SDK (what a program's emit makes)."""
    provider = LoggerProvider(resource=_RESOURCE)
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("app")
    logger.emit(body="before")
    logger.emit(body=body, attributes=attributes)
    logger.emit(body="after")
    return list(memory.get_finished_logs())


@pytest.mark.parametrize("value", [*_BAD_VALUES, {"n": _BIG}, object()])
def test_log_attribute_otlp_cannot_carry_is_left_out_as_the_exporter_leaves_it(
        value: Any) -> None:
    batch = [_record("before"), _record("bad", attributes={"ok": "kept", "bad": value}),
             _record("after")]
    ours = LogEncoder().encode(batch)
    assert ours == encode_logs(batch).SerializeToString()
    records = _decoded_logs(ours)
    assert [any_value_to_python(r.body) for r in records] == ["before", "bad", "after"]
    assert attributes_to_dict(records[1].attributes) == {"ok": "kept"}
    assert otlp_wire.unencodable_counts()["attributes_left_out"] == 1


@pytest.mark.parametrize(("body", "sent"), [
    (_BIG, str(_BIG)),
    (-_BIG, str(-_BIG)),
    ({"order": {"id": 7, "total": _BIG}}, {"order": {"id": 7, "total": str(_BIG)}}),
    ([1, _BIG, "x", None], [1, str(_BIG), "x", None]),
    (_LONE, _ESCAPED),
    ({_LONE: [_LONE]}, {_ESCAPED: [_ESCAPED]}),
])
def test_log_body_otlp_cannot_carry_is_sent_with_those_parts_as_text(body: Any,
                                                                     sent: Any) -> None:
    """The exporter's encoder raises on these bodies (the batch was lost): ours sends the
    record, only the parts OTLP cannot carry turned into text, and the batch's other records
    as the exporter would."""
    batch = _sdk_records(body, {"ok": "kept"})
    with pytest.raises(ValueError):  # (UnicodeEncodeError included)
        encode_logs(batch).SerializeToString()
    records = _decoded_logs(LogEncoder().encode(batch))
    assert [any_value_to_python(r.body) for r in records] == ["before", sent, "after"]
    assert attributes_to_dict(records[1].attributes) == {"ok": "kept"}
    assert (records[1].time_unix_nano, records[1].severity_number) == (
        batch[1].log_record.timestamp or 0, batch[1].log_record.severity_number or 0)
    fine = [batch[0], batch[2]]
    assert _decoded_logs(encode_logs(fine).SerializeToString()) == [records[0], records[2]]
    assert otlp_wire.unencodable_counts()["values_sent_as_text"] == 1


class _Order:
    def __str__(self) -> str:
        return "Order(7)"


def test_log_body_of_another_type_or_nested_in_itself_is_sent_as_its_text() -> None:
    """An object (its str(), as the logging bridge sends one) and a list holding itself."""
    looped: list[Any] = ["a"]
    looped.append(looped)
    batch = [_record(_Order()), _record({"order": _Order()}), _record(looped)]
    bodies = [any_value_to_python(r.body) for r in _decoded_logs(LogEncoder().encode(batch))]
    assert bodies[:2] == ["Order(7)", {"order": "Order(7)"}]
    depth, node = 0, bodies[2]
    while isinstance(node, list):
        assert node[0] == "a"
        depth, node = depth + 1, node[1]
    assert isinstance(node, str) and depth == 16  # (nesting past 16 levels: its text)


def test_lone_surrogates_in_severity_text_and_event_name_are_escaped() -> None:
    batch = [_record("x", severity_text=f"INFO{_LONE}", event_name=f"ev {_LONE}",
                     attributes={"bad": _BIG, "ok": 1}), _record("y")]
    with pytest.raises(UnicodeEncodeError):
        encode_logs(batch).SerializeToString()
    first, second = _decoded_logs(LogEncoder().encode(batch))
    assert (first.severity_text, first.event_name) == (f"INFO{_ESCAPED}", f"ev {_ESCAPED}")
    assert attributes_to_dict(first.attributes) == {"ok": 1}
    assert any_value_to_python(second.body) == "y"
