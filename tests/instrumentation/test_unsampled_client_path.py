"""HTTP client calls the sampler drops (sample rate 0; a call inside an unsampled request;
a new trace a ratio does not keep): they skip the span's attributes and the span start
(``SamplerShortcut.decide_child``), yet must behave exactly as a dropped ``start_span``
would: no span exported, the same duration point, the same ``traceparent`` downstream.

The shortcut against the SDK's own ``start_span`` with the same ids; real ``requests`` calls
to a real loopback server with in-memory exporters; and a script under ``telemetryflow-run``
exporting to the real OTLP receiver.
"""

from __future__ import annotations

import functools
import json
import subprocess
import textwrap
from typing import Any

import pytest
import requests
from opentelemetry import context as context_api
from opentelemetry import trace
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
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafTracer
from telemetryflow_bootstrap.instrumentation import _method_wrappers
from telemetryflow_bootstrap.instrumentation._http_common import LazyRootSpan, SamplerShortcut
from telemetryflow_bootstrap.instrumentation.http_client import ClientTelemetry, call_traced
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.instrumentation.requests import _RequestsAdapter

from ..e2e.launcher import LAUNCHER, REPO, python, receiver_env
from .http_fixtures import EchoServer, echo_server, w3c_propagation
from .id_fixtures import Seeded, Sequential

__all__ = ["echo_server", "w3c_propagation"]

CLIENT_DURATION = "http.client.request.duration"
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
RATE_0 = ParentBased(TraceIdRatioBased(0.0))  # what TELEMETRYFLOW_SAMPLE_RATE=0 builds
RATE_1 = ParentBased(ALWAYS_ON)


pytestmark = pytest.mark.usefixtures("w3c_propagation")


def _parent(kind: str) -> Any:
    """The context a client call is made in."""
    if kind == "none":
        return context_api.Context()
    if kind == "lazy root":  # an unsampled request's own span (a new trace, dropped)
        return trace.set_span_in_context(LazyRootSpan(Sequential()))
    remote = kind.startswith("remote")
    flags = TraceFlags.SAMPLED if kind.endswith(" sampled") else TraceFlags.DEFAULT
    if "random" in kind:
        flags |= TraceFlags.RANDOM_TRACE_ID
    parent = SpanContext(TRACE_ID, PARENT_ID, is_remote=remote, trace_flags=TraceFlags(flags),
                         trace_state=TraceState([("v", "1")]))
    return trace.set_span_in_context(NonRecordingSpan(parent))


_PARENTS = ["none", "lazy root", "remote sampled", "remote unsampled", "local sampled",
            "local unsampled", "local unsampled random"]



def _sampler_id(value):
    """A test id that is the same in every process (pytest-xdist compares them): a
    sampler's description, not its repr with an address."""
    return value.get_description() if hasattr(value, "get_description") else None

@pytest.mark.parametrize("parent", _PARENTS)
@pytest.mark.parametrize("sampler", [
    RATE_0, RATE_1, ALWAYS_OFF, DEFAULT_OFF, ParentBasedTraceIdRatio(0.0),
    ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF),
    TraceIdRatioBased(0.0),
], ids=_sampler_id)
@pytest.mark.parametrize("random_ids", [True, False])
def test_decide_child_makes_the_span_start_span_makes(sampler: Any, parent: str,
                                                      random_ids: bool) -> None:
    """Where the shortcut answers "dropped", its span has the very context the SDK's
    ``start_span`` gives a CLIENT span in the same context with the same ids (trace id,
    span id, flags, trace state); where the SDK keeps the span the shortcut never says
    "dropped"."""
    sdk = TracerProvider(sampler=sampler, id_generator=Sequential(random_ids))
    ours = TracerProvider(sampler=sampler, id_generator=Sequential(random_ids))
    expected = sdk.get_tracer("t").start_span("GET", _parent(parent), SpanKind.CLIENT,
                                              {"a": 1})
    shortcut = SamplerShortcut(ours.get_tracer("t"), draws_ids=True)
    found = shortcut.decide_child(_parent(parent))
    if expected.is_recording():
        assert found is None or found.sampled
        return
    assert found is not None and not found.sampled
    span = shortcut.span(found)
    assert span.get_span_context() == expected.get_span_context()
    assert span.get_span_context().trace_state == expected.get_span_context().trace_state
    assert not span.is_recording()


