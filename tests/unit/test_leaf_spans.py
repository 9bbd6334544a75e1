"""Leaf spans end up exactly like the SDK's own spans, for every sampler and limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.status import Status, StatusCode

from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafSpan, LeafTracer
from telemetryflow_bootstrap.infrastructure.open_spans import TERMINATED_ATTRIBUTE, OpenSpans

ATTRS = {"db.system.name": "postgresql", "db.query.text": "SELECT * FROM t WHERE id = %s",
         "server.port": 5432, "db.operation.name": "SELECT"}


class _Tagging(Sampler):
    """A custom sampler that adds an attribute and a trace state entry."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None
                      ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "tag": "x"},
                              TraceState([("tagged", "1")]))

    def get_description(self) -> str:
        return "tagging"


class _RecordOnly(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY, kwargs.get("attributes") or args[4])

    def get_description(self) -> str:
        return "record-only"


class _Counting(IdGenerator):
    """The same ids in the same order for every provider: ratio samplers decide alike."""

    def __init__(self) -> None:
        self._n = 0

    def generate_span_id(self) -> int:
        self._n += 1
        return self._n

    def generate_trace_id(self) -> int:
        self._n += 1
        return (self._n * 0x9E3779B97F4A7C15) & ((1 << 128) - 1) or 1


class _MyRatio(TraceIdRatioBased):
    """A subclass: might decide otherwise, so it is asked every time."""


def _provider(sampler: Sampler = ALWAYS_ON, limits: SpanLimits | None = None
              ) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler, resource=Resource({"service.name": "leaf"}),
                              span_limits=limits or SpanLimits(), id_generator=_Counting())
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _in(parent: SpanContext | None) -> Any:
    if parent is None:
        return context_api.attach(context_api.Context())
    return context_api.attach(trace.set_span_in_context(NonRecordingSpan(parent)))


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    events = [(e.name, {k: v for k, v in e.attributes.items() if k != "exception.stacktrace"},
               sorted(e.attributes)) for e in span.events]
    return {
        "name": span.name, "kind": span.kind, "attributes": dict(span.attributes),
        "dropped_attributes": span.dropped_attributes, "events": events,
        "dropped_events": span.dropped_events,
        "status": (span.status.status_code, span.status.description),
        "parent": span.parent, "flags": span.context.trace_flags,
        "trace_state": span.context.trace_state, "remote": span.context.is_remote,
        "resource": span.resource, "scope": span.instrumentation_scope,
        "trace_id_from_parent": span.parent.trace_id == span.context.trace_id
        if span.parent else None,
    }


_REMOTE_SAMPLED = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1),
                              trace_state=TraceState([("vendor", "v")]))
_REMOTE_UNSAMPLED = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
_LOCAL = SpanContext(0x123, 0x456, is_remote=False, trace_flags=TraceFlags(1))

Changes = Callable[[Any], None]


def _error(span: Any) -> None:
    try:
        raise ValueError("duplicate key")
    except ValueError as exc:
        span.set_attributes({"error.type": "ValueError", "db.response.status_code": "23505"})
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, "ValueError: duplicate key"))


_CHANGES: dict[str, Changes] = {
    "none": lambda span: None,
    "extra attribute": lambda span: span.set_attributes({"db.operation.batch.size": 3}),
    "error": _error,
    "ok then error": lambda span: (span.set_status(StatusCode.OK),
                                   span.set_status(StatusCode.ERROR, "late")),
    "renamed": lambda span: span.update_name("SELECT t"),
}
_SAMPLERS = {"always on": ALWAYS_ON, "always off": ALWAYS_OFF,
             "parent/ratio 0": ParentBased(TraceIdRatioBased(0.0)),
             "parent/ratio 1": ParentBased(TraceIdRatioBased(1.0)),
             "custom": _Tagging(), "record only": _RecordOnly(),
             "ratio 0.5": TraceIdRatioBased(0.5),
             "parent/ratio 0.5": ParentBasedTraceIdRatio(0.5),
             "subclass": _MyRatio(0.5),
             "parent/off, remote sampled on": ParentBased(ALWAYS_OFF,
                                                          remote_parent_not_sampled=ALWAYS_ON)}
