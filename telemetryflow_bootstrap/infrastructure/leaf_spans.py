"""Cheap spans for leaf client calls (a database statement, a Redis command), also used for
server spans (a request: see ``middleware.TelemetryMiddleware``).

Why: such calls are the hottest path we instrument — a service makes thousands a second —
and the SDK's general-purpose span costs ~20 µs of the program's own thread: it validates
and copies the attributes into a locked mapping for every span, allocates locks and bounded
lists for events and links nobody adds, and copies the whole span again when it ends.
A leaf span has the same life without that: the sampler, id generator, limits, resource,
scope and span processors of the SDK tracer are used exactly as the SDK uses them, but the
attributes a call site prepares once are validated once (``_frozen``) and shared, read-only,
by every span made from them, and only a span that is changed after it starts (an error,
an extra attribute) gets its own copy.

What the span processors and exporters receive is an ordinary ``ReadableSpan``; tests
compare what arrives from both kinds of span field by field. A tracer that is not the SDK's
(or an SDK whose tracer lacks what this relies on) gets no ``LeafTracer``, and its callers
use ``tracer.start_span`` as before.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from time import time_ns
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import Tracer as _SdkTracer
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", None)
_FROZEN_LIMIT = 2048
_NEEDED = ("sampler", "resource", "span_processor", "id_generator", "_span_limits",
           "_instrumentation_scope", "_is_enabled", "instrumentation_info")


class LeafTracer:
    """Starts ``LeafSpan``s with one SDK tracer's sampler, ids, limits and processors."""

    __slots__ = ("_decide", "_frozen", "_ids", "_info", "_limits", "_processor",
                 "_random_ids", "_sampler", "_scope", "_tracer")

    def __init__(self, tracer: Any) -> None:
        self._tracer = tracer
        self._sampler = tracer.sampler
        self._ids = tracer.id_generator
        self._processor = tracer.span_processor
        self._limits = tracer._span_limits
        self._scope = tracer._instrumentation_scope
        self._info = tracer.instrumentation_info
        is_random = getattr(self._ids, "is_trace_id_random", None)
        self._random_ids = bool(_RANDOM is not None and is_random is not None and is_random())
        self._frozen: dict[int, tuple[Mapping[str, Any], BoundedAttributes]] = {}
        self._decide = decider(self._sampler)

    @classmethod
    def for_tracer(cls, tracer: Any) -> LeafTracer | None:
        """A LeafTracer for an SDK tracer, else None (the caller uses the tracer itself).
        Also None when the SDK's own span metrics are on: only its spans feed them."""
        if not isinstance(tracer, _SdkTracer) or not all(hasattr(tracer, n) for n in _NEEDED):
            return None
        if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() \
                == "true":
            return None
        return cls(tracer)

    def start(self, name: str, kind: SpanKind, attributes: Mapping[str, Any],
              shared: bool = True, context: Context | None = None,
              trace_id: int | None = None) -> Any:
        """Start a span as ``tracer.start_span(name, context, kind, attributes)`` would
        (``context`` None: the current one). ``shared``: ``attributes`` is a set prepared
        once and used for many spans, never changed afterwards (its validated copy is kept
        and shared); else it is this span's own (a request's URL), validated for it alone.
        ``trace_id``: the id a root span gets, drawn from this tracer's id generator by a
        caller that asked the sampler beforehand (``SamplerShortcut``); else one is drawn
        here, as the SDK does."""
        parent = trace_api.get_current_span(context).get_span_context()
        if not self._tracer._is_enabled():
            return NonRecordingSpan(parent)
        if parent is None or not parent.is_valid:
            parent = None
            if trace_id is None:
                trace_id = self._ids.generate_trace_id()
        else:
            trace_id = parent.trace_id
        decide = self._decide
        if decide is not None:  # one of the SDK's samplers: its verdict, without the call
            sampled = recording = decide(parent, trace_id)
            trace_state = None if parent is None else parent.trace_state
            sampled_attributes: Mapping[str, Any] = attributes
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes,
                                                 ())
            sampled = result.decision.is_sampled()
            recording = result.decision.is_recording()
            trace_state = result.trace_state
            sampled_attributes = result.attributes
        flags = _SAMPLED if sampled else _NOT_SAMPLED
        if _RANDOM is not None and (self._random_ids if parent is None
                                    else parent.trace_flags.random_trace_id):
            flags = TraceFlags(flags | _RANDOM)
        span_context = SpanContext(trace_id, self._ids.generate_span_id(), is_remote=False,
                                   trace_flags=flags, trace_state=trace_state)
        if not recording:
            return NonRecordingSpan(span_context)
        if shared and (sampled_attributes is attributes or sampled_attributes == attributes):
            frozen = self._frozen_for(attributes)
        else:  # the span's own set, or the sampler added or changed some
            frozen, shared = self._bounded(sampled_attributes), False
        span = LeafSpan(self, name, span_context, parent, kind, frozen, shared)
        self._processor.on_start(span, parent_context=context)
        return span

    def _bounded(self, attributes: Mapping[str, Any] | None) -> BoundedAttributes:
        limits = self._limits
        return _bounded_attributes(limits.max_span_attributes, attributes, False,
                                   limits.max_span_attribute_length)

    def _frozen_for(self, attributes: Mapping[str, Any]) -> BoundedAttributes:
        cache = self._frozen
        known = cache.get(id(attributes))
        if known is not None and known[0] is attributes:
            return known[1]
        limits = self._limits
        frozen = _bounded_attributes(limits.max_span_attributes, attributes, True,
                                     limits.max_span_attribute_length)
        if len(cache) >= _FROZEN_LIMIT:
            cache.clear()
        cache[id(attributes)] = (attributes, frozen)  # keeps the dict alive: ids stay unique
        return frozen


