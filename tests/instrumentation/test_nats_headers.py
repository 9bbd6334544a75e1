"""The trace headers a NATS message gets: the same as the global propagator writes, in a
copy of the caller's headers, read back in any letter case."""

from __future__ import annotations

from opentelemetry import baggage, propagate
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetryflow_bootstrap.instrumentation._messaging_common import with_context
from telemetryflow_bootstrap.instrumentation._nats_headers import creation_context

SPAN = NonRecordingSpan(SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=False,
    trace_flags=TraceFlags(0x01), trace_state=TraceState([("vendor", "v1")])))


def _what_the_propagator_writes(context: Context) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def test_headers_are_what_the_global_propagator_writes():
    """traceparent and tracestate (the direct path) and baggage (the propagator's path)
    equal the global propagator's output; the caller's dict is untouched."""
    theirs = {"Order-Kind": "retail", "Traceparent": "00-stale"}
    headers = with_context(theirs, Context(), SPAN)
    assert theirs == {"Order-Kind": "retail", "Traceparent": "00-stale"}
    expected = _what_the_propagator_writes(set_span_in_context(SPAN))
    assert headers == {"Order-Kind": "retail", **expected}
    assert set(expected) == {"traceparent", "tracestate"}
    with_baggage = baggage.set_baggage("tenant", "acme")
    headers = with_context(None, with_baggage, SPAN)
    assert headers == _what_the_propagator_writes(set_span_in_context(SPAN, with_baggage))
    assert "baggage" in headers


def test_another_global_propagator_is_used_as_it_is(monkeypatch):
    """With a propagator that is not the W3C default, its own inject writes the headers."""
    class Upper(TraceContextTextMapPropagator):
        def inject(self, carrier, context=None, setter=None):
            carrier["x-upper"] = format(get_current_span(context).get_span_context().span_id,
                                        "016X")

    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", CompositePropagator([Upper()]))
    assert with_context(None, Context(), SPAN) == {"x-upper": "B7AD6B7169203331"}


def test_creation_context_reads_headers_in_any_letter_case():
    """A ``Traceparent`` written by a Go or Java producer is read; no headers: a root."""
    span = TracerProvider().get_tracer("t").start_span("p")
    written = with_context(None, Context(), span)
    canonical = {key.capitalize(): value for key, value in written.items()}
    found = get_current_span(creation_context(canonical)).get_span_context()
    assert found.span_id == span.get_span_context().span_id and found.is_remote
    assert not get_current_span(creation_context(None)).get_span_context().is_valid
