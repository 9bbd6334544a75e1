"""pika (RabbitMQ), blocking and asynchronous channels, after the OpenTelemetry messaging
conventions (RabbitMQ page).

Spans
    ``send {destination}`` (PRODUCER) per ``basic_publish`` of a ``BlockingChannel`` (the
    span covers the wait for the broker's confirmation in publisher-confirms mode) or of a
    ``pika.channel.Channel`` (SelectConnection, AsyncioConnection...). Its context is the
    message's creation context: injected with the global propagator (W3C ``traceparent``,
    ``tracestate``, ``baggage`` by default) into a copy of the message's properties and
    headers; the caller's ``BasicProperties`` and headers dict are not changed, and
    ``properties=None`` gets new properties. A ``traceparent`` the caller put in the
    headers is the creation context the conventions ask to keep: not replaced, and the
    send span links to it (also a message republished with the properties it came with).
    ``process {destination}`` (CONSUMER) around each call of a callback given to
    ``basic_consume`` (both kinds of channel), and around each message a
    ``BlockingChannel.consume()`` generator yields: current while the loop body runs, ended
    when the next item is asked for, the loop is left or ``channel.cancel()`` is called
    (an exception in the loop body happens outside the generator and is not seen).
    Its parent is the message's creation context, so producer and consumer are one
    trace; with none (an uninstrumented producer) it starts a trace of its own. It links
    to the creation context, and to the span of the program that is current, if any.
    Why not that span as the parent, which the conventions' default would be: a delivery
    is a unit of work the broker starts, as a request is a server's, and under
    ``telemetryflow-run`` a span is always current (the process span, a trace for the
    program's whole life): every message's work would join it and none its producer's.
    The conventions allow the creation context as the parent for single-message
    processing, with the ambient span as a link, which this does.
    ``receive {queue}`` (CLIENT) per ``basic_get`` of either kind of channel, linked to the
    creation context of the message it got (none when the queue was empty). The
    asynchronous channel's span runs from the request to the broker's answer (GetOk or
    GetEmpty) and ends before the program's callback is called.
    ``ack`` / ``nack`` / ``reject`` (CLIENT, ``messaging.operation.type`` = ``settle``) per
    ``basic_ack``/``basic_nack``/``basic_reject`` of either kind of channel, with the
    delivery tag, a child of the current context (the process span when the program
    settles inside its callback). Named after the verb alone: a channel does not know
    which queue a delivery tag came from. (An ack is only sent, never answered: the span
    covers handing the frame to the connection.)
Attributes
    ``messaging.system`` = ``rabbitmq``, ``messaging.operation.name``/``.type``
    (``send``, ``process``, ``receive``), ``messaging.destination.name`` (producer:
    ``{exchange}:{routing key}``, either alone when the other is empty, else
    ``amq.default``; consumer: ``{exchange}:{routing key}:{queue}`` without the empty parts
    and with the routing key once when it is the queue; receive: the queue),
    ``messaging.rabbitmq.destination.routing_key``, ``messaging.rabbitmq.message.delivery_tag``
    (consumer side), ``messaging.message.id``, ``messaging.message.conversation_id`` (the
    correlation id), ``messaging.message.body.size``, ``server.address``/``server.port``
    (host and port of the connection's parameters; credentials are never read),
    ``messaging.destination.anonymous`` for broker-named queues (``amq.gen-*``, direct
    reply-to), which are then left out of span names and metrics. On failure
    ``error.type`` (the exception's full class name), an exception event (the message only
    for pika's own exceptions: a consumer's may quote the body) and ERROR status; the
    exception propagates unchanged. Message bodies are never recorded.
Metrics
    ``messaging.client.operation.duration`` (send, receive, settle) and
    ``messaging.process.duration`` (process), seconds, with the span's attributes minus the
    per-message ones and anonymous destinations, plus ``error.type`` on failure;
    ``messaging.client.sent.messages`` (each publish, ``error.type`` when it raised) and
    ``messaging.client.consumed.messages`` (each message a callback, a ``consume()``
    generator or a ``basic_get`` delivered to the program), ``{message}``, with the send's,
    process's or receive's metric attributes (see ``_messaging_counts``).
Not traced
    Queue and exchange management. The Twisted adapter (not tested): its publishes are
    send spans of the pika channel it wraps, but its consumers' process spans cover only
    the hand-over of each message to the queue object the program reads later, not the
    program's work. (``_pika_get_and_settle.py`` holds the asynchronous ``basic_get`` and
    the acknowledgements; ``_messaging_rabbitmq.py`` the destinations, attribute sets,
    consumers' process spans and failures.)
Environment: none of its own (the propagators: ``OTEL_PROPAGATORS``).
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

from opentelemetry.trace import Link, SpanKind

from ..infrastructure.current_context import get_current
from . import _messaging_common as common
from . import _messaging_rabbitmq as rabbitmq
from . import _pika_get_and_settle as acks
from ._http_common import suppressed
from ._method_wrappers import wrap_once
from ._pika_get_and_settle import received, stands_aside

_PRODUCER = SpanKind.PRODUCER
_CLIENT = SpanKind.CLIENT
_now = common.now


def patch(module: Any, context: Any) -> None:
    from pika import channel as channel_module
    from pika import spec
    from pika.adapters import blocking_connection

    tracing = _Tracing(context, spec.BasicProperties)
    blocking = blocking_connection.BlockingChannel
    impl = channel_module.Channel
    wrap_once(blocking, "basic_publish", tracing.publish_wrapper(_blocking_impl))
    wrap_once(impl, "basic_publish", tracing.publish_wrapper(None))
    wrap_once(blocking, "basic_consume", tracing.consume_wrapper(_blocking_impl))
    wrap_once(impl, "basic_consume", tracing.consume_wrapper(None))
    wrap_once(blocking, "consume", tracing.generator_wrapper())
    wrap_once(blocking, "cancel", tracing.cancel_wrapper())
    wrap_once(blocking, "basic_get", tracing.get_wrapper())
    wrap_once(impl, "basic_get", acks.async_get_wrapper(
        tracing.telemetry, tracing.gets, tracing.receives))
    if "_on_getempty" in vars(impl):  # (private: another pika may have moved it)
        wrap_once(impl, "_on_getempty", acks.get_empty_wrapper(tracing.gets))
    settles = rabbitmq.Operations()
    for verb, method in (("ack", "basic_ack"), ("nack", "basic_nack"),
                         ("reject", "basic_reject")):
        wrap_once(blocking, method,
                  acks.settle_wrapper(tracing.telemetry, settles, verb, _blocking_impl))
        wrap_once(impl, method, acks.settle_wrapper(tracing.telemetry, settles, verb, None))


def _blocking_impl(channel: Any) -> Any:
    return channel._impl


class _Tracing:
    """Everything the patched methods share, fetched once at patch time."""

    def __init__(self, context: Any, properties_class: type) -> None:
        self.telemetry = common.Telemetry(context)
        self._properties_class = properties_class
        self._sends = rabbitmq.Operations()
        self.receives = rabbitmq.Operations()
        # pika channel -> its Basic.Get waiting for the broker's answer (one at a time per
        # channel, as pika allows)
        self.gets: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._injector = common.Injector()
        # BlockingChannel -> the state of its consume() generator (one at a time per
        # channel, as pika allows), for cancel()
        self._generators: weakref.WeakKeyDictionary[Any, _Items] = \
            weakref.WeakKeyDictionary()

    # ----- send ----------------------------------------------------------------------------

    def publish_wrapper(self, impl_of: Callable[[Any], Any] | None) -> Any:
        """``basic_publish`` of a BlockingChannel (``impl_of`` finds its pika channel) or
        of a pika channel itself (None), which stands aside when a BlockingChannel owns it
        (pika sets that channel's cookie): the blocking call traced it already."""
        telemetry = self.telemetry
        histogram = telemetry.operation
        counts = telemetry.counts
        start_send = self._start_send

        def basic_publish(wrapped: Any, instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
            if stands_aside(impl_of, instance) or suppressed():
                return wrapped(*args, **kwargs)
            try:
                started = start_send(instance if impl_of is None else impl_of(instance),
                                     args, kwargs)
            except Exception:
                started = None
            if started is None:
                return wrapped(*args, **kwargs)
            span, send, args, kwargs = started
            start = _now()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                rabbitmq.sent_failed(telemetry, span, send, exc, _now() - start)
                raise
            try:
                histogram.record(_now() - start, send.metric_attributes)
                counts.sent(send.metric_key)
                span.end()
            except Exception:
                pass
            return result

        return basic_publish

    def _start_send(self, impl: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                    ) -> tuple[Any, rabbitmq.Operation, tuple[Any, ...], dict[str, Any]] | None:
        count = len(args)
        exchange = args[0] if count > 0 else kwargs.get("exchange")
        routing_key = args[1] if count > 1 else kwargs.get("routing_key")
        if type(exchange) is not str or type(routing_key) is not str or (
                count < 3 and "body" not in kwargs):
            return None  # not understood: pika answers the call as it would
        properties = args[3] if count > 3 else kwargs.get("properties")
        server = rabbitmq.server_of(impl.connection)
        key = (server, exchange, routing_key)
        send = self._sends.get(key)
        if send is None:
            send = self._sends.keep(key, rabbitmq.operation(
                "send", "send", rabbitmq.producer_destination(exchange, routing_key), server,
                routing_key))
        headers = None if properties is None else properties.headers
        theirs = "traceparent" in headers if headers else False
        telemetry = self.telemetry
        # (the message's own attributes given at the start, in one plain dict: added to a
        # started leaf span they would cost a validated copy of every attribute)
        attributes = {**send.attributes, **rabbitmq.message_attributes(
            properties, args[2] if count > 2 else kwargs["body"])}
        if theirs:
            found = rabbitmq.creation_context(properties)
            links = [Link(found[1])] if found else None
            span = telemetry.tracer.start_span(send.name, kind=_PRODUCER,
                                               attributes=attributes, links=links)
        elif telemetry.leaf is not None:
            span = telemetry.leaf.start(send.name, _PRODUCER, attributes, shared=False)
        else:
            span = telemetry.tracer.start_span(send.name, kind=_PRODUCER,
                                               attributes=attributes)
        carrier = None if theirs else (dict(headers) if headers else {})
        if carrier is not None:
            self._injector.inject(carrier, span, get_current())
        # (nothing written, a propagator of "none" or no valid span: the message as given)
        if carrier is not None and carrier != (headers or {}):
            given = self._with_headers(properties, carrier)
            if count > 3:
                args = (*args[:3], given, *args[4:])
            else:
                kwargs = {**kwargs, "properties": given}
        return span, send, args, kwargs

    def _with_headers(self, properties: Any, headers: dict[str, Any]) -> Any:
        """A copy of the caller's properties (new ones for None) with ``headers``."""
        cls = self._properties_class
        if properties is None:
            return cls(headers=headers)
        if type(properties) is cls:  # (copy.copy's reduce protocol costs ~10x this)
            made = object.__new__(cls)
            made.__dict__.update(properties.__dict__)
        else:
            made = copy.copy(properties)
        made.headers = headers
        return made

    # ----- process ---------------------------------------------------------------------------

    def consume_wrapper(self, impl_of: Callable[[Any], Any] | None) -> Any:
        """``basic_consume``: the callback is given to pika wrapped in a process span. The
        pika channel of a BlockingChannel stands aside: there the callback it is given is
        the BlockingChannel's own, which queues the delivery for the program's callback
        (wrapped by the BlockingChannel's ``basic_consume``) to run later."""
        tracing = self

        def basic_consume(wrapped: Any, instance: Any, args: tuple[Any, ...],
                          kwargs: dict[str, Any]) -> Any:
            try:
                if impl_of is None and instance._cookie is not None:
                    return wrapped(*args, **kwargs)
                impl = instance if impl_of is None else impl_of(instance)
                queue = args[0] if args else kwargs.get("queue")
                callback = args[1] if len(args) > 1 else kwargs.get("on_message_callback")
                if type(queue) is not str or not callable(callback):
                    return wrapped(*args, **kwargs)
                traced = _traced_callback(
                    callback, rabbitmq.Consumer(tracing.telemetry, impl, queue))
            except Exception:
                return wrapped(*args, **kwargs)
            if len(args) > 1:
                args = (args[0], traced, *args[2:])
            else:
                kwargs = {**kwargs, "on_message_callback": traced}
            return wrapped(*args, **kwargs)

        return basic_consume

    def generator_wrapper(self) -> Any:
        """``BlockingChannel.consume()``: the generator pika makes, its messages each in
        a process span (see the module)."""
        tracing = self

        def consume(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
            items = wrapped(*args, **kwargs)
            try:
                queue = args[0] if args else kwargs.get("queue")
                if type(queue) is not str:
                    return items
                state = _Items(rabbitmq.Consumer(tracing.telemetry, instance._impl, queue))
                tracing._generators[instance] = state
            except Exception:
                return items
            return _traced_items(items, state)

        return consume

    def cancel_wrapper(self) -> Any:
        """``BlockingChannel.cancel()``, which pika asks for when a program leaves a
        ``consume()`` loop: the process span of the message last yielded ends there, even
        when the program still holds the generator (else it would stay current until the
        generator is collected)."""
        generators = self._generators

        def cancel(wrapped: Any, instance: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
            try:
                state = generators.pop(instance, None)
                if state is not None:
                    state.end()
            except Exception:
                pass
            return wrapped(*args, **kwargs)

        return cancel

    # ----- receive ---------------------------------------------------------------------------

    def get_wrapper(self) -> Any:
        """``BlockingChannel.basic_get``: a receive span around the round trip."""
        telemetry = self.telemetry
        histogram = telemetry.operation
        receives = self.receives

        def basic_get(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
            if suppressed():
                return wrapped(*args, **kwargs)
            try:
                queue = args[0] if args else kwargs.get("queue")
                if type(queue) is not str:
                    return wrapped(*args, **kwargs)
                server = rabbitmq.server_of(instance._impl.connection)
                key = (server, queue)
                receive = receives.get(key) or receives.keep(key, rabbitmq.operation(
                    "receive", "receive", queue, server))
                if telemetry.leaf is not None:
                    span = telemetry.leaf.start(receive.name, _CLIENT, receive.attributes)
                else:
                    span = telemetry.tracer.start_span(receive.name, kind=_CLIENT,
                                                       attributes=receive.attributes)
            except Exception:
                return wrapped(*args, **kwargs)
            metric_attributes = receive.metric_attributes
            start = _now()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                rabbitmq.failed(span, histogram, metric_attributes, exc, _now() - start)
                raise
            elapsed = _now() - start
            try:
                if received(span, result):
                    telemetry.counts.consumed(receive.metric_key)
                histogram.record(elapsed, metric_attributes)
                span.end()
            except Exception:
                pass
            return result

        return basic_get


def _traced_callback(callback: Callable[..., Any],
                     consumer: rabbitmq.Consumer) -> Callable[..., Any]:
    """``callback`` run inside a process span per delivery; pika calls it with
    ``(channel, method, properties, body)``."""

    def on_message(*args: Any, **kwargs: Any) -> Any:
        if len(args) != 4 or kwargs or suppressed():
            return callback(*args, **kwargs)
        try:
            started = consumer.start(args[1], args[2], args[3])
        except Exception:
            return callback(*args)
        try:
            result = callback(*args)
        except BaseException as exc:
            consumer.end(started, exc)
            raise
        consumer.end(started)
        return result

    with suppress(Exception):  # (an odd callable: the wrapper keeps its own names)
        functools.update_wrapper(on_message, callback, updated=())
    return on_message


class _Items:
    """A ``consume()`` generator's consumer and the process span of the message it last
    yielded (None between messages)."""

    __slots__ = ("consumer", "started")

    def __init__(self, consumer: rabbitmq.Consumer) -> None:
        self.consumer = consumer
        self.started: tuple[Any, Any, dict[str, Any], float] | None = None

    def end(self) -> None:
        started, self.started = self.started, None
        if started is not None:
            self.consumer.end(started)


def _traced_items(items: Iterator[Any], state: _Items) -> Iterator[Any]:
    """The items of pika's ``consume()`` generator, each message's in a process span."""
    consumer = state.consumer
    try:
        for item in items:
            state.end()
            method = item[0]
            if method is not None and not suppressed():
                try:
                    state.started = consumer.start(method, item[1], item[2])
                except Exception:
                    state.started = None
            yield item
    finally:
        state.end()
        close = getattr(items, "close", None)
        if close is not None:
            close()
