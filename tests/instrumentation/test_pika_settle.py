"""pika (RabbitMQ) under the instrumentation, against the local RabbitMQ: settle spans for
acknowledgements (both kinds of channel), receive spans for the asynchronous channel's
``basic_get``, and the sent/consumed message counters."""

from __future__ import annotations

import uuid
from typing import Any

import pika
import pika.exceptions
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from .test_pika import (
    HOST,
    OPERATION,
    PORT,
    SERVER,
    Recorded,
    conn,
    queue,
    recorded,
)

__all__ = ["conn", "queue", "recorded"]  # (fixtures)

pytestmark = pytest.mark.service("rabbitmq")

SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"


def _settles(found: Recorded) -> list[Any]:
    return [s for s in found.spans(SpanKind.CLIENT)
            if s.attributes.get("messaging.operation.type") == "settle"]


def _metric(found: Recorded, name: str) -> Any:
    data = found.reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    return metric
    return None


def _value(found: Recorded, name: str, **attributes: Any) -> int:
    points = found.points(name, **attributes)
    return sum(p.value for p in points)


def test_blocking_ack_nack_reject_are_settle_spans(recorded, conn, queue):
    """basic_ack/basic_nack/basic_reject of a BlockingChannel: one CLIENT span each, named
    after the verb, operation type ``settle``, with the delivery tag and the server, and a
    messaging.client.operation.duration point; the pika channel under it adds none."""
    channel = conn.channel()
    with suppress_instrumentation():
        for body in (b"a", b"b", b"c"):
            channel.basic_publish("", queue, body)
        tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
    channel.basic_ack(tags[0])
    channel.basic_nack(delivery_tag=tags[1], requeue=False)
    channel.basic_reject(tags[2], requeue=False)
    spans = _settles(recorded)
    assert [s.name for s in spans] == ["ack", "nack", "reject"]
    for span, verb, tag in zip(spans, ("ack", "nack", "reject"), tags, strict=True):
        assert dict(span.attributes) == {
            **SERVER, "messaging.operation.type": "settle", "messaging.operation.name": verb,
            "messaging.rabbitmq.message.delivery_tag": tag}
    assert recorded.points(OPERATION, **{"messaging.operation.name": "reject",
                                         "messaging.operation.type": "settle"})
    assert len(recorded.spans()) == 3


def test_an_ack_on_a_closed_channel_fails_under_its_span(recorded, conn):
    """An ack pika refuses (the channel is closed): the span is an error with error.type,
    and the program gets pika's exception unchanged."""
    channel = conn.channel()
    channel.close()
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        channel.basic_ack(1)
    (span,) = _settles(recorded)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "pika.exceptions.ChannelWrongStateError"
    assert recorded.points(OPERATION, **{
        "messaging.operation.name": "ack",
        "error.type": "pika.exceptions.ChannelWrongStateError"})


def test_an_ack_inside_the_callback_is_a_child_of_the_process_span(recorded, conn, queue):
    """Settling a delivery inside its callback: the ack span's parent is the process
    span, so the trace shows the message was acknowledged by that work."""
    channel = conn.channel()
    channel.basic_publish("", queue, b"job")

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    process = recorded.one(SpanKind.CONSUMER)
    (ack,) = _settles(recorded)
    assert ack.parent.span_id == process.context.span_id
    assert ack.attributes["messaging.rabbitmq.message.delivery_tag"] == 1