_PARENTS = {"root": None, "remote sampled": _REMOTE_SAMPLED,
            "remote unsampled": _REMOTE_UNSAMPLED, "local": _LOCAL}


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "owned"])
@pytest.mark.parametrize("change", list(_CHANGES))
@pytest.mark.parametrize("parent", list(_PARENTS))
@pytest.mark.parametrize("sampler", list(_SAMPLERS))
def test_a_leaf_span_is_what_the_sdk_would_have_made(sampler: str, parent: str,
                                                     change: str, shared: bool) -> None:
    results = []
    for use_leaf in (False, True):
        provider, exporter = _provider(_SAMPLERS[sampler])
        tracer = provider.get_tracer("telemetryflow", "1.0")
        token = _in(_PARENTS[parent])
        try:
            contexts = []
            for _ in range(8):  # several trace ids: a ratio sampler keeps some, drops some
                if use_leaf:
                    leaf = LeafTracer.for_tracer(tracer)
                    assert leaf is not None
                    span = leaf.start("SELECT", SpanKind.CLIENT, ATTRS, shared=shared)
                else:
                    span = tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=ATTRS)
                _CHANGES[change](span)
                contexts.append((span.is_recording(), span.get_span_context()))
                span.end()
        finally:
            context_api.detach(token)
        results.append((contexts, [_comparable(s) for s in exporter.get_finished_spans()]))
    assert results[1] == results[0]


def test_the_sdks_own_samplers_are_decided_without_a_call_others_are_asked() -> None:
    for name, sampler in _SAMPLERS.items():
        leaf = LeafTracer.for_tracer(_provider(sampler)[0].get_tracer("t"))
        known = name not in ("custom", "record only", "subclass")
        assert (leaf._decide is not None) is known, name


def test_attribute_limits_apply_as_in_the_sdk() -> None:
    limits = SpanLimits(max_span_attributes=2, max_span_attribute_length=5, max_events=1,
                        max_event_attributes=1)
    results = []
    for use_leaf in (False, True):
        provider, exporter = _provider(limits=limits)
        tracer = provider.get_tracer("t")
        span = (LeafTracer.for_tracer(tracer).start("q", SpanKind.CLIENT, ATTRS) if use_leaf
                else tracer.start_span("q", kind=SpanKind.CLIENT, attributes=ATTRS))
        span.add_event("one", {"a": 1, "b": 2})
        span.add_event("two")
        span.set_attribute("late", "long value")
        span.end()
        results.append([_comparable(s) for s in exporter.get_finished_spans()])
    assert results[1] == results[0]
    assert results[0][0]["dropped_attributes"] > 0
    assert results[0][0]["dropped_events"] == 1


def test_changing_one_span_leaves_the_shared_attributes_alone() -> None:
    provider, exporter = _provider()
    leaf = LeafTracer.for_tracer(provider.get_tracer("t"))
    attributes = dict(ATTRS)
    first = leaf.start("a", SpanKind.CLIENT, attributes)
    first.set_attribute("error.type", "X")
    first.end()
    second = leaf.start("b", SpanKind.CLIENT, attributes)
    second.end()
    first_out, second_out = exporter.get_finished_spans()
    assert first_out.attributes["error.type"] == "X"
    assert "error.type" not in second_out.attributes
    assert attributes == ATTRS


def test_an_ended_span_ignores_changes_and_a_second_end() -> None:
    provider, exporter = _provider()
    span = LeafTracer.for_tracer(provider.get_tracer("t")).start("a", SpanKind.CLIENT, ATTRS)
    span.end()
    span.set_attribute("late", 1)
    span.set_status(StatusCode.ERROR)
    span.add_event("late")
    span.end()
    (out,) = exporter.get_finished_spans()
    assert "late" not in out.attributes and not out.events
    assert out.status.status_code is StatusCode.UNSET
    assert not span.is_recording()


def test_spans_open_at_termination_are_ended_and_marked() -> None:
    provider, exporter = _provider()
    open_spans = OpenSpans()
    provider.add_span_processor(open_spans)
    span = LeafTracer.for_tracer(provider.get_tracer("t")).start("slow", SpanKind.CLIENT, ATTRS)
    assert isinstance(span, LeafSpan)
    assert open_spans.end_all() == 1
    (out,) = exporter.get_finished_spans()
    assert out.attributes[TERMINATED_ATTRIBUTE] is True
    assert open_spans.end_all() == 0


