"""Span ids from ``start_span``/``span()`` behave the same whether the sampler keeps the span
or drops it: the same shape, the same warnings for a double ``end_span``, an unknown id or
an event on an ended span, and the same bounded table. Against the SDK's in-memory
exporters (the unsampled spans must still export nothing)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.infrastructure import handler as handler_module
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

_HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass
class Sdk:
    client: TelemetryFlowClient
    spans: InMemorySpanExporter

    def exported(self) -> list[Any]:
        assert self.client.flush(2.0)
        return list(self.spans.get_finished_spans())


def _make(rate: float, traces: bool = True) -> Sdk:
    spans = InMemorySpanExporter()
    config = TelemetryFlowBuilder().with_service("span-ids").with_sample_rate(rate) \
        .with_signals(traces=traces).with_batch_settings(timeout_ms=20).build_config()
    client = TelemetryFlowClient(
        config, exporters=ExporterOverrides(spans, InMemoryMetricReader(),
                                            InMemoryLogRecordExporter()),
        set_global=False).initialize()
    return Sdk(client, spans)


@pytest.fixture
def made() -> Iterator[list[Sdk]]:
    sdks: list[Sdk] = []
    _diagnostics.reset_for_tests()
    yield sdks
    for sdk in sdks:
        sdk.client.shutdown(2.0)


# "sampled": rate 1; "rate-0": TELEMETRYFLOW_SAMPLE_RATE=0; "dropped-parent": rate 1, but the
# parent-based sampler drops the child of a remote unsampled parent; "no-traces": traces off
# (a no-op tracer, whose spans all carry the invalid id).
KINDS = ["sampled", "rate-0", "dropped-parent", "no-traces"]


@pytest.fixture
def sdk_of(made: list[Sdk]) -> Iterator[Any]:
    tokens: list[Any] = []

    def build(kind: str) -> Sdk:
        sdk = _make(0.0 if kind == "rate-0" else 1.0, traces=kind != "no-traces")
        made.append(sdk)
        if kind == "dropped-parent":
            parent = SpanContext(0x1234, 0x5678, is_remote=True,
                                 trace_flags=TraceFlags(TraceFlags.DEFAULT))
            tokens.append(otel_context.attach(
                trace.set_span_in_context(NonRecordingSpan(parent))))
        return sdk

    yield build
    for token in reversed(tokens):
        otel_context.detach(token)


def _warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("telemetryflow: warning:")]


def _anonymous(lines: list[str], ids: list[str]) -> list[str]:
    for i, span_id in enumerate(ids):
        lines = [line.replace(span_id, f"<id{i}>") for line in lines]
    return lines


@pytest.mark.parametrize("kind", KINDS)
def test_ids_have_one_shape_sampled_or_not(sdk_of: Any, kind: str) -> None:
    """start_span() and span() return 16 lower-case hex digits, a different id each time
    (never the all-zero id), whether or not the span is recorded."""
    client = sdk_of(kind).client
    started = [client.start_span(f"s{i}") for i in range(3)]
    with client.span("outer") as outer, client.span("inner") as inner:
        pass
    ids = [*started, outer, inner]
    assert all(_HEX16.fullmatch(i) for i in ids), ids
    assert "0" * 16 not in ids and len(set(ids)) == len(ids)
    for span_id in started:
        client.end_span(span_id)


@pytest.mark.parametrize("kind", KINDS)
def test_misuse_of_an_id_is_said_the_same_way_sampled_or_not(
        sdk_of: Any, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A double end_span, an event on an ended span (start_span's and span()'s) and a
    well-formed id no span has: each said once, in the same words for every kind (the
    unsampled ones used to say nothing); get_status()["bad_arguments"] lists them."""
    def misuse(client: TelemetryFlowClient) -> list[str]:
        first = client.start_span("first")
        client.add_span_event(first, "fine")
        client.end_span(first)
        for _ in range(2):
            client.end_span(first)
            client.add_span_event(first, "late")
        with client.span("block") as block:
            client.add_span_event(block, "inside")
        client.add_span_event(block, "after-the-block")
        client.end_span("f" * 16)
        client.add_span_event("e" * 16, "nowhere")
        return [first, block]

    client = sdk_of(kind).client
    capsys.readouterr()
    ids = misuse(client)
    said = _anonymous(_warnings(capsys), ids)
    assert said == [
        "telemetryflow: warning: end_span('<id0>'): this span was already ended; ignored "
        "(said once)",
        "telemetryflow: warning: add_span_event('<id0>', 'late'): this span was already "
        "ended; the event is dropped (said once)",
        "telemetryflow: warning: end_span('ffffffffffffffff'): no open span has this id "
        "(not one start_span() returned, or one ended long ago); ignored (said once)",
        "telemetryflow: warning: add_span_event('eeeeeeeeeeeeeeee', 'nowhere'): no open "
        "span has this id (not one start_span() returned, or one ended long ago); ignored "
        "(said once)"]
    assert len(client.get_status()["bad_arguments"]) == 4

