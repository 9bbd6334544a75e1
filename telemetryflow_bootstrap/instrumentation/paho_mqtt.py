"""paho-mqtt 2.x (``paho.mqtt.client.Client``, MQTT 3.1, 3.1.1 and 5): messaging spans and
duration metrics after the OpenTelemetry messaging conventions, the trace context carried in
MQTT 5 user properties so a subscriber's callback joins the publisher's trace.

Spans (``messaging.system=mqtt``: the conventions name no value for MQTT; this is the
protocol's name, lower case, as the other systems' values are)
    ``Client.publish``   PRODUCER ``publish {topic}``: the call only (paho queues the packet
                         for its network loop; the broker's acknowledgement of QoS 1/2 is
                         not waited for). A ``ValueError`` paho raises (bad topic, QoS,
                         payload size) is recorded and propagates; a message paho reports it
                         could not send (``info.rc``: not connected at QoS 0, queue full) is
                         an error with ``error.type`` the ``MQTTErrorCode`` name (not
                         connected at QoS 1/2 is not: paho keeps the message and sends it
                         once connected).
    message callbacks    CONSUMER ``process {topic filter}`` around each call of a callback
                         given to ``message_callback_add`` (or ``@client.topic_callback``),
                         named after the filter it was registered for, and around each call
                         of ``client.on_message``, named after the first filter of the
                         client's own ``subscribe`` calls that matches the message's topic
                         (an exact filter before a wildcard one; a ``$share/{group}/``
                         prefix is taken off and the group recorded). Its parent is the
                         context the message carries (see below), also linked; a message
                         without one starts a trace of its own. The span of the program that
                         is current in paho's network thread, if any, is linked, not the
                         parent (the reasons are pika's: see ``pika``). The callback's
                         exception is recorded and re-raised to paho, which raises it or
                         only logs it as ``client.suppress_exceptions`` says, as without us.
Attributes: ``messaging.system``, ``messaging.operation.name`` (``publish``, ``process``),
``messaging.operation.type`` (``send``, ``process``), ``messaging.destination.name`` (the
message's topic), ``messaging.destination.template`` (the filter of a wildcard
subscription: the process span is named after it), ``messaging.consumer.group.name``
(shared subscriptions), ``messaging.client.id`` (the client id the program set or paho
generated; none for an MQTT 5 client that left it to the broker),
``messaging.message.body.size``, ``server.address``/``server.port`` (the host and port given
to ``connect``), ``error.type``, an exception event (its message only for paho's own
exceptions: a callback's may quote the payload) and ERROR status on failure. QoS and retain
are not recorded (the conventions define no attribute for them). Never recorded: payloads,
user property values, the ``username_pw_set`` user name and password (never read).

Metrics (histograms, seconds): ``messaging.client.operation.duration`` (publish) and
``messaging.process.duration`` (callbacks), with the span's attributes minus the per-message
ones (topic, body size, client id), plus ``error.type`` on failure. Counters (``{message}``,
the same attributes): ``messaging.client.sent.messages`` (each publish, ``error.type`` when
its span has one) and ``messaging.client.consumed.messages`` (each message handed to a
traced callback; see ``_messaging_counts``). Cardinality: MQTT topics
often carry ids (``devices/4711/telemetry``), and the conventions want the destination in
a span name or metric only when it has few values. A process span named after a
subscription filter is bounded by the program's subscriptions (a wildcard filter is the
``messaging.destination.template``, the point has no ``messaging.destination.name``). A
topic with no filter to stand for it (every publish, and a message no recorded subscription
matches) names its span and point until the process has seen 256 such topics; later topics
give ``publish``/``process`` spans and points without a destination (the span still has
``messaging.destination.name``), so neither span names nor metric streams grow without
bound.

Trace context. MQTT 5: ``traceparent``/``tracestate`` (and ``baggage`` when there is any,
or whatever the global propagator writes) are user properties of a copy of the caller's
``Properties`` (or of new PUBLISH properties): the caller's object is never changed; trace
keys it already carried are replaced, and the publish span is linked to the context they
named. MQTT 3.1/3.1.1 have no place for metadata besides the payload, which is never
altered: the publish span is made, the message carries no context, and the consumer's
process span starts a trace of its own.

Environment: none of its own (the propagators: ``OTEL_PROPAGATORS``); nothing is traced
while instrumentation is suppressed. Not traced: connect/subscribe/unsubscribe as
operations, ``on_publish`` (the acknowledgement), a subclass that defines ``on_message`` as
a method (the property is bypassed; its ``message_callback_add`` callbacks are traced).
(``_mqtt_properties.py`` holds the trace context in user properties, ``_mqtt_subscriptions.py``
the naming by subscription filter and topic.)
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import (
    Link,
    NoOpTracer,
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
    set_span_in_context,
)

from ..infrastructure.current_context import attach, get_current, reset
from ._error_type import error_type
from ._http_common import DURATION_BUCKETS, suppressed
from ._messaging_common import BODY_SIZE, DESTINATION, ERROR_TYPE
from ._messaging_counts import counts_for, with_error
from ._method_wrappers import our_wrapper, wrap_once
from ._mqtt_properties import TraceProperties, creation_context
from ._mqtt_subscriptions import STATE, Op, Operations, subscribing

CLIENT_ID = "messaging.client.id"
CLIENT_DURATION = "messaging.client.operation.duration"
PROCESS_DURATION = "messaging.process.duration"

_MQTT_V5 = 5
_EMPTY = Context()
_now = time.perf_counter
_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


class _Telemetry(Operations):
    """The tracer, the histograms, the message counts, the prepared operations
    (``topic_op``, ``filter_op``: see ``_mqtt_subscriptions``) and the context writer of
    one PatchContext."""

    def __init__(self, context: Any, properties_class: Any, publish_packet: int) -> None:
        from opentelemetry.metrics import NoOpMeter

        from ..infrastructure.fast_histogram import fast_histogram
        from ..infrastructure.leaf_spans import LeafTracer

        self.tracer = context.tracer if context.tracer is not None else NoOpTracer()
        self.leaf = LeafTracer.for_tracer(self.tracer)  # publish spans have no children
        meter = context.meter if context.meter is not None else NoOpMeter("telemetryflow")
        buckets = list(DURATION_BUCKETS)
        self.client_duration = fast_histogram(meter.create_histogram(
            CLIENT_DURATION, unit="s",
            description="Duration of messaging operation initiated by a producer or "
                        "consumer client.", explicit_bucket_boundaries_advisory=buckets))
        self.process_duration = fast_histogram(meter.create_histogram(
            PROCESS_DURATION, unit="s", description="Duration of processing operation.",
            explicit_bucket_boundaries_advisory=buckets))
        self.counts = counts_for(context.meter)
        self.properties = TraceProperties(properties_class, publish_packet)
        super().__init__()

    def ended(self, histogram: Any, op: Op, span: Any, elapsed: float) -> None:
        try:
            histogram.record(elapsed, op.metric)
            if op.sends:
                self.counts.sent(op.key)
            span.end()
        except Exception:
            pass

    def failed(self, histogram: Any, op: Op, span: Any, kind: str, elapsed: float,
               exc: BaseException | None = None) -> None:
        """End ``span`` as failed (``kind``: its ``error.type``) and record its point.
        Runs inside the caller's ``except``: never raises.

        The exception event keeps the message of paho's own exceptions only: a callback's
        may quote the payload (a validation error showing the input)."""
        try:
            span.set_attribute(ERROR_TYPE, kind)
            if exc is not None:
                ours = type(exc).__module__.startswith("paho.")
                event = {"exception.type": kind,
                         "exception.stacktrace": "Traceback (most recent call last):\n"
                         + "".join(traceback.format_tb(exc.__traceback__)) + kind}
                if ours:
                    event["exception.message"] = str(exc)
                span.add_event("exception", event)
                span.set_status(Status(StatusCode.ERROR, f"{kind}: {exc}" if ours else kind))
            else:
                span.set_status(Status(StatusCode.ERROR, kind))
            span.end()
            histogram.record(elapsed, {**op.metric, ERROR_TYPE: kind})
            if op.sends:
                self.counts.sent(with_error(op.key, kind))
        except Exception:
            pass


def _message_attributes(op: Op, client: Any, topic: str, payload: Any) -> dict[str, Any]:
    attributes = {**op.attributes, DESTINATION: topic}
    size = _size(payload)
    if size is not None:
        attributes[BODY_SIZE] = size
    client_id = client._client_id
    if client_id:
        attributes[CLIENT_ID] = (client_id.decode("utf-8", "replace")
                                 if isinstance(client_id, bytes) else str(client_id))
    return attributes


def _size(payload: Any) -> int | None:
    """The size of the payload paho sends (it encodes text as UTF-8, a number as its
    decimal text, None as nothing); None when paho would refuse it."""
    if isinstance(payload, (bytes, bytearray)):
        return len(payload)
    if isinstance(payload, str):
        return len(payload.encode("utf-8", "surrogatepass"))
    if payload is None:
        return 0
    if isinstance(payload, (int, float)) and not isinstance(payload, bool):
        return len(str(payload))
    return None


# ----- producers ---------------------------------------------------------------------------


def _publish(telemetry: _Telemetry, no_connection: Any) -> Callable[..., Any]:
    leaf = telemetry.leaf
    tracer = telemetry.tracer
    histogram = telemetry.client_duration
    topic_op = telemetry.topic_op
    with_context = telemetry.properties.with_context

    def publish(wrapped: Any, client: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        current = get_current()
        if current.get(_SUPPRESS_INSTRUMENTATION_KEY) \
                or current.get("suppress_instrumentation"):
            return wrapped(*args, **kwargs)
        topic = args[0] if args else kwargs.get("topic")
        if type(topic) is not str or len(args) > 5:  # (left to paho: never called twice)
            return wrapped(*args, **kwargs)
        span = None
        try:
            op = topic_op("publish", "send", client._host, client._port, topic)
            attributes = _message_attributes(
                op, client, topic, args[1] if len(args) > 1 else kwargs.get("payload"))
            v5 = client._protocol == _MQTT_V5
            given = (args[4] if len(args) > 4 else kwargs.get("properties")) if v5 else None
            links = None
            if given is not None:
                found = creation_context(given)
                if found is not None:
                    links = (Link(found[1]),)
            if leaf is not None and links is None:
                span = leaf.start(op.name, _PRODUCER, attributes, shared=False)
            else:
                span = tracer.start_span(op.name, kind=_PRODUCER, attributes=attributes,
                                         links=links)
            if v5:
                properties = with_context(given, span, current)
                if properties is not None:
                    if len(args) > 4:
                        args = (*args[:4], properties)
                    else:
                        kwargs = {**kwargs, "properties": properties}
        except Exception:
            if span is not None:
                span.end()
            return wrapped(*args, **kwargs)
        start = _now()
        try:
            info = wrapped(*args, **kwargs)
        except BaseException as exc:
            telemetry.failed(histogram, op, span, error_type(exc), _now() - start, exc)
            raise
        elapsed = _now() - start
        try:
            rc = info.rc
            if rc and (rc != no_connection or _qos(args, kwargs) == 0):
                telemetry.failed(histogram, op, span, getattr(rc, "name", str(rc)), elapsed)
                return info
        except Exception:
            pass
        telemetry.ended(histogram, op, span, elapsed)
        return info

    return publish


def _qos(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[2] if len(args) > 2 else kwargs.get("qos", 0)


# ----- consumers ---------------------------------------------------------------------------


def _process(telemetry: _Telemetry, pattern: str | None, callback: Any, client: Any,
             userdata: Any, message: Any) -> Any:
    """``callback(client, userdata, message)`` inside a ``process`` span (see the module);
    ``pattern``: the filter the callback was registered for, None for ``on_message``."""
    if suppressed():
        return callback(client, userdata, message)
    try:
        topic = message.topic
        host, port = client._host, client._port
        if pattern is not None:
            op = telemetry.filter_op(host, port, pattern, "")
        else:
            subscriptions = client.__dict__.get(STATE)
            matched = subscriptions.match(topic) if subscriptions is not None else None
            op = (telemetry.filter_op(host, port, *matched) if matched is not None
                  else telemetry.topic_op("process", "process", host, port, topic))
        attributes = _message_attributes(op, client, topic, message.payload)
        telemetry.counts.consumed(op.key)
        found = creation_context(message.properties)
        parent, links = (_EMPTY, []) if found is None else (found[0], [Link(found[1])])
        ambient = get_current_span(get_current()).get_span_context()
        if ambient.is_valid and not ambient.is_remote:
            links.append(Link(ambient))
        span = telemetry.tracer.start_span(op.name, context=parent, kind=_CONSUMER,
                                           attributes=attributes, links=links)
        token = attach(set_span_in_context(span, parent))
    except Exception:  # (a topic that is not UTF-8 among them: paho's error, in the callback)
        return callback(client, userdata, message)
    histogram = telemetry.process_duration
    start = _now()
    try:
        result = callback(client, userdata, message)
    except BaseException as exc:
        reset(token)
        telemetry.failed(histogram, op, span, error_type(exc), _now() - start, exc)
        raise
    reset(token)
    telemetry.ended(histogram, op, span, _now() - start)
    return result


class _TopicCallback:
    """A callback given to ``message_callback_add``, as paho stores it: each call is a
    process span named after its filter. Anything else asked of it (paho logs a failing
    callback's ``__name__``) is the callback's."""

    __slots__ = ("__wrapped__", "_pattern", "_telemetry")

    def __init__(self, telemetry: _Telemetry, pattern: str, callback: Any) -> None:
        self._telemetry = telemetry
        self._pattern = pattern
        self.__wrapped__ = callback

    def __call__(self, client: Any, userdata: Any, message: Any) -> Any:
        return _process(self._telemetry, self._pattern, self.__wrapped__, client, userdata,
                        message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__wrapped__, name)


def _callback_add(telemetry: _Telemetry) -> Callable[..., Any]:
    def message_callback_add(wrapped: Any, client: Any, args: tuple[Any, ...],
                             kwargs: dict[str, Any]) -> Any:
        try:
            pattern = args[0] if args else kwargs["sub"]
            callback = args[1] if len(args) > 1 else kwargs["callback"]
            if type(pattern) is str and callable(callback) \
                    and type(callback) is not _TopicCallback and len(args) <= 2:
                traced = _TopicCallback(telemetry, pattern, callback)
                args, kwargs = (pattern, traced), {k: v for k, v in kwargs.items()
                                                   if k not in ("sub", "callback")}
        except Exception:
            pass
        return wrapped(*args, **kwargs)

    return message_callback_add


def _on_message_property(telemetry: _Telemetry, original: property,
                         dispatch_code: Any) -> property:
    """``Client.on_message`` that, read by paho's dispatch of a message (``dispatch_code``:
    it reads the property only when no ``message_callback_add`` filter matched), hands it
    the callback inside a process span; anyone else reading it gets the program's own
    function, as set."""
    fget = original.fget
    assert fget is not None
    caller = sys._getframe

    def on_message(self: Any) -> Any:
        callback = fget(self)
        if callback is None or caller(1).f_code is not dispatch_code:
            return callback
        return functools.partial(_process, telemetry, None, callback)

    on_message._telemetryflow = True  # type: ignore[attr-defined]
    return property(on_message, original.fset, original.fdel, original.__doc__)


# ----- patching ----------------------------------------------------------------------------


def patch(module: Any, context: Any) -> None:
    """Wrap ``Client.publish``, ``message_callback_add``, ``subscribe``/``unsubscribe``
    and the ``on_message`` property (once)."""
    from paho.mqtt import client as client_module
    from paho.mqtt.enums import MQTTErrorCode
    from paho.mqtt.matcher import MQTTMatcher
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client_class = client_module.Client
    if our_wrapper(client_class, "publish") is not None:
        return  # patched already (two bootstraps)
    telemetry = _Telemetry(context, Properties, PacketTypes.PUBLISH)
    # (a paho whose dispatch is not the method the property knows: no on_message spans,
    # the rest as usual)
    original = vars(client_class).get("on_message")
    dispatch = vars(client_class).get("_handle_on_message")
    if isinstance(original, property) and original.fget is not None \
            and getattr(original.fget, "_telemetryflow", False) is False \
            and hasattr(dispatch, "__code__"):
        client_class.on_message = _on_message_property(telemetry, original, dispatch.__code__)
    wrap_once(client_class, "message_callback_add", _callback_add(telemetry))
    wrap_once(client_class, "subscribe", subscribing(MQTTMatcher, True))
    wrap_once(client_class, "unsubscribe", subscribing(MQTTMatcher, False))
    wrap_once(client_class, "publish", _publish(telemetry, MQTTErrorCode.MQTT_ERR_NO_CONN))
