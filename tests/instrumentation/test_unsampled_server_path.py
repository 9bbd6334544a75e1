"""Server requests the sampler drops (sample rate 0, an unsampled ``traceparent``): they skip
the span attributes and ``start_span`` (``SamplerShortcut``) yet must behave exactly as a
dropped ``start_span`` would: no span exported, the same duration point, the same trace
continuation downstream, and the tracer provider's own sampler decides.

Real Flask, Starlette, FastAPI and Django, the SDK's in-memory exporters with a sampler per
test (hand-added middlewares: the global patches keep their own providers), a real loopback
server for outbound calls; and one run under ``telemetryflow-run`` with the real OTLP
receiver and the real ``requests`` instrumentation.
"""

from __future__ import annotations

import http.client
import json
import random
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import pytest
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation._http_common import SamplerShortcut
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.middleware import (
    REQUEST_KEY,
    FlaskTelemetryMiddleware,
    TelemetryMiddleware,
)

from ..e2e.launcher import LAUNCHER, REPO, python, receiver_env
from .http_fixtures import EchoServer, echo_server, w3c_propagation
from .id_fixtures import Seeded, Sequential
from .server_fixtures import DJANGO_SETTINGS, configure_django, no_client_spans

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from telemetryflow_bootstrap.middleware import FastAPITelemetryMiddleware

__all__ = ["echo_server", "w3c_propagation"]

DURATION = "http.server.request.duration"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SAMPLED_PARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
UNSAMPLED_PARENT = f"00-{TRACE_ID}-{PARENT_ID}-00"
RATE_0 = ParentBased(TraceIdRatioBased(0.0))  # what TELEMETRYFLOW_SAMPLE_RATE=0 builds
RATE_1 = ParentBased(ALWAYS_ON)  # ... and the default (rate 1.0)


@dataclass
class Telemetry:
    """One tracer/meter provider pair with in-memory exporters, as a patch context."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    context: PatchContext

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def points(self) -> list[tuple[dict[str, Any], int]]:
        """(attributes, count) of every duration point since the last call, sorted."""
        data = self.reader.get_metrics_data()
        points = [(dict(p.attributes), p.count)
                  for rm in (data.resource_metrics if data else ())
                  for sm in rm.scope_metrics for m in sm.metrics if m.name == DURATION
                  for p in m.data.data_points if p.count]
        return sorted(points, key=lambda p: json.dumps(p, sort_keys=True))


def telemetry(sampler: Sampler, *, id_generator: IdGenerator | None = None,
              excluded_urls: tuple[str, ...] = ()) -> Telemetry:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler, id_generator=id_generator)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    meter_provider = MeterProvider(metric_readers=[reader])
    context = PatchContext(
        tracer=tracer_provider.get_tracer("telemetryflow"),
        meter=meter_provider.get_meter("telemetryflow"), logger_provider=None,
        config=TelemetryConfig(excluded_urls=excluded_urls), handler=None)
    return Telemetry(exporter, reader, tracer_provider, context)


pytestmark = pytest.mark.usefixtures("w3c_propagation")


def _injected() -> dict[str, str]:
    """What an instrumented HTTP client would send from here (the current context)."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def _traceparent(value: str) -> tuple[str, str, int]:
    """(trace id, parent id, flags) of a ``traceparent`` header."""
    version, trace_id, parent_id, flags = value.split("-")
    assert version == "00"
    return trace_id, parent_id, int(flags, 16)


# ----- Flask (WSGI) ----------------------------------------------------------------------

def _flask_app(t: Telemetry, echo: EchoServer | None = None) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return f"item {item_id}"

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.route("/healthz")
    def healthz() -> str:
        return "ok"

    @app.route("/stream/fail")
    def stream_fail() -> flask.Response:
        def chunks():
            yield "chunk 0\n"
            raise RuntimeError("stream broke")

        return flask.Response(chunks())

    @app.route("/propagated")
    def propagated() -> Any:
        return {**_injected(), "kind": type(flask.request.environ[REQUEST_KEY]).__name__}

    @app.route("/outbound")
    def outbound() -> str:
        assert echo is not None
        connection = http.client.HTTPConnection(echo.host, echo.port, timeout=5)
        try:
            connection.request("GET", "/from-flask", headers=_injected())
            connection.getresponse().read()
        finally:
            connection.close()
        return "called"

    FlaskTelemetryMiddleware(app, client=t.context)
    return app