@pytest.fixture
def _internal_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    yield


def test_not_for_tracers_it_does_not_know() -> None:
    assert LeafTracer.for_tracer(trace.NoOpTracer()) is None
    assert LeafTracer.for_tracer(trace.ProxyTracer("x")) is None
    assert LeafTracer.for_tracer(None) is None


@pytest.mark.usefixtures("_internal_metrics")
def test_not_when_the_sdk_counts_its_own_spans() -> None:
    provider, _ = _provider()
    assert LeafTracer.for_tracer(provider.get_tracer("t")) is None


def test_owned_attributes_are_neither_cached_nor_shared() -> None:
    """A request's own attributes (shared=False): validated for that span alone, never
    kept in the cache of shared sets (which would keep every request's dict alive)."""
    provider, exporter = _provider()
    leaf = LeafTracer.for_tracer(provider.get_tracer("t"))
    for i in range(50):
        span = leaf.start("GET", SpanKind.CLIENT, {"url.full": f"http://x/{i}"}, shared=False)
        span.set_attribute("http.response.status_code", 200)
        span.end()
    assert leaf._frozen == {}
    urls = [s.attributes["url.full"] for s in exporter.get_finished_spans()]
    assert urls == [f"http://x/{i}" for i in range(50)]


# ----- server spans: an explicit parent context, links, changes from other threads ----------

SERVER_ATTRS = {"http.request.method": "GET", "url.scheme": "http", "url.path": "/orders/7",
                "server.address": "shop.example", "server.port": 8080,
                "user_agent.original": "curl/8", "client.address": "10.0.0.1"}


class _OnStart(SimpleSpanProcessor):
    """Remembers the parent context each span started with (what processors are told)."""

    def __init__(self) -> None:
        super().__init__(InMemorySpanExporter())
        self.parents: list[Any] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.parents.append(parent_context)


def _server_finish(span: Any) -> None:
    """What the server core does when a request ends (a 500 with the exception)."""
    span.update_name("GET /orders/{id}")
    span.set_attributes({"http.route": "/orders/{id}", "http.response.status_code": 500})
    _error(span)


@pytest.mark.parametrize("change", ["none", "server finish", "links"])
@pytest.mark.parametrize("parent", list(_PARENTS))
@pytest.mark.parametrize("sampler", list(_SAMPLERS))
def test_a_leaf_server_span_under_an_explicit_parent_is_the_sdks(sampler: str, parent: str,
                                                                 change: str) -> None:
    """The parent comes from the extracted request headers (``context=``), not from the
    current context, which holds another span that must not matter."""
    changes: dict[str, Changes] = {
        "none": lambda span: None,
        "server finish": _server_finish,
        "links": lambda span: (span.add_link(_LOCAL, {"why": "batch"}),
                               span.add_link(trace.INVALID_SPAN_CONTEXT),
                               span.add_link(trace.INVALID_SPAN_CONTEXT, {"kept": True}),
                               span.add_link(_REMOTE_SAMPLED)),
    }
    results = []
    for use_leaf in (False, True):
        provider, exporter = _provider(_SAMPLERS[sampler])
        on_start = _OnStart()
        provider.add_span_processor(on_start)
        tracer = provider.get_tracer("telemetryflow", "1.0")
        parent_span = _PARENTS[parent]
        explicit = (context_api.Context() if parent_span is None
                    else trace.set_span_in_context(NonRecordingSpan(parent_span)))
        token = _in(SpanContext(0x999, 0x888, is_remote=False, trace_flags=TraceFlags(1)))
        try:
            contexts = []
            for _ in range(8):
                if use_leaf:
                    span = LeafTracer.for_tracer(tracer).start(
                        "GET", SpanKind.SERVER, dict(SERVER_ATTRS), shared=False,
                        context=explicit)
                else:
                    span = tracer.start_span("GET", explicit, SpanKind.SERVER,
                                             dict(SERVER_ATTRS))
                changes[change](span)
                contexts.append((span.is_recording(), span.get_span_context()))
                span.end()
        finally:
            context_api.detach(token)
        spans = exporter.get_finished_spans()
        links = [[(link.context, dict(link.attributes)) for link in s.links] for s in spans]
        results.append((contexts, [_comparable(s) for s in spans], links,
                        [s.dropped_links for s in spans],
                        [p is explicit for p in on_start.parents]))
    assert results[1] == results[0]


