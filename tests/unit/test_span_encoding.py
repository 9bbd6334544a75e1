"""Our span encoder writes exactly the bytes the OTLP exporter's own encoder would."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafTracer
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder

_text = st.text(max_size=12)
_int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_scalar = st.one_of(_text, st.booleans(), _int64,
                    st.floats(allow_nan=False), st.binary(max_size=8))
_value = st.one_of(_scalar, st.lists(_text, max_size=3).map(tuple),
                   st.lists(_int64, max_size=3).map(tuple),
                   st.lists(st.booleans(), max_size=3).map(tuple))
_attributes = st.dictionaries(st.text(min_size=1, max_size=10), _value, max_size=5)
_ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
_trace_ids = st.integers(min_value=1, max_value=(1 << 128) - 1)
_times = st.integers(min_value=1, max_value=(1 << 63) - 1)
_state = st.one_of(st.none(), st.just(TraceState()),
                   st.just(TraceState([("vendor", "v1"), ("other", "x-y")])))


@st.composite
def _context(draw: st.DrawFn, remote: bool | None = None) -> SpanContext:
    return SpanContext(draw(_trace_ids), draw(_ids),
                       is_remote=draw(st.booleans()) if remote is None else remote,
                       trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
                       trace_state=draw(_state))


_RESOURCES = [Resource({"service.name": "shop", "process.pid": 42, "host.name": "h"}),
              Resource({"service.name": "other"}, schema_url="https://example/s"),
              Resource({})]
_SCOPES = [None, InstrumentationScope("telemetryflow.redis", "1.0"),
           InstrumentationScope("x", None, "https://example/scope", {"a": "b", "n": 3}),
           InstrumentationScope("")]


@st.composite
def _span(draw: st.DrawFn) -> ReadableSpan:
    start = draw(_times)
    events = draw(st.lists(st.builds(Event, _text, _attributes, st.one_of(st.none(), _times)),
                           max_size=2))
    links = draw(st.lists(st.builds(Link, _context(), _attributes), max_size=2))
    return ReadableSpan(
        name=draw(_text),
        context=draw(_context(remote=False)),
        parent=draw(st.one_of(st.none(), _context())),
        resource=draw(st.sampled_from(_RESOURCES)),
        attributes=draw(_attributes),
        events=events,
        links=links,
        kind=draw(st.sampled_from(list(SpanKind))),
        status=draw(st.sampled_from([Status(StatusCode.UNSET), Status(StatusCode.OK),
                                     Status(StatusCode.ERROR, "boom: ∂"),
                                     Status(StatusCode.ERROR)])),
        start_time=start,
        end_time=draw(st.one_of(st.none(), st.integers(min_value=start, max_value=1 << 63))),
        instrumentation_scope=draw(st.sampled_from(_SCOPES)),
    )


def _theirs(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_span(), max_size=6))
def test_same_bytes_as_the_exporters_encoder(spans: list[ReadableSpan]) -> None:
    assert SpanEncoder().encode(spans) == _theirs(spans)


_SHARED = SpanEncoder()  # its caches warm up over the examples: what they hold must not leak


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_span(), max_size=6))
def test_same_bytes_from_one_encoder_over_many_batches(spans: list[ReadableSpan]) -> None:
    assert _SHARED.encode(spans) == _theirs(spans)


def test_an_int_and_the_equal_bool_are_told_apart_in_the_caches() -> None:
    """1 == True and they hash alike, but an int and a bool encode differently: spans from
    the SDK (BoundedAttributes, read directly) alternating them, through one encoder."""
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for value in (1, True, 0, False, 1, True, 2, "1"):
        tracer.start_span("s", attributes={"n": value, "server.port": 80}).end()
    spans = list(exporter.get_finished_spans())
    encoder = SpanEncoder()
    for span in spans:
        assert encoder.encode([span]) == _theirs([span])
    assert encoder.encode(spans) == _theirs(spans)


def test_cached_encodings_stay_right_across_batches() -> None:
    encoder = SpanEncoder()
    ctx = SpanContext(1, 2, False, TraceFlags(1))
    for i in range(3):
        spans = [ReadableSpan(name="GET", context=ctx, resource=_RESOURCES[i % 3],
                              attributes={"db.system.name": "redis", "n": i},
                              kind=SpanKind.CLIENT, start_time=10, end_time=20,
                              instrumentation_scope=_SCOPES[1], status=Status(StatusCode.UNSET))]
        assert encoder.encode(spans) == _theirs(spans)


def test_encoding_grows_its_caches_only_to_a_bound() -> None:
    encoder = SpanEncoder()
    ctx = SpanContext(1, 2, False, TraceFlags(1))
    spans = [ReadableSpan(name="q", context=ctx, resource=_RESOURCES[0],
                          attributes={"db.query.text": f"SELECT {i}"}, start_time=1,
                          end_time=2, status=Status(StatusCode.UNSET))
             for i in range(10_000)]
    assert encoder.encode(spans) == _theirs(spans)
    assert len(encoder._attributes) <= 4096


@pytest.mark.parametrize("value", [1 << 64, "\ud800", object(), math.inf])
def test_what_it_cannot_encode_raises_or_matches(value: object) -> None:
    # The exporter wraps us: on an exception it encodes the batch with its own encoder.
    # Values it could encode (inf is a double) must come out the same.
    ctx = SpanContext(1, 2, False, TraceFlags(1))
    spans = [ReadableSpan(name="x", context=ctx, resource=_RESOURCES[0],
                          attributes={"k": value}, start_time=1, end_time=2)]
    try:
        ours = SpanEncoder().encode(spans)
    except (TypeError, ValueError, UnicodeEncodeError):
        return
    assert ours == _theirs(spans)


@pytest.mark.parametrize("limits", [SpanLimits(), SpanLimits(max_span_attributes=0),
                                    SpanLimits(max_span_attributes=1, max_events=0,
                                               max_links=0, max_event_attributes=0)])
def test_same_bytes_for_spans_from_sdk_and_leaf_tracers(limits: SpanLimits) -> None:
    """Real SDK and leaf spans (bounded attributes, events, links, drops, shared attribute
    sets), encoded twice by one encoder so the caches are used too."""
    provider = TracerProvider(resource=_RESOURCES[0], span_limits=limits)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("telemetryflow", "1.0")
    leaf = LeafTracer.for_tracer(tracer)
    shared = {"db.system.name": "sqlite", "db.query.text": "SELECT ?", "n": 2}
    link = Link(SpanContext(5, 6, True, TraceFlags(1)), {"l": 1})
    with tracer.start_as_current_span("root", links=[link], attributes={"a": "b", "c": 1}):
        for i in range(3):
            span = leaf.start("SELECT", SpanKind.CLIENT, shared)
            if i == 1:
                span.set_attribute("error.type", "X")
                span.add_event("exception", {"exception.type": "X"})
                span.set_status(Status(StatusCode.ERROR, "bad"))
            span.end()
        sdk_span = tracer.start_span("sdk", attributes={"x": 1.5, "y": (1, 2)})
        sdk_span.add_event("e", {"k": "v", "k2": True})
        sdk_span.end()
    spans = list(memory.get_finished_spans())
    encoder = SpanEncoder()
    assert encoder.encode(spans) == _theirs(spans)
    assert encoder.encode(spans) == _theirs(spans)


class _OtherSpan(ReadableSpan):
    """Not one of the exact types read field by field: encoded through its properties."""


def test_spans_of_other_types_keep_their_drop_counts() -> None:
    provider = TracerProvider(resource=_RESOURCES[0],
                              span_limits=SpanLimits(max_span_attributes=1, max_events=1))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    span = provider.get_tracer("t").start_span("s", attributes={"a": 1, "b": 2, "c": 3})
    span.add_event("one")
    span.add_event("two")
    span.end()
    (plain,) = memory.get_finished_spans()
    other = _OtherSpan(name=plain.name, context=plain.context, resource=plain.resource,
                       attributes=plain._attributes, events=plain._events,
                       start_time=plain.start_time, end_time=plain.end_time,
                       instrumentation_scope=plain.instrumentation_scope)
    assert other.dropped_attributes == 2 and other.dropped_events == 1
    assert SpanEncoder().encode([other]) == _theirs([other])


def test_an_empty_attribute_key_is_left_out_as_protobuf_does() -> None:
    """The SDK drops empty keys, but a hand-made span may carry one: proto3 writes no empty
    key, only the value."""
    ctx = SpanContext(1, 2, False, TraceFlags(1))
    spans = [ReadableSpan(name="x", context=ctx, resource=_RESOURCES[0],
                          attributes={"": "v", "k": 1}, start_time=1, end_time=2)]
    assert SpanEncoder().encode(spans) == _theirs(spans)