_PLAIN = (str, int, float, bool)


def _bounded_attributes(maxlen: int | None, attributes: Mapping[str, Any] | None,
                        immutable: bool, max_value_len: int | None) -> BoundedAttributes:
    """``BoundedAttributes(maxlen, attributes, immutable, max_value_len)``. Our call sites'
    sets are plain: non-empty string keys, str/int/float/bool values, within the limits and
    with no value length limit; validating each value again (a generic recursive pass,
    ~0.4 µs an attribute) changes nothing for them, so they are taken as they are. Any
    other set is validated as the SDK does."""
    if (max_value_len is None and type(attributes) is dict
            and (maxlen is None or len(attributes) <= maxlen)
            and all(type(k) is str and k and type(v) in _PLAIN
                    for k, v in attributes.items())):
        bounded = BoundedAttributes(maxlen, None, immutable=False)
        bounded._dict.update(attributes)
        bounded._immutable = immutable
        return bounded
    return BoundedAttributes(maxlen, attributes, immutable=immutable,
                             max_value_len=max_value_len)


_Decide = Callable[[SpanContext | None, int], bool]
# A ParentBased sampler's delegates, in this order: no parent; remote parent sampled, not
# sampled; local parent sampled, not sampled (its private names: one without them is not
# recognised). Shared with ``instrumentation._http_common.SamplerShortcut``.
SAMPLER_DELEGATES = ("_root", "_remote_parent_sampled", "_remote_parent_not_sampled",
                     "_local_parent_sampled", "_local_parent_not_sampled")


def static_sampler_classes() -> tuple[type, ...]:
    """The exact classes of the SDK's always-on/off samplers (a subclass may decide
    otherwise, so only these are recognised)."""
    from opentelemetry.sdk.trace import sampling

    return _classes(sampling, "StaticSampler", "_AlwaysOff", "_AlwaysOn")


def parent_based_sampler_classes() -> tuple[type, ...]:
    from opentelemetry.sdk.trace import sampling

    return _classes(sampling, "ParentBased", "ParentBasedTraceIdRatio",
                    "_ParentBasedAlwaysOff", "_ParentBasedAlwaysOn")