def test_link_limits_apply_as_in_the_sdk() -> None:
    limits = SpanLimits(max_links=2, max_link_attributes=1, max_attribute_length=3)
    results = []
    for use_leaf in (False, True):
        provider, exporter = _provider(limits=limits)
        tracer = provider.get_tracer("t")
        span = (LeafTracer.for_tracer(tracer).start("s", SpanKind.SERVER, {}, shared=False)
                if use_leaf else tracer.start_span("s", kind=SpanKind.SERVER))
        for i in range(4):
            span.add_link(SpanContext(0x10 + i, 0x20 + i, is_remote=True),
                          {"a": "long value", "b": i})
        span.end()
        span.add_link(_LOCAL)  # after the end: ignored
        (out,) = exporter.get_finished_spans()
        results.append(([(link.context, dict(link.attributes), link.attributes.dropped)
                         for link in out.links], out.dropped_links))
    assert results[1] == results[0]
    assert results[0][1] == 2


def test_a_server_span_takes_attributes_and_events_from_many_threads() -> None:
    """Application threads may enrich the request's span while it runs: with its own
    attribute set (shared=False) nothing is lost."""
    import threading

    provider, exporter = _provider()
    span = LeafTracer.for_tracer(provider.get_tracer("t")).start(
        "GET", SpanKind.SERVER, dict(SERVER_ATTRS), shared=False)

    def enrich(n: int) -> None:
        for i in range(200):
            span.set_attribute(f"t{n}.a{i}", i)
            span.add_event(f"t{n}.e{i}")

    threads = [threading.Thread(target=enrich, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    span.end()
    (out,) = exporter.get_finished_spans()
    assert len(out.attributes) == min(128, len(SERVER_ATTRS) + 800)  # the default limit
    assert out.dropped_attributes == len(SERVER_ATTRS) + 800 - 128
    assert len(out.events) + out.dropped_events == 800


def test_a_forked_childs_resource_reaches_leaf_spans_made_by_an_earlier_leaf_tracer() -> None:
    """A pre-forking server builds its instrumentation (and LeafTracers) in the master; after
    the fork each worker's spans must carry the worker's process.pid, which the provider
    pushes to its tracers."""
    provider, exporter = _provider()
    leaf = LeafTracer.for_tracer(provider.get_tracer("t"))
    provider._update_resource(Resource({"process.pid": 4242}))
    leaf.start("q", SpanKind.CLIENT, ATTRS).end()
    (out,) = exporter.get_finished_spans()
    assert out.resource.attributes["process.pid"] == 4242


@pytest.mark.parametrize("attributes", [
    {"a": "x", "n": 1, "f": 1.5, "b": True},          # plain: taken as it is
    {"a": "x", "none": None},                          # None dropped (and counted)
    {"a": "x", "list": ["p", "q"], "mixed": [1, "x"]},  # sequences cleaned
    {"": "empty key", "a": "x"},                       # invalid key dropped
    {f"k{i}": i for i in range(130)},                  # past the default limit of 128
], ids=["plain", "none", "sequences", "empty key", "too many"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "owned"])
def test_attribute_sets_are_kept_as_the_sdk_keeps_them(attributes: dict[str, Any],
                                                       shared: bool) -> None:
    results = []
    for use_leaf in (False, True):
        provider, exporter = _provider()
        tracer = provider.get_tracer("t")
        span = (LeafTracer.for_tracer(tracer).start("q", SpanKind.SERVER, dict(attributes),
                                                   shared=shared) if use_leaf
                else tracer.start_span("q", kind=SpanKind.SERVER, attributes=dict(attributes)))
        span.set_attribute("late", "x")
        span.end()
        (out,) = exporter.get_finished_spans()
        results.append((list(out.attributes.items()), out.dropped_attributes))
    assert results[1] == results[0]