def _flask_requests(client: flask.testing.FlaskClient) -> None:
    """A mix of outcomes whose duration points must not depend on the sampling."""
    for path, method in (("/items/1", "GET"), ("/items/2", "GET"), ("/items/3", "POST"),
                         ("/nowhere", "GET"), ("/boom", "GET"), ("/items/4", "PURGE"),
                         ("/items/5", "HEAD")):
        client.open(path, method=method).close()


def test_unsampled_flask_requests_export_no_span_and_the_same_duration_points():
    """Rate 0: nothing exported, and every request's duration point is exactly the one a
    sampled request gets (route, status, error.type, ``_OTHER`` method, HEAD)."""
    dropped, kept = telemetry(RATE_0), telemetry(RATE_1)
    _flask_requests(_flask_app(dropped).test_client())
    _flask_requests(_flask_app(kept).test_client())
    assert dropped.spans() == []
    assert len(kept.spans()) == 7
    points = dropped.points()
    assert points == kept.points()
    assert ({"http.request.method": "GET", "url.scheme": "http",
             "http.route": "/items/<int:item_id>", "http.response.status_code": 200}, 2) in points
    assert ({"http.request.method": "GET", "url.scheme": "http", "http.route": "/boom",
             "http.response.status_code": 500, "error.type": "RuntimeError"}, 1) in points
    assert ({"http.request.method": "_OTHER", "url.scheme": "http",
             "http.response.status_code": 405}, 1) in points  # (no rule matched: no route)


def test_sampled_remote_parent_is_still_sampled_at_rate_0():
    """ParentBased: a caller that sampled its span gets our server span as its child."""
    t = telemetry(RATE_0)
    client = _flask_app(t).test_client()
    client.get("/items/9", headers={"traceparent": SAMPLED_PARENT}).close()
    [span] = t.spans()
    assert span.kind is SpanKind.SERVER and span.name == "GET /items/<int:item_id>"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes["url.path"] == "/items/9"  # the attributes were built for it
    assert len(t.points()) == 1


def test_unsampled_remote_parent_is_not_sampled_at_rate_1():
    """ParentBased: a caller that dropped its span makes us drop ours, whatever the rate;
    the request is still counted."""
    t = telemetry(RATE_1)
    client = _flask_app(t).test_client()
    client.get("/items/9", headers={"traceparent": UNSAMPLED_PARENT}).close()
    client.get("/items/9").close()  # no parent: sampled at rate 1
    [span] = t.spans()
    assert span.parent is None
    assert t.points() == [({"http.request.method": "GET", "url.scheme": "http",
                            "http.route": "/items/<int:item_id>",
                            "http.response.status_code": 200}, 2)]


def test_unsampled_request_propagates_its_trace_unsampled(echo_server: EchoServer):
    """An outbound call made inside an unsampled request carries the caller's trace id, a
    new parent id and the not-sampled flag; without a caller, a fresh unsampled trace."""
    t = telemetry(RATE_0)
    client = _flask_app(t, echo_server).test_client()
    with no_client_spans():
        client.get("/outbound", headers={"traceparent": UNSAMPLED_PARENT}).close()
        trace_id, parent_id, flags = _traceparent(echo_server.last().headers["traceparent"])
        assert trace_id == TRACE_ID and parent_id != PARENT_ID and flags == 0
        client.get("/outbound").close()
        trace_id, parent_id, flags = _traceparent(echo_server.last().headers["traceparent"])
        assert trace_id not in (TRACE_ID, "0" * 32) and parent_id != "0" * 16
        assert not flags & 1
    assert t.spans() == []
    assert len(t.points()) == 1  # one attribute set, two requests
    # What the current context says, inside the request (no client instrumentation between)
    headers = client.get("/propagated", headers={"traceparent": UNSAMPLED_PARENT}).get_json()
    assert _traceparent(headers["traceparent"])[::2] == (TRACE_ID, 0)
    assert headers["kind"] == "UnsampledRequest"  # (the shortcut was taken)
    headers = client.get("/propagated", headers={"traceparent": SAMPLED_PARENT}).get_json()
    assert _traceparent(headers["traceparent"])[::2] == (TRACE_ID, 1)
    assert headers["kind"] == "_ServerRequest"


class _Counting(IdGenerator):
    """Random ids, counting how many were drawn."""

    def __init__(self) -> None:
        self.drawn = 0

    def generate_span_id(self) -> int:
        self.drawn += 1
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        self.drawn += 1
        return random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