def decider(sampler: Any, depth: int = 0) -> _Decide | None:
    """``sampled(parent, trace_id)`` for a sampler made only of the SDK's own classes
    (always on/off, trace-id ratio, parent-based over these: every sampler the
    configuration can name), whose verdict depends on nothing else and which return the
    span's attributes unchanged and the parent's trace state; None for any other (a
    subclass included), which is then asked as usual."""
    from opentelemetry.sdk.trace import sampling

    kind = type(sampler)
    if kind in static_sampler_classes():
        decision = getattr(sampler, "_decision", None)
        if decision is sampling.Decision.RECORD_AND_SAMPLE:
            return lambda parent, trace_id: True
        if decision is sampling.Decision.DROP:
            return lambda parent, trace_id: False
        return None
    if kind is sampling.TraceIdRatioBased:
        bound, limit = sampler.bound, sampling.TraceIdRatioBased.TRACE_ID_LIMIT
        return lambda parent, trace_id: trace_id & limit < bound
    if kind in parent_based_sampler_classes() and depth < 4:
        found = [decider(getattr(sampler, name, None), depth + 1)
                 for name in SAMPLER_DELEGATES]
        if any(d is None for d in found):
            return None
        root, remote_yes, remote_no, local_yes, local_no = found

        def parent_based(parent: SpanContext | None, trace_id: int) -> bool:
            if parent is None:
                return root(parent, trace_id)  # type: ignore[misc]
            if parent.is_remote:
                chosen = remote_yes if parent.trace_flags.sampled else remote_no
            else:
                chosen = local_yes if parent.trace_flags.sampled else local_no
            return chosen(parent, trace_id)  # type: ignore[misc]

        return parent_based
    return None


def _classes(module: Any, *names: str) -> tuple[type, ...]:
    return tuple(c for c in (getattr(module, n, None) for n in names) if isinstance(c, type))


class LeafSpan(trace_api.Span, ReadableSpan):
    """A recording span without a lock of its own: attributes shared until changed (a
    database call's prepared set), or its own from the start (``shared=False``: a request's
    URL, a server span). With its own set, other threads may add attributes, events and
    links while it runs (the bounded containers lock); the thread that started it ends it.
    It is its own ``ReadableSpan`` (as the SDK's span is, with the same fields): once ended
    it ignores every change, so the processors get the span itself rather than a copy made
    at ``end``."""

    def __init__(self, tracer: LeafTracer, name: str, context: SpanContext,
                 parent: SpanContext | None, kind: SpanKind, attributes: BoundedAttributes,
                 shared: bool) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._shared = shared
        self._events: BoundedList | tuple[()] = ()
        self._links: BoundedList | tuple[()] = ()
        self._status = _UNSET
        self._resource = tracer._tracer.resource  # (a forked child's, once it has its own)
        self._instrumentation_scope = tracer._scope
        self._instrumentation_info = tracer._info
        self._end_time: int | None = None
        self._start_time = time_ns()

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def _own_attributes(self) -> BoundedAttributes:
        if self._shared:
            shared = self._attributes
            own = self._attributes = self._tracer._bounded(shared)
            own.dropped += shared.dropped  # what the limits dropped at the start still counts
            self._shared = False
        return self._attributes

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None:
            self._own_attributes()[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is None:
            own = self._own_attributes()
            for key, value in attributes.items():
                own[key] = value

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None,
                  timestamp: int | None = None) -> None:
        if self._end_time is not None:
            return
        limits = self._tracer._limits
        if type(self._events) is tuple:
            self._events = BoundedList(limits.max_events)  # counts what it drops
        self._events.append(Event(
            name,
            BoundedAttributes(limits.max_event_attributes, attributes, immutable=True,
                              max_value_len=limits.max_attribute_length),
            time_ns() if timestamp is None else timestamp))

    def record_exception(self, exception: BaseException,
                         attributes: Mapping[str, Any] | None = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        # The attributes the SDK's Span.record_exception gives the event.
        cls = type(exception)
        module = cls.__module__
        recorded: dict[str, Any] = {
            "exception.type": (f"{module}.{cls.__qualname__}"
                               if module and module != "builtins" else cls.__qualname__),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None
                 ) -> None:
        # (the SDK's rule: an invalid context makes a link only with attributes or state)
        if self._end_time is not None or not (context and (
                context.is_valid or attributes or context.trace_state)):
            return
        limits = self._tracer._limits
        if type(self._links) is tuple:
            self._links = BoundedList(limits.max_links)  # counts what it drops
        self._links.append(trace_api.Link(context, BoundedAttributes(
            limits.max_link_attributes, attributes, immutable=True,
            max_value_len=limits.max_attribute_length)))

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = time_ns() if end_time is None else end_time
        self._tracer._processor.on_end(self)

    def __repr__(self) -> str:
        return f"LeafSpan({self._name!r}, {self._context!r})"
