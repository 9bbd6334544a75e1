"""A producer and a consumer script, each run under ``telemetryflow-run``, against the
local RabbitMQ: the consumer's work is part of the producer's trace."""

from __future__ import annotations

import uuid

import pika
import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("rabbitmq")]


def _delete(queue: str) -> None:
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    try:
        connection.channel().queue_delete(queue)
    finally:
        connection.close()


def test_consumer_process_span_and_its_work_join_the_producers_trace(otlp_receiver):
    """producer.py publishes (send span, context in the headers); consumer.py, a separate
    process started later, handles the message: its process span is the send span's
    child (linked to it and to the consumer's own process span, which was current), and
    the span its callback opens is the process span's child."""
    queue = f"tf-pika-e2e-{uuid.uuid4().hex[:12]}"
    env = receiver_env(otlp_receiver)
    try:
        produced = run(python(app("pika_producer.py"), queue), env)
        assert produced.returncode == 0, produced.stderr
        consumed = run(python(app("pika_consumer.py"), queue), env)
        assert consumed.returncode == 0, consumed.stderr
        assert "handled order-42" in consumed.stdout
    finally:
        _delete(queue)
    assert otlp_receiver.wait_for(
        lambda r: {"PRODUCER", "CONSUMER"} <= {s.kind for s in r.spans()}
        and any(s.name == "handle-order" for s in r.spans()), timeout=15), \
        otlp_receiver.spans()
    spans = otlp_receiver.spans()
    send = next(s for s in spans if s.kind == "PRODUCER")
    process = next(s for s in spans if s.kind == "CONSUMER")
    handle = next(s for s in spans if s.name == "handle-order")
    assert send.name == f"send {queue}" and process.name == f"process {queue}"
    assert send.trace_id == process.trace_id == handle.trace_id
    assert process.parent_span_id == send.span_id
    consumer_program = next(s for s in spans if s.name == "pika_consumer")
    assert [link.span_id for link in process.links] == [send.span_id,
                                                        consumer_program.span_id]
    assert handle.parent_span_id == process.span_id
    assert send.attributes["messaging.system"] == "rabbitmq"
    assert process.attributes["messaging.message.id"] == "order-42"
    assert '{"order": 42}' not in repr([s.attributes for s in spans])