def test_a_new_unsampled_trace_draws_its_ids_only_when_read(echo_server: EchoServer):
    """A dropped new trace's ids are drawn when something first reads them (a downstream
    call), once, and never for a request nothing reads, its duration point included (a
    first version drew them there, asking the span whether the exemplar filter samples)."""
    ids = _Counting()
    t = telemetry(RATE_0, id_generator=ids)
    client = _flask_app(t, echo_server).test_client()
    client.get("/items/1").close()  # (a new attribute set's first point: the SDK's record)
    ids.drawn = 0
    for _ in range(4):
        client.get("/items/1").close()
    assert ids.drawn == 0
    assert t.points() == [({"http.request.method": "GET", "url.scheme": "http",
                            "http.route": "/items/<int:item_id>",
                            "http.response.status_code": 200}, 5)]
    with no_client_spans():
        client.get("/outbound").close()
    assert ids.drawn == 2  # a trace id and a span id, for the one request that propagated
    assert not _traceparent(echo_server.last().headers["traceparent"])[2] & 1
    assert t.spans() == []


def test_a_lazy_span_shows_one_context_to_every_reader():
    """Eight threads reading a dropped new trace's span context at once all see the same
    one, drawn from the tracer's id generator: random trace id flag, not sampled, not
    remote; ``repr`` and ``get_current_span`` see it too."""
    import threading

    from opentelemetry import trace

    from telemetryflow_bootstrap.instrumentation._http_common import LazyRootSpan

    ids = _Counting()
    shortcut = SamplerShortcut(TracerProvider(sampler=RATE_0, id_generator=ids).get_tracer("t"))
    for _ in range(20):
        verdict = shortcut.decide(None, _PROPAGATOR, DefaultGetter())
        assert verdict is not None and not verdict.sampled
        span = shortcut.span(verdict)
        assert type(span) is LazyRootSpan and not span.is_recording()
        start = threading.Barrier(8)
        seen: list[Any] = []

        def read(span: Any = span, start: threading.Barrier = start,
                 seen: list[Any] = seen) -> None:
            start.wait()
            seen.append(span.get_span_context())

        threads = [threading.Thread(target=read) for _ in range(8)]
        drawn_before = ids.drawn
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # (first readers racing may each draw; only one context is ever seen)
        assert ids.drawn - drawn_before >= 2
        assert len({id(c) for c in seen}) == 1
        assert span.get_span_context() is seen[0]
        context = seen[0]
        assert context.is_valid and not context.is_remote
        assert not context.trace_flags.sampled and context.trace_flags.random_trace_id
        assert trace.get_current_span(trace.set_span_in_context(span)) is span
        assert f"{context!r}" in repr(span)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_during_an_unsampled_request_shares_its_trace():
    """The ids of the request's lazy span are drawn before a fork, so the child (which
    inherits the request's context) propagates the same trace id as the parent."""
    import os

    from opentelemetry import context as context_api
    from opentelemetry import trace

    shortcut = SamplerShortcut(TracerProvider(sampler=RATE_0).get_tracer("t"))
    verdict = shortcut.decide(None, _PROPAGATOR, DefaultGetter())
    assert verdict is not None
    span = shortcut.span(verdict)
    token = context_api.attach(trace.set_span_in_context(span))
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report the trace id it sees, then leave at once
            try:
                os.write(write_end, b"%032x" % trace.get_current_span().get_span_context()
                         .trace_id)
            finally:
                os._exit(0)
        os.close(write_end)
        child_trace = os.read(read_end, 64).decode()
        os.close(read_end)
        os.waitpid(pid, 0)
    finally:
        context_api.detach(token)
    assert child_trace == f"{span.get_span_context().trace_id:032x}"


def test_baggage_of_an_unsampled_request_still_propagates():
    """The parent context of a dropped request is the extracted one, baggage included."""
    t = telemetry(RATE_0)
    client = _flask_app(t).test_client()
    headers = client.get("/propagated", headers={"baggage": "tenant=acme"}).get_json()
    assert headers["baggage"] == "tenant=acme"
    assert not _traceparent(headers["traceparent"])[2] & 1
    assert t.spans() == []


def test_excluded_url_under_rate_0_gets_no_duration_point():
    t = telemetry(RATE_0, excluded_urls=("/healthz",))
    client = _flask_app(t).test_client()
    client.get("/healthz").close()
    client.get("/items/1").close()
    assert [p[0]["http.route"] for p in t.points()] == ["/items/<int:item_id>"]


