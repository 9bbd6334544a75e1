"""NATS across processes: a publisher and a subscriber (and a requester and a responder),
each run as ``telemetryflow-run python app.py``, against the local NATS server; the
consumer's work joins the producer's trace through the message headers."""

from __future__ import annotations

import os
import subprocess
import uuid
from typing import Any

import pytest

from .launcher import LAUNCHER, REPO, app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("nats")]


def _subscriber(subject: str, env: dict[str, str], *mode: str) -> subprocess.Popen[str]:
    """The subscriber app under the launcher, once it said it is subscribed."""
    proc = subprocess.Popen(
        [LAUNCHER, *python(app("nats_subscriber.py"), subject, *mode)], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if line.strip() != "ready":
        proc.kill()
        _, stderr = proc.communicate(timeout=10)
        raise AssertionError(f"subscriber did not start: {line!r} {stderr}")
    return proc


def _finished(proc: subprocess.Popen[str]) -> None:
    try:
        _, stderr = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, stderr


def _wait(receiver: Any, names: set[str]) -> dict[str, Any]:
    assert receiver.wait_for(lambda r: names <= {s.name for s in r.spans()}, timeout=20), \
        [s.name for s in receiver.spans()]
    return {s.name: s for s in receiver.spans()}


def test_subscriber_process_span_is_in_the_publishers_trace(otlp_receiver):
    """publisher's span → ``publish`` (PRODUCER) → the subscriber's ``process``
    (CONSUMER, another process) → the subscriber's own span: one trace, each the parent of
    the next, the process span also linked to the publish span."""
    subject = f"tf.e2e.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    subscriber = _subscriber(subject, receiver_env(otlp_receiver,
                                                   TELEMETRYFLOW_SERVICE_NAME="subscriber"))
    try:
        proc = run(python(app("nats_publisher.py"), subject),
                   receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="publisher"))
        assert proc.returncode == 0, proc.stderr
    finally:
        _finished(subscriber)
    spans = _wait(otlp_receiver, {"place-order", f"publish {subject}",
                                  f"process {subject}", "handle-message"})
    order, publish = spans["place-order"], spans[f"publish {subject}"]
    process, handle = spans[f"process {subject}"], spans["handle-message"]
    assert len({order.trace_id, publish.trace_id, process.trace_id, handle.trace_id}) == 1
    assert publish.kind == "PRODUCER" and process.kind == "CONSUMER"
    assert publish.parent_span_id == order.span_id
    assert process.parent_span_id == publish.span_id
    assert [link.span_id for link in process.links] == [publish.span_id]
    assert handle.parent_span_id == process.span_id
    assert process.resource["service.name"] == "subscriber"
    assert publish.resource["service.name"] == "publisher"
    assert process.attributes["messaging.system"] == "nats"
    assert process.attributes["messaging.destination.name"] == subject
    points = {p.name for p in otlp_receiver.metrics()}
    assert {"messaging.client.operation.duration", "messaging.process.duration"} <= points


def test_request_reply_across_processes_is_one_trace(otlp_receiver):
    """requester's span → ``request`` (CLIENT) → the responder's ``process`` → its
    ``publish`` of the reply: one trace; the requester prints the reply it got."""
    subject = f"tf.e2e.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    responder = _subscriber(subject, receiver_env(otlp_receiver), "respond")
    try:
        proc = run(python(app("nats_publisher.py"), subject, "request"),
                   receiver_env(otlp_receiver))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "answer:order-1"
    finally:
        _finished(responder)
    spans = _wait(otlp_receiver, {"place-order", f"request {subject}",
                                  f"process {subject}", "publish"})
    order, request = spans["place-order"], spans[f"request {subject}"]
    process, reply = spans[f"process {subject}"], spans["publish"]
    assert request.kind == "CLIENT" and request.parent_span_id == order.span_id
    assert process.parent_span_id == request.span_id
    assert reply.kind == "PRODUCER"
    assert reply.attributes["messaging.destination.temporary"] is True
    assert spans["handle-message"].parent_span_id == process.span_id
    assert reply.parent_span_id == spans["handle-message"].span_id
    assert len({order.trace_id, request.trace_id, process.trace_id, reply.trace_id}) == 1