def test_select_connection_basic_get_and_ack(recorded, queue):
    """The asynchronous Channel: basic_get is a CLIENT ``receive {queue}`` span from the
    request to the broker's answer, linked to the message's send span and ended before the
    program's callback runs; an empty queue's answer ends its span without a message; the
    callback's ack is one settle span; one message consumed is counted."""
    seen: list[Any] = []

    def on_empty(frame: Any) -> None:
        seen.append("empty")
        frame_channel[0].connection.close()

    def on_got(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        seen.append(body)
        seen.append(len(recorded.spans(SpanKind.CLIENT)))  # the receive span has ended
        ch.basic_ack(method.delivery_tag)
        ch.add_callback(on_empty, [pika.spec.Basic.GetEmpty], one_shot=True)
        ch.basic_get(queue, on_got)

    frame_channel: list[Any] = []

    def on_confirmed(frame: Any) -> None:
        frame_channel[0].basic_get(queue, on_got)

    def on_channel(ch: Any) -> None:
        frame_channel.append(ch)
        ch.basic_publish("", queue, b"pulled", pika.BasicProperties(message_id="g-1"))
        # (a round trip after the publish, so the message is in the queue before the get)
        ch.queue_declare(queue, passive=True, callback=on_confirmed)

    connection = pika.SelectConnection(
        pika.ConnectionParameters(HOST, PORT),
        on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_close_callback=lambda c, reason: c.ioloop.stop())
    connection.ioloop.call_later(10, connection.ioloop.stop)
    connection.ioloop.start()
    assert seen == [b"pulled", 1, "empty"]
    send = recorded.one(SpanKind.PRODUCER)
    receives = [s for s in recorded.spans(SpanKind.CLIENT)
                if s.attributes["messaging.operation.type"] == "receive"]
    assert [s.name for s in receives] == [f"receive {queue}", f"receive {queue}"]
    got, empty = receives
    assert [link.context.span_id for link in got.links] == [send.context.span_id]
    assert got.attributes["messaging.message.id"] == "g-1"
    assert got.attributes["messaging.rabbitmq.message.delivery_tag"] == 1
    assert "messaging.message.id" not in empty.attributes and not empty.links
    (ack,) = _settles(recorded)
    assert ack.name == "ack" and ack.attributes["messaging.rabbitmq.message.delivery_tag"] == 1
    assert _value(recorded, CONSUMED, **{"messaging.destination.name": queue,
                                         "messaging.operation.name": "receive"}) == 1


def test_sent_and_consumed_message_counters(recorded, conn, queue):
    """messaging.client.sent.messages counts each publish (unit ``{message}``, the duration
    point's attributes, ``error.type`` for one that failed);
    messaging.client.consumed.messages counts each message delivered to the program, by a
    callback (process) or basic_get (receive), never an empty get."""
    channel = conn.channel()
    for _ in range(3):
        channel.basic_publish("", queue, b"m")
    confirmed = conn.channel()
    confirmed.confirm_delivery()
    lost = f"tf-pika-none-{uuid.uuid4().hex}"
    with pytest.raises(pika.exceptions.UnroutableError):
        confirmed.basic_publish("", lost, b"x", mandatory=True)
    assert channel.basic_get(queue, auto_ack=True)[0] is not None
    assert channel.basic_get(f"{queue}", auto_ack=True)[0] is not None

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        ch.stop_consuming()

    channel.basic_consume(queue, on_message, auto_ack=True)
    channel.start_consuming()
    assert channel.basic_get(queue) == (None, None, None)

    sent = recorded.points(SENT, **{"messaging.destination.name": queue})
    assert [p.value for p in sent] == [3]
    assert dict(sent[0].attributes) == {
        **SERVER, "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.destination.name": queue}
    (failed,) = recorded.points(SENT, **{"messaging.destination.name": lost})
    assert failed.value == 1
    assert failed.attributes["error.type"] == "pika.exceptions.UnroutableError"
    assert _value(recorded, CONSUMED, **{"messaging.destination.name": queue,
                                         "messaging.operation.name": "receive"}) == 2
    assert _value(recorded, CONSUMED, **{"messaging.destination.name": queue,
                                         "messaging.operation.name": "process"}) == 1
    assert _metric(recorded, SENT).unit == _metric(recorded, CONSUMED).unit == "{message}"
    assert _metric(recorded, SENT).data.is_monotonic


def test_a_publish_on_a_closed_blocking_channel_is_one_failed_span(recorded, conn, queue):
    """Once a BlockingChannel is closed pika has cleared its channel's owner, so both
    layers would trace the publish: one failed PRODUCER span, not two."""
    channel = conn.channel()
    channel.close()
    with pytest.raises(pika.exceptions.ChannelWrongStateError):
        channel.basic_publish("", queue, b"late")
    send = recorded.one(SpanKind.PRODUCER)
    assert send.attributes["error.type"] == "pika.exceptions.ChannelWrongStateError"