class _RecordingSampler(Sampler):
    """Drops everything, remembering what it was asked: a sampler of the user's own."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None,
                      trace_state: Any = None) -> SamplingResult:
        self.asked.append(dict(attributes or {}))
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "recording"


class _RatioZeroButMine(TraceIdRatioBased):
    """A subclass of a known sampler may decide otherwise: not recognised."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE)


def test_a_sampler_of_the_users_own_still_gets_to_decide_with_the_attributes():
    """Only the SDK's own sampler classes are decided on before ``start_span``: anything
    else (OTEL_TRACES_SAMPLER from an entry point, a subclass) is asked as always, with the
    span's attributes."""
    sampler = _RecordingSampler()
    t = telemetry(ParentBased(sampler))
    _flask_app(t).test_client().get("/items/3?x=1").close()
    assert [a.get("url.path") for a in sampler.asked] == ["/items/3"]
    assert t.spans() == [] and len(t.points()) == 1

    mine = telemetry(_RatioZeroButMine(0.0))
    _flask_app(mine).test_client().get("/items/3").close()
    assert len(mine.spans()) == 1


def test_sdk_span_metrics_still_count_dropped_spans(monkeypatch: pytest.MonkeyPatch):
    """With the SDK's own span metrics on, ``start_span`` counts every span it starts,
    dropped ones included: such a tracer is left to ``start_span``."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    provider = TracerProvider(sampler=RATE_0, meter_provider=MeterProvider(metric_readers=[reader]))
    context = PatchContext(tracer=provider.get_tracer("telemetryflow"), meter=None,
                           logger_provider=None, config=TelemetryConfig(), handler=None)
    app = flask.Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    FlaskTelemetryMiddleware(app, client=context)
    app.test_client().get("/").close()
    data = reader.get_metrics_data()
    started = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
               if m.name == "otel.sdk.span.started" for p in m.data.data_points]
    assert [(p.attributes["otel.span.sampling_result"], p.value) for p in started] == \
        [("DROP", 1)]


# ----- the shortcut's span is start_span's -----------------------------------------------

_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])



def _sampler_id(value):
    """A test id that is the same in every process (pytest-xdist compares them): a
    sampler's description, not its repr with an address."""
    return value.get_description() if hasattr(value, "get_description") else None

@pytest.mark.parametrize(("sampler", "headers", "shortcut"), [
    (RATE_0, {}, True),
    (RATE_0, {"baggage": "a=1"}, True),
    (RATE_0, {"traceparent": SAMPLED_PARENT}, False),
    (RATE_0, {"traceparent": UNSAMPLED_PARENT, "tracestate": "v=1,w=2"}, True),
    (RATE_0, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-02"}, True),  # random-trace-id
    (RATE_0, {"traceparent": "00-garbage-00"}, True),  # invalid: a root after all
    # looks sampled: the usual way (a wrong guess costs a second extraction, no more)
    (RATE_0, {"traceparent": "00-garbage-01"}, False),
    # a later version's extra field misleads the guess: the extracted parent decides
    (RATE_0, {"traceparent": f"01-{TRACE_ID}-{PARENT_ID}-01-abc0"}, False),
    (RATE_1, {"traceparent": f"01-{TRACE_ID}-{PARENT_ID}-00-abc1"}, False),
    (RATE_1, {}, False),
    (RATE_1, {"traceparent": UNSAMPLED_PARENT, "tracestate": "v=1"}, True),
    (RATE_1, {"traceparent": SAMPLED_PARENT}, False),
    (ALWAYS_OFF, {"traceparent": SAMPLED_PARENT}, True),
    (DEFAULT_OFF, {}, True),
    (DEFAULT_OFF, {"traceparent": SAMPLED_PARENT}, False),
    (ParentBasedTraceIdRatio(0.0), {}, True),
    (TraceIdRatioBased(0.0), {"traceparent": SAMPLED_PARENT}, True),
    (TraceIdRatioBased(0.5), {}, False),  # depends on the trace id: start_span decides
    (ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF),
     {"traceparent": SAMPLED_PARENT}, True),
], ids=_sampler_id)
@pytest.mark.parametrize("random_ids", [True, False])
def test_shortcut_makes_the_span_start_span_makes(sampler, headers, shortcut, random_ids):
    """Two tracers with the same sampler and id sequence, one asked through the shortcut,
    the other through ``start_span``: where the shortcut answers, the spans' contexts are
    equal (trace id, span id, flags, trace state, not remote); elsewhere it stays out."""
    sdk = TracerProvider(sampler=sampler, id_generator=Sequential(random_ids))
    ours = TracerProvider(sampler=sampler, id_generator=Sequential(random_ids))
    parent = _PROPAGATOR.extract(headers)
    expected = sdk.get_tracer("t").start_span("GET", parent, SpanKind.SERVER, {"a": 1})
    shortcut_for = SamplerShortcut(ours.get_tracer("t"))
    found = shortcut_for.decide(headers or None, _PROPAGATOR, DefaultGetter())
    assert (found is not None) is shortcut
    if found is not None:
        assert not found.sampled
        assert not expected.is_recording()
        span = shortcut_for.span(found)
        assert span.get_span_context() == expected.get_span_context()
        assert span.get_span_context().trace_state == expected.get_span_context().trace_state
        assert not span.is_recording()


