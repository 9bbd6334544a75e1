"""RabbitMQ and NATS JetStream in one program run under ``telemetryflow-run``, exported
to the loopback OTLP receiver: acknowledgements are settle spans, ``publish_async``'s span
ends with its ack, key-value subjects are templated, and the sent/consumed message
counters arrive as monotonic sums."""

from __future__ import annotations

import os
import uuid

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("rabbitmq"), pytest.mark.service("nats")]

SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"


def test_settle_spans_publish_async_templates_and_message_counters(otlp_receiver):
    """One launch checks: the pika ``ack`` span (settle, delivery tag 1); the JetStream
    ``publish_async`` PRODUCER span, ended without error; the key-value put named after
    ``$KV.{bucket}.>`` with the key only in its destination attribute; sent and consumed
    counters per library, unit ``{message}``, with no key in any metric attribute."""
    name = f"TF{os.getpid()}{uuid.uuid4().hex[:6]}"
    proc = run(python(app("pika_nats_settle_and_counts.py"), name),
               receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"

    def arrived(receiver) -> bool:
        names = {p.name for p in receiver.metrics()}
        return {SENT, CONSUMED} <= names and any(
            s.name == "ack" for s in receiver.spans())

    assert otlp_receiver.wait_for(arrived, timeout=15), otlp_receiver.spans()
    spans = otlp_receiver.spans()
    ack = next(s for s in spans if s.name == "ack")
    assert ack.kind == "CLIENT" and ack.attributes["messaging.system"] == "rabbitmq"
    assert ack.attributes["messaging.operation.type"] == "settle"
    assert ack.attributes["messaging.rabbitmq.message.delivery_tag"] == 1
    publish = next(s for s in spans if s.name == f"publish tfe2e.{name}")
    assert publish.kind == "PRODUCER" and "error.type" not in publish.attributes
    put = next(s for s in spans if s.name == f"publish $KV.kv{name}.>")
    assert put.attributes["messaging.destination.name"] == \
        f"$KV.kv{name}.customer-981.address"
    points = otlp_receiver.metrics()
    counters = [p for p in points if p.name in (SENT, CONSUMED)]
    assert all(p.kind == "sum" and p.is_monotonic and p.unit == "{message}"
               for p in counters)

    def total(metric: str, system: str, destination: str) -> float:
        found = [p for p in counters if p.name == metric
                 and p.attributes.get("messaging.system") == system
                 and p.attributes.get("messaging.destination.name") == destination]
        return max((p.value for p in found), default=0)  # (cumulative: the last is largest)

    assert total(SENT, "rabbitmq", name) == 1
    assert total(CONSUMED, "rabbitmq", name) == 1
    assert total(SENT, "nats", f"tfe2e.{name}") == 1
    assert total(CONSUMED, "nats", f"tfe2e.{name}") == 1
    assert "customer-981" not in repr([p.attributes for p in points])