@pytest.mark.parametrize("kind", KINDS)
def test_well_used_ids_are_never_said(sdk_of: Any, kind: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Start, event, end; a span() block with an event; many of each: not a word, and no
    open span left behind."""
    client = sdk_of(kind).client
    capsys.readouterr()
    for i in range(50):
        span_id = client.start_span(f"op{i}")
        client.add_span_event(span_id, "step", {"i": i})
        client.end_span(span_id, error=ValueError("x") if i % 2 else None)
        with client.span("block") as block:
            client.add_span_event(block, "inside")
    assert _warnings(capsys) == []
    status = client.get_status()
    assert (status["active_spans"], status["bad_arguments"]) == (0, [])


@pytest.mark.parametrize("kind", ["sampled", "rate-0"])
def test_the_open_span_table_is_bounded_and_evictions_are_said(
        sdk_of: Any, kind: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Unsampled spans left open count against MAX_ACTIVE_SPANS like sampled ones: the
    oldest is evicted and counted, and ending it later says why it is gone."""
    monkeypatch.setattr(handler_module, "MAX_ACTIVE_SPANS", 3)
    client = sdk_of(kind).client
    capsys.readouterr()
    ids = [client.start_span(f"s{i}") for i in range(5)]
    status = client.get_status()
    assert (status["active_spans"], status["active_spans_evicted"]) == (3, 2)
    for span_id in ids:
        client.end_span(span_id)
    [said] = _warnings(capsys)
    assert said.startswith(f"telemetryflow: warning: end_span('{ids[0]}'): this span was "
                           "dropped unended: more than 3 spans were open at once")
    assert client.get_status()["active_spans"] == 0


def test_ended_ids_remembered_are_bounded(made: list[Sdk]) -> None:
    """Remembering ended ids (to tell a double end from an unknown id) does not grow with
    the number of spans: 3x the bound started and ended at rate 0 leave at most twice the
    bound remembered, and the oldest is forgotten."""
    sdk = _make(0.0)
    made.append(sdk)
    bound = handler_module.MAX_ENDED_REMEMBERED
    client, handler = sdk.client, sdk.client.handler
    first = client.start_span("first")
    client.end_span(first)
    for _ in range(3 * bound):
        client.end_span(client.start_span("s"))
    assert handler.remembered_ended_spans() <= 2 * bound
    assert handler.why_no_span(first) is None
    assert client.get_status()["active_spans"] == 0


def test_unsampled_spans_still_export_nothing(made: list[Sdk]) -> None:
    """Tracking an unsampled span does not make it recorded or exported."""
    sdk = _make(0.0)
    made.append(sdk)
    span_id = sdk.client.start_span("dropped")
    sdk.client.add_span_event(span_id, "e")
    sdk.client.end_span(span_id, error=RuntimeError("boom"))
    with sdk.client.span("dropped-too"):
        pass
    assert sdk.exported() == []


def test_ids_of_spans_ended_at_shutdown_are_said_as_such(
        made: list[Sdk], capsys: pytest.CaptureFixture[str]) -> None:
    """A client sharing a handler that was shut down with spans open: ending one says it
    was ended at shutdown (not that the id is unknown)."""
    sdk = _make(0.0)
    made.append(sdk)
    span_id = sdk.client.start_span("open-at-shutdown")
    handler = sdk.client.handler
    handler._end_active_spans()  # (what shutdown does first)
    capsys.readouterr()
    sdk.client.end_span(span_id)
    [said] = _warnings(capsys)
    assert f"end_span('{span_id}'): this span was ended at shutdown; ignored" in said
