"""What the messaging instrumentations share: the messaging conventions' attribute and
metric names, the telemetry handles fetched once at patch time (``Telemetry``: pika and
Celery), and writing the trace context into what a message carries, two ways:
``Injector`` writes into a carrier the instrumentation owns already (pika's copy of the
headers, Celery's message headers, paho-mqtt's user properties), ``with_context`` makes a
copy of the caller's headers with a trace header of theirs in any letter case replaced
(NATS, and gRPC's call metadata). Both use the global propagator and write W3C
``traceparent``/``tracestate`` directly when that is what it would write.

Elsewhere: the message counters in ``_messaging_counts``, the RabbitMQ conventions and
pika's consumers in ``_messaging_rabbitmq``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagate import get_global_textmap, inject
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._http_common import SPAN_KEY
from ._messaging_counts import counts_for

# The buckets the messaging conventions give for both duration histograms (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0)
OPERATION_DURATION = "messaging.client.operation.duration"
PROCESS_DURATION = "messaging.process.duration"

MESSAGING_SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
ANONYMOUS = "messaging.destination.anonymous"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
BODY_SIZE = "messaging.message.body.size"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
now = time.perf_counter


class Telemetry:
    """The tracer, the two duration histograms and the message counts of one
    PatchContext."""

    __slots__ = ("counts", "leaf", "operation", "process", "tracer")

    def __init__(self, context: Any) -> None:
        from opentelemetry.metrics import NoOpMeter
        from opentelemetry.trace import NoOpTracer

        from ..infrastructure.fast_histogram import fast_histogram
        from ..infrastructure.leaf_spans import LeafTracer

        self.tracer = context.tracer or NoOpTracer()
        # send and receive spans have no children: the cheap leaf span when the tracer is
        # the SDK's (None: tracer.start_span)
        self.leaf = LeafTracer.for_tracer(self.tracer)
        meter = context.meter or NoOpMeter("telemetryflow")
        buckets = list(DURATION_BUCKETS)
        self.operation = fast_histogram(meter.create_histogram(
            OPERATION_DURATION, unit="s",
            description="Duration of messaging operation initiated by a producer or "
                        "consumer client.", explicit_bucket_boundaries_advisory=buckets))
        self.process = fast_histogram(meter.create_histogram(
            PROCESS_DURATION, unit="s", description="Duration of processing operation.",
            explicit_bucket_boundaries_advisory=buckets))
        self.counts = counts_for(context.meter)


class Injector:
    """Writes a span's context into a message's headers with the global propagator.

    Why not only ``propagate.inject``: with the default propagators (W3C trace context
    and baggage, the same instances kept in the global composite) the generic path costs
    ~6 µs a message, most of a publish's overhead; writing ``traceparent`` (and
    ``tracestate``, and ``baggage`` when the context has any, through the composite's own
    baggage propagator) directly gives the same headers for a fraction. Any other global
    propagator (b3, jaeger, one set by the program) is called as it is; the global one is
    looked up at every message, so a change made later is followed."""

    __slots__ = ("_baggage", "_direct", "_seen")

    def __init__(self) -> None:
        self._seen: Any = None
        self._direct = False
        self._baggage: Any = None

    def inject(self, carrier: dict[str, Any], span: Any, current: Context) -> None:
        textmap = propagate.get_global_textmap()
        if textmap is not self._seen:
            self._direct, self._baggage = _default_parts(textmap)
            self._seen = textmap
        if not self._direct:
            textmap.inject(carrier, context=Context(current, **{SPAN_KEY: span}))
            return
        found = span.get_span_context()
        if found.is_valid:
            # (%-formatting: half the cost of an f-string's format specs here)
            carrier["traceparent"] = "00-%032x-%016x-%02x" % (  # noqa: UP031
                found.trace_id, found.span_id, found.trace_flags)
            state = found.trace_state
            if state:
                carrier["tracestate"] = state.to_header()
        if self._baggage is not None and _has_baggage(current):
            self._baggage.inject(carrier, context=current)


try:  # the context key baggage lives under: one lookup instead of baggage.get_all's copy
    from opentelemetry.baggage import _BAGGAGE_KEY

    def _has_baggage(context: Context) -> bool:
        return bool(context.get(_BAGGAGE_KEY))
except ImportError:  # pragma: no cover - an API laid out differently
    def _has_baggage(context: Context) -> bool:
        return bool(baggage.get_all(context))


def _default_parts(textmap: Any) -> tuple[bool, Any]:
    """(whether ``textmap`` is the default composite of exactly W3C trace context and
    optionally baggage, that baggage propagator)."""
    if type(textmap) is not CompositePropagator:
        return False, None
    parts = list(getattr(textmap, "_propagators", None) or ())
    kinds = [type(part) for part in parts]
    if kinds == [TraceContextTextMapPropagator]:
        return True, None
    if kinds == [TraceContextTextMapPropagator, W3CBaggagePropagator]:
        return True, parts[1]
    return False, None


def with_context(headers: Mapping[str, Any] | None, context: Context,
                 span: Any = None) -> dict[str, Any]:
    """A copy of ``headers`` carrying the trace headers of ``span`` (default: the span of
    ``context``) and ``context``'s baggage; the caller's dict is never changed (a program
    reuses its headers dict across publishes, and ``msg.respond`` hands over the request's
    own). A trace header the caller set in another letter case (``Traceparent``) is
    replaced, never sent twice."""
    carrier: dict[str, Any] = {}
    if headers:
        fields = _fields()
        for key, value in headers.items():
            if type(key) is str and key.lower() in fields:
                continue
            carrier[key] = value
    if span is None:
        span = get_current_span(context)
    if _default_propagator() and not _has_baggage(context):
        _write_traceparent(carrier, span)
    else:
        inject(carrier, context=set_span_in_context(span, context))
    return carrier


def _write_traceparent(carrier: dict[str, Any], span: Any) -> None:
    """What the W3C trace-context propagator writes for ``span``, without its generic
    path (context lookups, setter calls: ~5 us of a ~7 us ``inject``, on every publish)."""
    found = span.get_span_context()
    if not found.is_valid:
        return
    carrier["traceparent"] = (f"00-{found.trace_id:032x}-{found.span_id:016x}-"
                              f"{found.trace_flags:02x}")
    if found.trace_state:
        carrier["tracestate"] = found.trace_state.to_header()


_W3C_SETS = ((TraceContextTextMapPropagator,),
             (TraceContextTextMapPropagator, W3CBaggagePropagator),
             (W3CBaggagePropagator, TraceContextTextMapPropagator))
_known_default: list[tuple[Any, bool]] = []


def _default_propagator() -> bool:
    """Whether the global propagator is W3C trace context (with or without W3C baggage)
    and nothing else, so ``_write_traceparent`` writes what it would; asked again only
    when the global propagator is replaced."""
    propagator = get_global_textmap()
    if _known_default and _known_default[0][0] is propagator:
        return _known_default[0][1]
    members = getattr(propagator, "_propagators", None) \
        if type(propagator) is CompositePropagator else (propagator,)
    try:
        default = tuple(type(member) for member in members) in _W3C_SETS
    except TypeError:
        default = False
    _known_default[:] = [(propagator, default)]
    return default


_known_fields: list[tuple[Any, frozenset[str]]] = []


def _fields() -> frozenset[str]:
    """The header names the global propagator writes, lower-cased (recomputed only when
    the global propagator is replaced)."""
    propagator = get_global_textmap()
    if _known_fields and _known_fields[0][0] is propagator:
        return _known_fields[0][1]
    try:
        fields = frozenset(name.lower() for name in propagator.fields)
    except Exception:
        fields = frozenset({"traceparent", "tracestate", "baggage"})
    _known_fields[:] = [(propagator, fields)]
    return fields
