"""The RabbitMQ side of the pika instrumentation: the destinations as the RabbitMQ
conventions spell them, the attribute sets prepared once per destination (``Operation``,
kept in bounded ``Operations`` caches), the per-message attributes, reading the trace
context back from a message's headers (``creation_context``), a consumer's process spans
(``Consumer``), recording a failure. (The names, handles and context writing shared with
the other messaging instrumentations are ``_messaging_common``'s.)

Hot-path rule: a destination's span name and attribute dicts are built once (bounded
caches keyed by server and destination) and shared read-only; a message adds only its own
attributes (id, conversation id, body size, delivery tag).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
)

from ..infrastructure.current_context import attach, get_current, reset
from ._error_type import error_type
from ._http_common import SPAN_KEY
from ._messaging_common import (
    ANONYMOUS,
    BODY_SIZE,
    CONVERSATION_ID,
    DESTINATION,
    ERROR_TYPE,
    MESSAGE_ID,
    MESSAGING_SYSTEM,
    OPERATION_NAME,
    OPERATION_TYPE,
    SERVER_ADDRESS,
    SERVER_PORT,
    Telemetry,
    now,
)
from ._messaging_counts import with_error

SYSTEM = "rabbitmq"
ROUTING_KEY = "messaging.rabbitmq.destination.routing_key"
DELIVERY_TAG = "messaging.rabbitmq.message.delivery_tag"

# Queues the broker names for a client (exclusive server-named queues, direct reply-to):
# one per consumer or per call, so never a span name or a metric attribute.
_ANONYMOUS_PREFIXES = ("amq.gen-", "amq.rabbitmq.reply-to")
_MAX_CACHED = 512


class Operation:
    """One kind of operation on one destination: span name and attribute dicts, built
    once and shared read-only (the SDK copies span attributes, and keys metric points by
    their items)."""

    __slots__ = ("attributes", "metric_attributes", "metric_key", "name")

    def __init__(self, name: str, attributes: dict[str, Any],
                 metric_attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric_attributes = metric_attributes
        # (the message counts' key: the metric attributes as a hashable tuple, made once)
        self.metric_key = tuple(metric_attributes.items())


def is_anonymous(name: str) -> bool:
    return name.startswith(_ANONYMOUS_PREFIXES)


def producer_destination(exchange: str, routing_key: str) -> str:
    """``{exchange}:{routing key}``, whichever of the two is not empty, else
    ``amq.default`` (the RabbitMQ conventions, producer side)."""
    if exchange and routing_key:
        return f"{exchange}:{routing_key}"
    return exchange or routing_key or "amq.default"


def consumer_destination(exchange: str, routing_key: str, queue: str) -> str:
    """``{exchange}:{routing key}:{queue}`` without the empty parts, the routing key once
    when it is the queue's name (the RabbitMQ conventions, consumer side)."""
    parts = [part for part in (exchange, routing_key) if part]
    if queue and queue != routing_key:
        parts.append(queue)
    return ":".join(parts) or queue or "amq.default"


def operation(verb: str, kind: str, destination: str, server: tuple[Any, Any],
              routing_key: str = "") -> Operation:
    """The ``Operation`` of ``verb`` (``send``, ``receive``, ``process``) on a
    destination; an anonymous one is left out of the span name and the metric."""
    base: dict[str, Any] = {MESSAGING_SYSTEM: SYSTEM, OPERATION_NAME: verb,
                            OPERATION_TYPE: kind}
    host, port = server
    if host:
        base[SERVER_ADDRESS] = str(host)
    if type(port) is int:
        base[SERVER_PORT] = port
    metric = dict(base)
    attributes = dict(base)
    attributes[DESTINATION] = destination
    if routing_key:
        attributes[ROUTING_KEY] = routing_key
    if is_anonymous(destination.rsplit(":", 1)[-1]):
        attributes[ANONYMOUS] = True
        return Operation(verb, attributes, metric)
    metric[DESTINATION] = destination
    return Operation(f"{verb} {destination}", attributes, metric)


def settle_operation(verb: str, server: tuple[Any, Any]) -> Operation:
    """The ``Operation`` of an acknowledgement (``ack``, ``nack``, ``reject``): named after
    the verb alone, as the destination of a delivery tag is not known to the channel."""
    attributes: dict[str, Any] = {MESSAGING_SYSTEM: SYSTEM, OPERATION_NAME: verb,
                                  OPERATION_TYPE: "settle"}
    host, port = server
    if host:
        attributes[SERVER_ADDRESS] = str(host)
    if type(port) is int:
        attributes[SERVER_PORT] = port
    return Operation(verb, attributes, dict(attributes))


class Operations:
    """A bounded cache of ``Operation``s by key; anonymous destinations are not kept (a
    reply queue per call would only churn it)."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[Any, Operation] = {}

    def get(self, key: Any) -> Operation | None:
        return self._known.get(key)

    def keep(self, key: Any, found: Operation) -> Operation:
        if ANONYMOUS not in found.attributes:
            if len(self._known) >= _MAX_CACHED:
                self._known.clear()  # rare; cheaper than LRU bookkeeping
            self._known[key] = found
        return found


def server_of(connection: Any) -> tuple[Any, Any]:
    """(host, port) of the connection's parameters: the one connected to when a list was
    given. Nothing else is read from them (credentials stay where they are)."""
    params = connection.params
    return params.host, params.port


def message_attributes(properties: Any, body: Any,
                       delivery_tag: Any = None) -> dict[str, Any]:
    """A message's own attributes: id, correlation id, body size (never the body)."""
    found: dict[str, Any] = {}
    if properties is not None:
        value = properties.message_id
        if value:
            found[MESSAGE_ID] = str(value)
        value = properties.correlation_id
        if value:
            found[CONVERSATION_ID] = str(value)
    if isinstance(body, (bytes, bytearray)):
        found[BODY_SIZE] = len(body)
    elif isinstance(body, str):
        found[BODY_SIZE] = len(body.encode("utf-8", "surrogatepass"))
    if type(delivery_tag) is int:
        found[DELIVERY_TAG] = delivery_tag
    return found


