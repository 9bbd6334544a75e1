"""An aio-pika producer and consumer, each run under ``telemetryflow-run`` against the local
RabbitMQ: the consumer's work is part of the producer's trace at the real OTLP receiver."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("rabbitmq")]


def _delete(queue: str) -> None:
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1/")
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue)

    asyncio.run(delete())


def test_publish_then_consume_is_one_trace_at_the_receiver(otlp_receiver):
    """aio_pika_app.py publishes (send span, context in the headers); run again as the
    consumer, a separate process, it handles the message: its process span is the send
    span's child (linked to it and to the consumer program's own span), the callback's
    span inside it, the ack a settle span under it; no body nor password anywhere."""
    queue = f"tf-aiopika-e2e-{uuid.uuid4().hex[:12]}"
    env = receiver_env(otlp_receiver)
    try:
        produced = run(python(app("aio_pika_app.py"), "publish", queue), env)
        assert produced.returncode == 0, produced.stderr
        consumed = run(python(app("aio_pika_app.py"), "consume", queue), env)
        assert consumed.returncode == 0, consumed.stderr
        assert "handled order-42" in consumed.stdout
    finally:
        _delete(queue)
    assert otlp_receiver.wait_for(
        lambda r: {"PRODUCER", "CONSUMER"} <= {s.kind for s in r.spans()}
        and any(s.name == "ack" for s in r.spans()), timeout=15), otlp_receiver.spans()
    spans = otlp_receiver.spans()
    send = next(s for s in spans if s.kind == "PRODUCER")
    process = next(s for s in spans if s.kind == "CONSUMER")
    handle = next(s for s in spans if s.name == "handle-order")
    ack = next(s for s in spans if s.name == "ack")
    assert send.name == f"send {queue}" and process.name == f"process {queue}"
    assert send.trace_id == process.trace_id == handle.trace_id == ack.trace_id
    assert process.parent_span_id == send.span_id
    programs = [s for s in spans if s.name == "aio_pika_app"]
    consumer_program = next(s for s in programs if s.span_id != send.parent_span_id)
    assert [link.span_id for link in process.links] == [send.span_id,
                                                        consumer_program.span_id]
    assert handle.parent_span_id == process.span_id
    assert ack.parent_span_id == process.span_id
    assert process.attributes["messaging.message.id"] == "order-42"
    assert process.attributes["server.port"] == 5672
    text = repr([(s.name, s.attributes) for s in spans])
    assert '{"order": 42}' not in text and "guest" not in text