_RATIO_SAMPLERS = [ParentBasedTraceIdRatio(0.5), TraceIdRatioBased(0.3),
                   ParentBased(TraceIdRatioBased(0.9)),
                   ParentBased(TraceIdRatioBased(0.2), remote_parent_not_sampled=ALWAYS_ON)]


@pytest.mark.parametrize(("sampler", "headers"), [
    *((sampler, {}) for sampler in _RATIO_SAMPLERS),
    *((sampler, {"baggage": "a=1"}) for sampler in _RATIO_SAMPLERS),
    # an invalid parent is a root too (it looks unsampled: extracted where that drops)
    (ParentBasedTraceIdRatio(0.5), {"traceparent": "00-garbage-00"}),
], ids=_sampler_id)
def test_a_ratio_root_is_decided_on_the_id_start_span_would_draw(sampler, headers):
    """A root under a ratio between 0 and 1: the shortcut draws the trace id and asks the
    sampler; a drop is the span ``start_span`` makes, a keep is started by the leaf tracer
    with that id. Request by request, both tracers (same seeded ids) agree on the verdict,
    the trace id, the span id and the flags; and both verdicts occur."""
    from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafTracer

    sdk = TracerProvider(sampler=sampler, id_generator=Seeded(7)).get_tracer("t")
    ours = TracerProvider(sampler=sampler, id_generator=Seeded(7)).get_tracer("t")
    leaf = LeafTracer.for_tracer(ours)
    assert leaf is not None
    shortcut_for = SamplerShortcut(ours, draws_ids=True)
    verdicts = []
    for _ in range(200):
        expected = sdk.start_span("GET", _PROPAGATOR.extract(headers), SpanKind.SERVER,
                                  {"a": 1})
        found = shortcut_for.decide(headers or None, _PROPAGATOR, DefaultGetter())
        assert found is not None and found.trace_id is not None
        verdicts.append(found.sampled)
        if found.sampled:
            span = leaf.start("GET", SpanKind.SERVER, {"a": 1}, shared=False,
                              context=found.parent, trace_id=found.trace_id)
        else:
            span = shortcut_for.span(found)
        assert span.get_span_context() == expected.get_span_context()
        assert span.is_recording() is expected.is_recording() is found.sampled
        span.end()
        expected.end()
    assert 0 < sum(verdicts) < len(verdicts)


@pytest.mark.parametrize("sampler", [ParentBasedTraceIdRatio(0.5), TraceIdRatioBased(0.5)],
                         ids=_sampler_id)
def test_without_the_leaf_tracer_a_ratio_root_goes_the_usual_way(sampler):
    """Only the leaf tracer takes a drawn id: without it nothing is drawn beforehand."""
    tracer = TracerProvider(sampler=sampler).get_tracer("t")
    assert SamplerShortcut(tracer).decide(None, _PROPAGATOR, DefaultGetter()) is None
    # ... and rates the sampler decides alone need no id either way
    for constant in (ParentBasedTraceIdRatio(1.0), TraceIdRatioBased(1.0), RATE_1):
        tracer = TracerProvider(sampler=constant).get_tracer("t")
        assert SamplerShortcut(tracer, draws_ids=True).decide(
            None, _PROPAGATOR, DefaultGetter()) is None


_STREAM_FAILED = {"http.request.method": "GET", "url.scheme": "http",
                  "http.route": "/stream/fail", "http.response.status_code": 200,
                  "error.type": "RuntimeError"}