class _HeadersGetter(Getter[Mapping[str, Any]]):
    """Header values as pika decodes them: text, or bytes when they were not UTF-8."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, bytes):
            return [value.decode("utf-8", "replace")]
        return None

    def keys(self, carrier: Mapping[str, Any]) -> Iterable[str]:
        return [key for key in carrier if isinstance(key, str)]


_GETTER = _HeadersGetter()
_EMPTY = Context()


def creation_context(properties: Any) -> tuple[Context, SpanContext] | None:
    """The context a message carries in its headers (the producer's send span), and that
    span's context; None when it carries none."""
    headers = getattr(properties, "headers", None) if properties is not None else None
    if not headers or not isinstance(headers, Mapping):
        return None
    extracted = propagate.extract(headers, context=_EMPTY, getter=_GETTER)
    found = get_current_span(extracted).get_span_context()
    return (extracted, found) if found.is_valid else None


class Consumer:
    """One consumer (a ``basic_consume`` or a ``consume()`` generator): its queue, the
    server, and the process operations seen by exchange and routing key."""

    __slots__ = ("_operations", "_queue", "_server", "_telemetry")

    def __init__(self, telemetry: Telemetry, impl: Any, queue: str) -> None:
        self._telemetry = telemetry
        self._queue = queue
        self._server = server_of(impl.connection)
        self._operations = Operations()

    def start(self, method: Any, properties: Any, body: Any
              ) -> tuple[Any, Any, dict[str, Any], float]:
        """Start the process span of one delivery and make it current: (span, token,
        metric attributes, start time)."""
        exchange, routing_key = method.exchange, method.routing_key
        key = (exchange, routing_key)
        process = self._operations.get(key)
        if process is None:
            process = self._operations.keep(key, operation(
                "process", "process",
                consumer_destination(exchange, routing_key, self._queue),
                self._server, routing_key))
        attributes = {**process.attributes,
                      **message_attributes(properties, body, method.delivery_tag)}
        self._telemetry.counts.consumed(process.metric_key)
        found = creation_context(properties)
        parent, links = (_EMPTY, []) if found is None else (found[0], [Link(found[1])])
        ambient = get_current_span(get_current()).get_span_context()
        # (a remote ambient context is a parent process's, from TRACEPARENT: no span of
        # this program's to link)
        if ambient.is_valid and not ambient.is_remote:
            links.append(Link(ambient))
        span = self._telemetry.tracer.start_span(process.name, context=parent,
                                                 kind=SpanKind.CONSUMER, attributes=attributes,
                                                 links=links)
        token = attach(Context(parent, **{SPAN_KEY: span}))
        return span, token, process.metric_attributes, now()

    def end(self, started: tuple[Any, Any, dict[str, Any], float],
            exc: BaseException | None = None) -> None:
        """Leave and end a process span (with ``exc``: as failed). Never raises."""
        span, token, metric_attributes, start = started
        elapsed = now() - start
        with suppress(Exception):  # (a generator closed in another context: nothing to undo)
            reset(token)
        histogram = self._telemetry.process
        if exc is not None:
            failed(span, histogram, metric_attributes, exc, elapsed)
            return
        try:
            histogram.record(elapsed, metric_attributes)
            span.end()
        except Exception:
            pass


def failed(span: Any, histogram: Any, metric_attributes: dict[str, Any],
           exc: BaseException, elapsed: float) -> str | None:
    """End ``span`` as failed and record its point with ``error.type``; the error type
    (None if that failed). Runs inside the caller's ``except``: it never raises.

    The exception event keeps the message of pika's own exceptions (the broker's reply
    text names exchanges and queues) and drops that of any other: a consumer's exception
    may quote the message body (a validation error showing the input)."""
    try:
        kind = error_type(exc)
        span.set_attribute(ERROR_TYPE, kind)
        ours = type(exc).__module__.startswith("pika.")
        event = {"exception.type": kind,
                 "exception.stacktrace": "Traceback (most recent call last):\n"
                 + "".join(traceback.format_tb(exc.__traceback__)) + kind}
        if ours:
            event["exception.message"] = str(exc)
        span.add_event("exception", event)
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {exc}" if ours else kind))
        span.end()
        histogram.record(elapsed, {**metric_attributes, ERROR_TYPE: kind})
    except Exception:
        return None
    return kind


def sent_failed(telemetry: Telemetry, span: Any, send: Operation, exc: BaseException,
                elapsed: float) -> None:
    """A send that raised: its span and point as failed, counted with ``error.type``."""
    kind = failed(span, telemetry.operation, send.metric_attributes, exc, elapsed)
    if kind is not None:
        with suppress(Exception):
            telemetry.counts.sent(with_error(send.metric_key, kind))
