"""aio-pika (RabbitMQ over aiormq, asyncio), after the OpenTelemetry messaging conventions
(RabbitMQ page), with the same spans, attributes and metrics as the pika instrumentation.

Spans
    ``send {destination}`` (PRODUCER) per ``Exchange.publish`` (``RobustExchange`` and the
    default exchange included), covering the wait for the broker's confirmation on a
    channel with publisher confirms (aio-pika's default): a ``DeliveryError`` (nack) or
    ``PublishError`` (unroutable, ``on_return_raises``) is recorded. Its context is injected
    with the global propagator (W3C ``traceparent``, ``tracestate``, ``baggage`` by default)
    into a copy of the message's headers handed to aio-pika in place of the message (an
    object with its body and its properties): the program's ``Message`` and its headers
    dict are not changed, so a message published twice carries each publish's own context.
    A ``traceparent`` the program put in the headers (a received message republished as it
    is) is kept, and the send span links to it.
    ``process {destination}`` (CONSUMER) per message: around each call of a callback given
    to ``Queue.consume`` (in the task aio-pika starts for each delivery; ``RobustQueue``
    consumers restored after a reconnection included), and from each message a
    ``queue.iterator()`` yields until the program asks for the next one, its
    ``async with message.process()`` block ends, or the iterator is closed (``async with
    queue.iterator()`` closes it). Inside a callback or an iterator's span,
    ``message.process()`` adds no span of its own: a block that raises makes that span an
    ERROR even when the program then catches the exception (the message was rejected).
    ``message.process()`` on a message ``Queue.get`` returned is the message's process span
    (destination: its exchange and routing key; the queue is not known there). The parent
    is the message's creation context, so producer and consumer are one trace (none: a trace
    of its own), linked to it and to the span that was current, as for pika (see there why
    not that span as the parent).
    ``receive {queue}`` (CLIENT) per ``Queue.get``, linked to the creation context of the
    message it got; an empty queue (``QueueEmpty`` raised, or ``None`` with ``fail=False``)
    is an answer, not a failure: no message, no error.
    ``ack`` / ``nack`` / ``reject`` (CLIENT, operation type ``settle``) per
    ``IncomingMessage.ack``/``nack``/``reject`` (``process()``'s own included) with the
    delivery tag, a child of the current context (the process span inside a callback).
    ``aio_pika.patterns.RPC``: a call is a send span, the server's handling a process span
    that is its child, the reply a send span inside that and its handling on the caller's
    side a process span of the reply (anonymous queue: ``process``): one trace.
Attributes
    As pika's (``_messaging_rabbitmq``): ``messaging.system`` = ``rabbitmq``, operation
    name/type, ``messaging.destination.name`` (``{exchange}:{routing key}`` when sending,
    ``{exchange}:{routing key}:{queue}`` without empty parts when processing),
    ``messaging.rabbitmq.destination.routing_key``, ``messaging.rabbitmq.message.delivery_tag``,
    ``messaging.message.id``, ``messaging.message.conversation_id``,
    ``messaging.message.body.size``, ``server.address``/``server.port`` (the connection URL's
    host and port only: never its user or password), ``messaging.destination.anonymous`` for
    broker-named queues, then left out of names and metrics. A failure: ``error.type`` (the
    exception's full class name), an exception event without the message (aio-pika's and
    aiormq's errors are not pika's; a consumer's may quote the body), ERROR status; the
    exception propagates unchanged. Never bodies.
Metrics
    ``messaging.client.operation.duration`` (send, receive, settle),
    ``messaging.process.duration``, ``messaging.client.sent.messages``,
    ``messaging.client.consumed.messages`` (each message a callback, an iterator or
    ``Queue.get`` delivered to the program), as pika's.
Cost (callgrind, main-thread instructions, SDK tracer with a batch processor, aio-pika
10.2, bare → traced)
    per ``await exchange.publish(Message(b"x"), key)`` on a channel without publisher
    confirms: 420k → 541k (+120k: the send span, the headers' copy and ``traceparent``,
    the duration point and the count); per message a ``Queue.consume`` callback handles
    in ``async with message.process()`` (its ack included): 731k → 1218k (+486k: the
    process span, a full SDK span as it has children and links, reading the producer's
    context, the ack's settle span, two duration points).
Not traced
    Queue/exchange management, ``Channel.get_exchange``, the connection; aiormq used
    directly; ``aio_pika.patterns.Master`` tasks are ordinary publishes and consumer
    callbacks. A ``queue.iterator()`` left without ``async with`` nor ``close()`` keeps the
    last message's span current in the program's task until its next ``__anext__``.
Environment: none of its own (the propagators: ``OTEL_PROPAGATORS``).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Link, SpanKind

from ..infrastructure.current_context import get_current
from . import _aio_pika_consume as consuming
from . import _messaging_common as common
from . import _messaging_rabbitmq as rabbitmq
from ._http_common import suppressed
from ._method_wrappers import wrap_once
from ._pika_get_and_settle import received

_PRODUCER = SpanKind.PRODUCER
_CLIENT = SpanKind.CLIENT
_now = common.now
_DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


def patch(module: Any, context: Any) -> None:
    from aio_pika import exceptions, exchange, message, queue, robust_queue, tools

    telemetry = common.Telemetry(context)
    deliveries = consuming.Deliveries(telemetry)
    iterators = consuming.Iterators(deliveries)
    blocks = consuming.Blocks(deliveries)
    settles = rabbitmq.Operations()
    targets = [
        (exchange.Exchange, "publish", _publish_wrapper(telemetry)),
        (queue.Queue, "consume",
         consuming.consume_wrapper(deliveries, tools, queue.QueueIterator)),
        (queue.Queue, "get", _get_wrapper(telemetry, exceptions.QueueEmpty)),
        (queue.QueueIterator, "__anext__", iterators.next_wrapper()),
        (queue.QueueIterator, "close", iterators.close_wrapper()),
        (message.ProcessContext, "__aenter__", blocks.enter_wrapper()),
        (message.ProcessContext, "__aexit__", blocks.exit_wrapper()),
        *((message.IncomingMessage, verb, _settle_wrapper(telemetry, settles, verb))
          for verb in ("ack", "nack", "reject")),
    ]
    # (aio-pika 10's RobustQueueIterator has an __anext__ of its own, which does not call
    # QueueIterator's)
    robust = getattr(robust_queue, "RobustQueueIterator", None)
    if robust is not None and "__anext__" in vars(robust):
        targets.append((robust, "__anext__", iterators.next_wrapper()))
    missing = [f"{owner.__qualname__}.{name}" for owner, name, _ in targets
               if name not in vars(owner)]
    if missing:  # (all or nothing: a half-patched library would trace half a message)
        raise AttributeError(f"aio-pika without {', '.join(missing)}")
    for owner, name, wrapper in targets:
        wrap_once(owner, name, wrapper)


def _server_of_channel(channel: Any) -> tuple[Any, Any]:
    """(host, port) of a channel's connection URL (its default port when the URL has none,
    as aiormq connects); nothing else of the URL is read. The channel is aio-pika's (10)
    or aiormq's (9: exchanges and queues hold that one)."""
    connection = getattr(channel, "_connection", None)
    url = (connection if connection is not None else channel.connection).url
    port = url.port
    return url.host, port if port is not None else _DEFAULT_PORTS.get(url.scheme)