def test_unsampled_flask_body_that_raises_has_the_point_of_a_sampled_one():
    """A body that raises after the 200: the dropped request's point carries the same
    ``error.type`` as the sampled one's."""
    dropped, kept = telemetry(RATE_0), telemetry(RATE_1)
    for t in (dropped, kept):
        response = _flask_app(t).test_client().get("/stream/fail")
        with pytest.raises(RuntimeError, match="stream broke"):
            response.get_data()
        response.close()
    assert dropped.spans() == []
    assert dropped.points() == kept.points() == [(_STREAM_FAILED, 1)]


def test_flask_at_rate_one_half_counts_every_request_and_exports_the_sampled_ones():
    """A real Flask app at ``ParentBasedTraceIdRatio(0.5)``: every request gets its duration
    point; exactly the requests whose trace id the ratio keeps are exported, each once; the
    others took the unsampled way and still propagate their (unsampled) trace."""
    t = telemetry(ParentBasedTraceIdRatio(0.5))
    client = _flask_app(t).test_client()
    seen = [client.get("/propagated").get_json() for _ in range(60)]
    kinds = {s["kind"] for s in seen}
    assert kinds == {"UnsampledRequest", "_ServerRequest"}
    spans = t.spans()
    sampled = [s for s in seen if _traceparent(s["traceparent"])[2] & 1]
    assert len(spans) == len(sampled) == sum(s["kind"] == "_ServerRequest" for s in seen)
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    for span in spans:
        assert span.context.trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < bound
        assert span.parent is None and span.name == "GET /propagated"
    exported = {format(s.context.trace_id, "032x") for s in spans}
    for s in seen:
        trace_id, _, flags = _traceparent(s["traceparent"])
        assert (trace_id in exported) is bool(flags & 1)
        if not flags & 1:
            assert int(trace_id[16:], 16) >= bound
    assert t.points() == [({"http.request.method": "GET", "url.scheme": "http",
                            "http.route": "/propagated", "http.response.status_code": 200},
                           60)]


# ----- Starlette / FastAPI (ASGI) --------------------------------------------------------

def _starlette_app(t: Telemetry, echo: EchoServer | None = None, *, fastapi: bool = False
                   ) -> Any:
    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"item {request.path_params['item_id']}")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    async def propagated(request: Request) -> JSONResponse:
        return JSONResponse({**_injected(), "kind": type(request.scope[REQUEST_KEY]).__name__})

    async def stream_fail(request: Request) -> StreamingResponse:
        async def chunks():
            yield b"chunk 0\n"
            raise RuntimeError("stream broke")

        return StreamingResponse(chunks())

    def outbound(request: Request) -> PlainTextResponse:  # sync: run in a worker thread
        assert echo is not None
        connection = http.client.HTTPConnection(echo.host, echo.port, timeout=5)
        try:
            connection.request("GET", "/from-starlette", headers=_injected())
            connection.getresponse().read()
        finally:
            connection.close()
        return PlainTextResponse("called")

    if fastapi:
        from fastapi import FastAPI

        app: Any = FastAPI()
        app.api_route("/items/{item_id:int}", methods=["GET", "POST"])(item)
        app.get("/boom")(boom)
        app.get("/propagated")(propagated)
        app.get("/outbound")(outbound)
        app.get("/stream/fail")(stream_fail)
    else:
        app = Starlette(routes=[Route("/items/{item_id:int}", item, methods=["GET", "POST"]),
                                Route("/boom", boom), Route("/propagated", propagated),
                                Route("/outbound", outbound),
                                Route("/stream/fail", stream_fail)])
    return FastAPITelemetryMiddleware(app, client=t.context)


