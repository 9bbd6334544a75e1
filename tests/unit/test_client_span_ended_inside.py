"""A ``span()`` block whose span the caller ends inside it (``client.end_span(span_id)``):
the block's exit must not end it a second time (OpenTelemetry's "Calling end() on an ended
span" warning) nor count a double end in our own diagnostics, also when an exception then
leaves the block; a block span that was not ended by anyone (evicted from the full table of
open spans) is still ended by its block. Against the SDK's in-memory exporters, sampled and
unsampled spans alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.infrastructure import handler as handler_module
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

RATES = {"sampled": 1.0, "unsampled": 0.0}


@pytest.fixture(params=list(RATES))
def sdk(request: pytest.FixtureRequest) -> Iterator[tuple[TelemetryFlowClient,
                                                         InMemorySpanExporter, bool]]:
    """(a client exporting to memory, its exporter, whether its sampler keeps every span
    or none)."""
    _diagnostics.reset_for_tests()
    spans = InMemorySpanExporter()
    config = TelemetryFlowBuilder().with_service("ended-inside") \
        .with_sample_rate(RATES[request.param]).with_batch_settings(timeout_ms=20) \
        .build_config()
    client = TelemetryFlowClient(
        config, exporters=ExporterOverrides(spans, InMemoryMetricReader(),
                                            InMemoryLogRecordExporter()),
        set_global=False).initialize()
    yield client, spans, request.param == "sampled"
    client.shutdown(2.0)


@pytest.fixture
def said(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Any:
    """``said()``: the warnings so far: OpenTelemetry's (logging) and ours (stderr)."""
    caplog.set_level(logging.WARNING)
    capsys.readouterr()

    def warnings() -> list[str]:
        ours = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("telemetryflow: warning:")]
        return [record.getMessage() for record in caplog.records] + ours

    return warnings


def _exported(client: TelemetryFlowClient, spans: InMemorySpanExporter) -> list[Any]:
    assert client.flush(2.0)
    return list(spans.get_finished_spans())


def test_span_ended_inside_its_block_is_ended_once(sdk: Any, said: Any) -> None:
    """``with client.span("x") as span_id: client.end_span(span_id)``: one end, no
    warning from OpenTelemetry or from us, nothing in ``bad_arguments``, no open span."""
    client, spans, sampled = sdk
    with client.span("x") as span_id:
        client.end_span(span_id)
    assert said() == []
    status = client.get_status()
    assert (status["active_spans"], status["bad_arguments"]) == (0, [])
    exported = _exported(client, spans)
    if sampled:
        [span] = exported
        assert span.name == "x" and format(span.context.span_id, "016x") == span_id
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert exported == []


def test_error_after_the_span_was_ended_inside_its_block(sdk: Any, said: Any) -> None:
    """An exception leaves the block after the caller ended its span (with an error of its
    own or without): re-raised unchanged, the span keeps what it was ended with (the later
    exception is not its), ended once, not a word said."""
    client, spans, sampled = sdk
    late = LookupError("after the span ended")
    with pytest.raises(LookupError) as raised, client.span("plain") as span_id:
        client.end_span(span_id)
        raise late
    assert raised.value is late
    with pytest.raises(LookupError), client.span("failed") as span_id:
        client.end_span(span_id, error=TimeoutError("slow"))
        raise late
    assert said() == []
    assert client.get_status()["bad_arguments"] == []
    by_name = {span.name: span for span in _exported(client, spans)}
    assert sorted(by_name) == (["failed", "plain"] if sampled else [])
    if sampled:
        assert by_name["plain"].status.status_code is StatusCode.UNSET
        assert list(by_name["plain"].events) == []
        assert by_name["failed"].status.status_code is StatusCode.ERROR
        assert by_name["failed"].attributes["error.type"] == "TimeoutError"
        assert [event.attributes["exception.type"] for event in by_name["failed"].events] \
            == ["TimeoutError"]


def test_block_span_evicted_from_the_table_is_still_ended_by_its_block(
        sdk: Any, said: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """More spans open than the table holds evicts the block's span (nobody ended it): the
    block's exit still ends it, exactly once."""
    monkeypatch.setattr(handler_module, "MAX_ACTIVE_SPANS", 2)
    client, spans, sampled = sdk
    with client.span("block"):
        opened = [client.start_span(f"s{i}") for i in range(2)]
    for span_id in opened:
        client.end_span(span_id)
    assert said() == []
    assert client.get_status()["active_spans_evicted"] == 1
    names = sorted(span.name for span in _exported(client, spans))
    assert names == (["block", "s0", "s1"] if sampled else [])


def test_span_ended_at_shutdown_inside_its_block_is_ended_once(sdk: Any, said: Any) -> None:
    """``client.shutdown()`` inside a block ends (and exports) the open block span, marked
    ended at shutdown; the block's exit then leaves it alone."""
    client, spans, sampled = sdk
    with client.span("x"):
        assert client.shutdown(2.0)
    assert said() == []
    exported = list(spans.get_finished_spans())
    if sampled:
        [span] = exported
        assert span.attributes["telemetryflow.span.ended_at_shutdown"] is True
    else:
        assert exported == []