@pytest.mark.parametrize("sampler", [ParentBasedTraceIdRatio(0.5), TraceIdRatioBased(0.3),
                                     ParentBased(TraceIdRatioBased(0.8))], ids=_sampler_id)
def test_a_client_root_at_a_ratio_is_decided_on_the_id_start_span_would_draw(
        sampler: Any) -> None:
    """A call with no span around it, under a ratio: the shortcut draws the trace id once;
    a drop is ``start_span``'s dropped span, a keep is started by the leaf tracer with that
    id. Call by call both tracers (same seeded ids) agree, and both verdicts occur."""
    sdk = TracerProvider(sampler=sampler, id_generator=Seeded(11)).get_tracer("t")
    ours = TracerProvider(sampler=sampler, id_generator=Seeded(11)).get_tracer("t")
    leaf = LeafTracer.for_tracer(ours)
    assert leaf is not None
    shortcut = SamplerShortcut(ours, draws_ids=True)
    verdicts = []
    for _ in range(200):
        expected = sdk.start_span("GET", context_api.Context(), SpanKind.CLIENT, {"a": 1})
        found = shortcut.decide_child(context_api.Context())
        assert found is not None and found.trace_id is not None
        verdicts.append(found.sampled)
        if found.sampled:
            span = leaf.start("GET", SpanKind.CLIENT, {"a": 1}, shared=False,
                              context=context_api.Context(), trace_id=found.trace_id)
        else:
            span = shortcut.span(found)
        assert span.get_span_context() == expected.get_span_context()
        assert span.is_recording() is expected.is_recording() is found.sampled
        span.end()
        expected.end()
    assert 0 < sum(verdicts) < len(verdicts)


# ----- real requests calls ---------------------------------------------------------------

class _Client:
    """``requests`` calls made through our wrapper body with providers of the test's own
    (the process-wide patch, if another test module installed it, stands aside under our
    span: it sees the HTTP suppression key)."""

    def __init__(self, sampler: Any, id_generator: IdGenerator | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=sampler, id_generator=id_generator)
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader(
            preferred_temporality={Histogram: AggregationTemporality.DELTA})
        meter = MeterProvider(metric_readers=[self.reader]).get_meter("t")
        context = PatchContext(tracer=provider.get_tracer("t"), meter=meter,
                               logger_provider=None, config=TelemetryConfig(), handler=None)
        self.telemetry = ClientTelemetry(context, "requests")
        self.adapter = _RequestsAdapter(requests.models.PreparedRequest,
                                        requests.structures.CaseInsensitiveDict)
        self.session = requests.Session()
        self.session.trust_env = False
        send = vars(requests.Session)["send"]
        ours = _method_wrappers.our_wrapper(requests.Session, "send")
        self._send = ours.__wrapped__ if ours is not None else send

    def get(self, url: str) -> requests.Response:
        prepared = self.session.prepare_request(requests.Request("GET", url))
        return call_traced(self.telemetry, self.adapter,
                           functools.partial(self._send, self.session), self.session,
                           (prepared,), {"timeout": 5})

    def points(self) -> list[tuple[dict[str, Any], int]]:
        data = self.reader.get_metrics_data()
        return sorted(((dict(p.attributes), p.count)
                       for rm in (data.resource_metrics if data else ())
                       for sm in rm.scope_metrics for m in sm.metrics
                       if m.name == CLIENT_DURATION for p in m.data.data_points if p.count),
                      key=lambda p: json.dumps(p, sort_keys=True))


def _traceparent(value: str) -> tuple[int, int, int]:
    _, trace_id, span_id, flags = value.split("-")
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