def _asgi_requests(client: TestClient) -> None:
    for path, method in (("/items/1", "GET"), ("/items/2", "POST"), ("/nowhere", "GET"),
                         ("/boom", "GET"), ("/items/3", "PURGE")):
        client.request(method, path)


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_unsampled_asgi_requests_export_no_span_and_the_same_duration_points(fastapi):
    dropped, kept = telemetry(RATE_0), telemetry(RATE_1)
    with no_client_spans():
        for t in (dropped, kept):
            with TestClient(_starlette_app(t, fastapi=fastapi),
                            raise_server_exceptions=False) as client:
                _asgi_requests(client)
    assert dropped.spans() == []
    assert len(kept.spans()) == 5
    points = dropped.points()
    assert points == kept.points()
    assert ({"http.request.method": "GET", "url.scheme": "http", "http.route": "/boom",
             "http.response.status_code": 500, "error.type": "RuntimeError"}, 1) in points
    assert ({"http.request.method": "POST", "url.scheme": "http",
             "http.route": "/items/{item_id:int}", "http.response.status_code": 200},
            1) in points


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_unsampled_asgi_body_that_raises_has_the_point_of_a_sampled_one(fastapi):
    """A streamed body that raises after the 200: the dropped request's point carries the
    same ``error.type`` as the sampled one's."""
    dropped, kept = telemetry(RATE_0), telemetry(RATE_1)
    with no_client_spans():
        for t in (dropped, kept):
            with TestClient(_starlette_app(t, fastapi=fastapi)) as client, \
                    pytest.raises(RuntimeError, match="stream broke"):
                client.get("/stream/fail")
    assert dropped.spans() == []
    assert dropped.points() == kept.points() == [(_STREAM_FAILED, 1)]


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_asgi_parent_sampling_is_respected(fastapi):
    rate_0, rate_1 = telemetry(RATE_0), telemetry(RATE_1)
    with no_client_spans():
        with TestClient(_starlette_app(rate_0, fastapi=fastapi)) as client:
            client.get("/items/5", headers={"traceparent": SAMPLED_PARENT})
        with TestClient(_starlette_app(rate_1, fastapi=fastapi)) as client:
            client.get("/items/5", headers={"traceparent": UNSAMPLED_PARENT})
    [span] = rate_0.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.name == "GET /items/{item_id:int}"
    assert rate_1.spans() == []
    assert len(rate_1.points()) == 1


def test_unsampled_asgi_request_propagates_its_trace_unsampled(echo_server: EchoServer):
    t = telemetry(RATE_0)
    with no_client_spans(), TestClient(_starlette_app(t, echo_server)) as client:
        headers = client.get("/propagated", headers={"traceparent": UNSAMPLED_PARENT}).json()
        trace_id, parent_id, flags = _traceparent(headers["traceparent"])
        assert trace_id == TRACE_ID and parent_id != PARENT_ID and flags == 0
        assert headers["kind"] == "UnsampledRequest"  # (the shortcut was taken)
        client.get("/outbound", headers={"traceparent": UNSAMPLED_PARENT})
        trace_id, parent_id, flags = _traceparent(echo_server.last().headers["traceparent"])
        assert trace_id == TRACE_ID and parent_id != PARENT_ID and flags == 0
        client.get("/outbound")
        trace_id, _, flags = _traceparent(echo_server.last().headers["traceparent"])
        assert trace_id != TRACE_ID and not flags & 1
    assert t.spans() == []


@pytest.mark.parametrize("fastapi", [False, True], ids=["starlette", "fastapi"])
def test_asgi_at_rate_one_half_exports_exactly_the_sampled_requests(fastapi):
    """The ASGI way of a ratio root: one drawn id, one verdict, every request counted."""
    t = telemetry(ParentBasedTraceIdRatio(0.5))
    with no_client_spans(), TestClient(_starlette_app(t, fastapi=fastapi)) as client:
        seen = [client.get("/propagated").json() for _ in range(40)]
    assert {s["kind"] for s in seen} == {"UnsampledRequest", "_ServerRequest"}
    sampled = {_traceparent(s["traceparent"])[0] for s in seen
               if _traceparent(s["traceparent"])[2] & 1}
    assert len(sampled) == sum(s["kind"] == "_ServerRequest" for s in seen)
    assert {format(s.context.trace_id, "032x") for s in t.spans()} == sampled
    assert sum(count for _, count in t.points()) == 40


# ----- Django ----------------------------------------------------------------------------

@pytest.fixture
def django_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Telemetry, Any]]:
    """The test project with our middleware listed by hand, using a rate-0 provider."""
    from telemetryflow_bootstrap.instrumentation import django as django_patch

    configure_django()
    from django.test import Client
    from django.test.utils import override_settings

    t = telemetry(RATE_0)
    monkeypatch.setattr(django_patch, "_core", TelemetryMiddleware(t.context))
    with override_settings(ROOT_URLCONF=f"{DJANGO_SETTINGS.rsplit('.', 1)[0]}.urls",
                           ALLOWED_HOSTS=["*"], MIDDLEWARE=[django_patch.MIDDLEWARE_PATH]):
        yield t, Client()


def test_unsampled_django_requests_are_counted_not_exported(django_client):
    t, client = django_client
    response = client.get("/hello/ann/")
    assert response.status_code == 200
    assert type(response.wsgi_request.META[REQUEST_KEY]).__name__ == "UnsampledRequest"
    assert client.get("/hello/ann/", HTTP_TRACEPARENT=UNSAMPLED_PARENT).status_code == 200
    client.get("/hello/bob/", HTTP_TRACEPARENT=SAMPLED_PARENT)
    [span] = t.spans()
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert t.points() == [({"http.request.method": "GET", "url.scheme": "http",
                            "http.route": "/hello/<str:name>/",
                            "http.response.status_code": 200}, 3)]