class _Sent:
    """What ``Exchange.publish`` is given instead of the program's message: its body, and
    its properties with the headers that carry the trace context (aio-pika reads only
    these two); anything else is the message's own."""

    __slots__ = ("_message", "properties")

    def __init__(self, message: Any, properties: Any) -> None:
        self._message = message
        self.properties = properties

    @property
    def body(self) -> Any:
        return self._message.body

    def __getattr__(self, name: str) -> Any:
        return getattr(self._message, name)

    def __repr__(self) -> str:
        return repr(self._message)


def _publish_wrapper(telemetry: common.Telemetry) -> Any:
    histogram = telemetry.operation
    counts = telemetry.counts
    sends = rabbitmq.Operations()
    injector = common.Injector()

    def start_send(exchange: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[Any, rabbitmq.Operation, tuple[Any, ...], dict[str, Any]] | None:
        message = args[0] if args else kwargs.get("message")
        routing_key = args[1] if len(args) > 1 else kwargs.get("routing_key")
        name = exchange.name
        if type(name) is not str or type(routing_key) is not str or message is None:
            return None  # not understood: aio-pika answers the call as it would
        server = _server_of_channel(exchange.channel)
        key = (server, name, routing_key)
        send = sends.get(key)
        if send is None:
            send = sends.keep(key, rabbitmq.operation(
                "send", "send", rabbitmq.producer_destination(name, routing_key), server,
                routing_key))
        headers = message.headers
        theirs = "traceparent" in headers if headers else False
        attributes = {**send.attributes,
                      **rabbitmq.message_attributes(message, message.body)}
        if theirs:
            found = rabbitmq.creation_context(message)
            span = telemetry.tracer.start_span(
                send.name, kind=_PRODUCER, attributes=attributes,
                links=[Link(found[1])] if found else None)
            return span, send, args, kwargs
        if telemetry.leaf is not None:
            span = telemetry.leaf.start(send.name, _PRODUCER, attributes, shared=False)
        else:
            span = telemetry.tracer.start_span(send.name, kind=_PRODUCER,
                                               attributes=attributes)
        carrier = dict(headers) if headers else {}
        injector.inject(carrier, span, get_current())
        if carrier != (headers or {}):
            properties = message.properties  # (a new object at each call)
            properties.headers = carrier
            sent = _Sent(message, properties)
            if args:
                args = (sent, *args[1:])
            else:
                kwargs = {**kwargs, "message": sent}
        return span, send, args, kwargs

    async def publish(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        if suppressed():
            return await wrapped(*args, **kwargs)
        try:
            started = start_send(instance, args, kwargs)
        except Exception:
            started = None
        if started is None:
            return await wrapped(*args, **kwargs)
        span, send, args, kwargs = started
        start = _now()
        try:
            result = await wrapped(*args, **kwargs)
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

    return publish


def _get_wrapper(telemetry: common.Telemetry, empty: type[BaseException]) -> Any:
    """``Queue.get``: a receive span around the round trip to the broker."""
    histogram = telemetry.operation
    receives = rabbitmq.Operations()

    async def get(wrapped: Any, instance: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        if suppressed():
            return await wrapped(*args, **kwargs)
        try:
            queue = instance.name
            server = _server_of_channel(instance.channel)
            key = (server, queue)
            receive = receives.get(key) or receives.keep(key, rabbitmq.operation(
                "receive", "receive", queue, server))
            if telemetry.leaf is not None:
                span = telemetry.leaf.start(receive.name, _CLIENT, receive.attributes)
            else:
                span = telemetry.tracer.start_span(receive.name, kind=_CLIENT,
                                                   attributes=receive.attributes)
        except Exception:
            return await wrapped(*args, **kwargs)
        metric_attributes = receive.metric_attributes
        start = _now()
        try:
            message = await wrapped(*args, **kwargs)
        except empty:
            _ended(span, histogram, metric_attributes, start)
            raise
        except BaseException as exc:
            rabbitmq.failed(span, histogram, metric_attributes, exc, _now() - start)
            raise
        try:
            if message is not None and received(span, (message, message, message.body)):
                telemetry.counts.consumed(receive.metric_key)
        except Exception:
            pass
        _ended(span, histogram, metric_attributes, start)
        return message

    return get


def _ended(span: Any, histogram: Any, metric_attributes: dict[str, Any],
           start: float) -> None:
    try:
        histogram.record(_now() - start, metric_attributes)
        span.end()
    except Exception:
        pass


def _settle_wrapper(telemetry: common.Telemetry, settles: rabbitmq.Operations,
                    verb: str) -> Any:
    """``IncomingMessage.ack``/``nack``/``reject``: a CLIENT span ``{verb}`` with the
    delivery tag, a child of the current context. (The frame is only sent, never
    answered: the span covers handing it to the connection.)"""
    histogram = telemetry.operation

    async def settle(wrapped: Any, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        tag = instance.delivery_tag
        if type(tag) is not int or suppressed():
            return await wrapped(*args, **kwargs)
        try:
            server = consuming.server_of_message(instance)
            key = (server, verb)
            found = settles.get(key) or settles.keep(
                key, rabbitmq.settle_operation(verb, server))
            attributes = {**found.attributes, rabbitmq.DELIVERY_TAG: tag}
            if telemetry.leaf is not None:
                span = telemetry.leaf.start(found.name, _CLIENT, attributes, shared=False)
            else:
                span = telemetry.tracer.start_span(found.name, kind=_CLIENT,
                                                   attributes=attributes)
        except Exception:
            return await wrapped(*args, **kwargs)
        start = _now()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            rabbitmq.failed(span, histogram, found.metric_attributes, exc, _now() - start)
            raise
        _ended(span, histogram, found.metric_attributes, start)
        return result

    return settle