def test_at_rate_one_half_the_sampled_calls_are_exported_and_every_call_counts(
        echo_server: EchoServer) -> None:
    """60 calls with no span around them at ``ParentBasedTraceIdRatio(0.5)``: call by call,
    the ``traceparent`` sent has the ids and verdict the SDK's ``start_span`` gives with the
    same seeded ids (one draw, one verdict: a second draw for a kept call would both shift
    the ids and halve the rate); a call is exported exactly when it says sampled; every call
    gets its duration point, with the same attributes either way."""
    sampler = ParentBasedTraceIdRatio(0.5)
    client = _Client(sampler, Seeded(5))
    sdk = TracerProvider(sampler=sampler, id_generator=Seeded(5)).get_tracer("t")
    before = len(echo_server.seen)
    for _ in range(60):
        expected = sdk.start_span("GET", context_api.Context(), SpanKind.CLIENT).get_span_context()
        assert client.get(f"{echo_server.url}/status/200").status_code == 200
        assert _traceparent(echo_server.last().headers["traceparent"]) == (
            expected.trace_id, expected.span_id, expected.trace_flags)
    sent = [_traceparent(s.headers["traceparent"]) for s in echo_server.seen[before:]]
    assert len(sent) == 60
    exported = {(s.context.trace_id, s.context.span_id)
                for s in client.exporter.get_finished_spans()}
    assert exported == {(t, s) for t, s, flags in sent if flags & 1}
    assert 0 < len(exported) < 60
    bound = TraceIdRatioBased.get_bound_for_rate(0.5)
    for trace_id, _, flags in sent:
        assert bool(flags & 1) is (trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < bound)
    assert client.points() == [({"http.request.method": "GET", "http.response.status_code": 200,
                                 "url.scheme": "http", "server.address": "127.0.0.1",
                                 "server.port": echo_server.port,
                                 "network.protocol.version": "1.1"}, 60)]


def test_a_call_inside_an_unsampled_request_continues_its_trace_with_a_span_id_of_its_own(
        echo_server: EchoServer) -> None:
    """As ``start_span`` does for a drop: the request's trace id, not sampled, and a new span
    id (not the request's); the error status still marks the duration point."""
    client = _Client(RATE_1)
    request_span = NonRecordingSpan(SpanContext(TRACE_ID, PARENT_ID, is_remote=False,
                                                trace_flags=TraceFlags(TraceFlags.DEFAULT)))
    token = context_api.attach(trace.set_span_in_context(request_span))
    try:
        assert client.get(f"{echo_server.url}/status/503").status_code == 503
    finally:
        context_api.detach(token)
    trace_id, span_id, flags = _traceparent(echo_server.last().headers["traceparent"])
    assert (trace_id, flags) == (TRACE_ID, 0) and span_id not in (0, PARENT_ID)
    assert list(client.exporter.get_finished_spans()) == []
    assert client.points() == [({"http.request.method": "GET", "http.response.status_code": 503,
                                 "error.type": "503", "url.scheme": "http",
                                 "server.address": "127.0.0.1",
                                 "server.port": echo_server.port,
                                 "network.protocol.version": "1.1"}, 1)]


def test_under_the_launcher_a_script_at_rate_one_half_exports_its_sampled_calls(
        otlp_receiver: Any, echo_server: EchoServer) -> None:
    """The real thing: a script's ``requests.get`` calls (no span around them) under
    ``TELEMETRYFLOW_SAMPLE_RATE=0.5``: the spans arriving are exactly the calls whose
    ``traceparent`` said sampled; all 40 are counted."""
    code = textwrap.dedent(f"""
        import requests

        session = requests.Session()
        session.trust_env = False
        for _ in range(40):
            session.get("{echo_server.url}/from-script", timeout=5)
        """)
    before = len(echo_server.seen)
    proc = subprocess.run([LAUNCHER, *python("-c", code)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="0.5",
                                           TELEMETRYFLOW_PROCESS_SPAN="false"))
    assert proc.returncode == 0, proc.stderr
    sent = [_traceparent(s.headers["traceparent"]) for s in echo_server.seen[before:]]
    assert len(sent) == 40
    sampled = {format(t, "032x") for t, _, flags in sent if flags & 1}
    assert 0 < len(sampled) < 40
    [point] = otlp_receiver.wait_for_metric(CLIENT_DURATION)
    assert point.count == 40
    spans = otlp_receiver.wait_for_spans(len(sampled))
    assert {s.trace_id for s in spans} == sampled
    assert all(s.name == "GET" for s in spans)