def test_unsampled_django_body_that_raises_has_the_error_type(django_client):
    """A streamed Django body that raises after the 200: the dropped request's point
    carries ``error.type``, like a sampled one's."""
    t, client = django_client
    response = client.get("/stream/fail/")
    with pytest.raises(RuntimeError, match="stream broke"):
        b"".join(response.streaming_content)
    assert t.spans() == []
    assert t.points() == [({**_STREAM_FAILED, "http.route": "/stream/fail/"}, 1)]


# ----- under telemetryflow-run, with the real requests instrumentation -------------------

def test_under_the_launcher_rate_0_counts_requests_and_propagates_unsampled(
        otlp_receiver: Any, echo_server: EchoServer):
    """The real thing: ``TELEMETRYFLOW_SAMPLE_RATE=0``, Flask and ``requests`` patched by the
    launcher, OTLP to the real receiver. No span arrives, the duration points do, and the
    ``requests`` call inside the request carries the caller's trace, not sampled."""
    code = textwrap.dedent(f"""
        import flask, requests

        app = flask.Flask(__name__)
        session = requests.Session()
        session.trust_env = False

        @app.route("/outbound")
        def outbound():
            return str(session.get("{echo_server.url}/from-launcher", timeout=5).status_code)

        client = app.test_client()
        print(client.get("/outbound", headers={{"traceparent": "{UNSAMPLED_PARENT}"}}).text)
        print(client.get("/outbound").text)
        """)
    import subprocess

    before = len(echo_server.seen)
    proc = subprocess.run([LAUNCHER, *python("-c", code)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="0",
                                           TELEMETRYFLOW_PROCESS_SPAN="false"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200", "200"]
    first, second = (s.headers["traceparent"] for s in echo_server.seen[before:])
    trace_id, parent_id, flags = _traceparent(first)
    assert trace_id == TRACE_ID and parent_id != PARENT_ID and flags == 0
    trace_id, _, flags = _traceparent(second)
    assert trace_id != TRACE_ID and not flags & 1
    [point] = otlp_receiver.wait_for_metric(DURATION)
    assert point.count == 2
    assert point.attributes == {"http.request.method": "GET", "url.scheme": "http",
                                "http.route": "/outbound", "http.response.status_code": 200}
    assert otlp_receiver.wait_for_metric("http.client.request.duration")[0].count == 2
    assert otlp_receiver.spans() == []


def test_under_the_launcher_rate_one_half_exports_the_sampled_requests_and_counts_all(
        otlp_receiver: Any):
    """``TELEMETRYFLOW_SAMPLE_RATE=0.5`` under the launcher: each request's trace id is drawn
    once and decides once. Exactly the requests the app saw as sampled arrive as spans, each
    with a trace id the ratio keeps; the others took the unsampled way; all are counted."""
    code = textwrap.dedent("""
        import json, flask
        from opentelemetry import propagate

        app = flask.Flask(__name__)

        @app.route("/hello")
        def hello():
            headers = {}
            propagate.inject(headers)
            kind = type(flask.request.environ["telemetryflow.server_request"]).__name__
            return {"traceparent": headers["traceparent"], "kind": kind}

        client = app.test_client()
        print(json.dumps([client.get("/hello").get_json() for _ in range(40)]))
        """)
    import subprocess

    proc = subprocess.run([LAUNCHER, *python("-c", code)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="0.5",
                                           TELEMETRYFLOW_PROCESS_SPAN="false"))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    sampled = {_traceparent(s["traceparent"])[0] for s in seen
               if _traceparent(s["traceparent"])[2] & 1}
    assert {s["kind"] for s in seen} == {"UnsampledRequest", "_ServerRequest"}
    assert len(sampled) == sum(s["kind"] == "_ServerRequest" for s in seen)
    [point] = otlp_receiver.wait_for_metric(DURATION)
    assert point.count == 40
    spans = otlp_receiver.wait_for_spans(len(sampled))
    assert {s.trace_id for s in spans} == sampled
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    for trace_id in {_traceparent(s["traceparent"])[0] for s in seen}:
        assert (int(trace_id[16:], 16) < bound) is (trace_id in sampled)
