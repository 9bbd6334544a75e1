"""MQTT across processes: a publisher and a subscriber, each run as ``telemetryflow-run
python app.py``, against the local Mosquitto broker; the subscriber's work joins the
publisher's trace through the MQTT 5 user properties."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from .launcher import LAUNCHER, REPO, app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("mosquitto")]


def test_subscriber_process_span_is_in_the_publishers_trace(otlp_receiver):
    """publisher's span → ``publish {topic}`` (PRODUCER) → the subscriber's ``process
    {filter}`` (CONSUMER, another process) → the subscriber's own span: one trace, each the
    parent of the next, the process span also linked to the publish span; both duration
    metrics arrive."""
    base = f"tf/e2e/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    subscriber = subprocess.Popen(
        [LAUNCHER, *python(app("mqtt_subscriber.py"), f"{base}/+")],
        env=receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="subscriber"), cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = subscriber.stdout.readline() if subscriber.stdout else ""
        assert line.strip() == "ready", (line, subscriber.stderr and subscriber.stderr.read())
        proc = run(python(app("mqtt_publisher.py"), f"{base}/1"),
                   receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="publisher"))
        assert proc.returncode == 0, proc.stderr
        _, stderr = subscriber.communicate(timeout=40)
        assert subscriber.returncode == 0, stderr
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait()
    names = {"place-order", f"publish {base}/1", f"process {base}/+", "handle-message"}
    assert otlp_receiver.wait_for(lambda r: names <= {s.name for s in r.spans()},
                                  timeout=20), [s.name for s in otlp_receiver.spans()]
    spans = {s.name: s for s in otlp_receiver.spans()}
    order, publish = spans["place-order"], spans[f"publish {base}/1"]
    process, handle = spans[f"process {base}/+"], spans["handle-message"]
    assert len({order.trace_id, publish.trace_id, process.trace_id, handle.trace_id}) == 1
    assert publish.kind == "PRODUCER" and process.kind == "CONSUMER"
    assert publish.parent_span_id == order.span_id
    assert process.parent_span_id == publish.span_id
    assert publish.span_id in [link.span_id for link in process.links]
    assert handle.parent_span_id == process.span_id
    assert publish.resource["service.name"] == "publisher"
    assert process.resource["service.name"] == "subscriber"
    assert process.attributes["messaging.system"] == "mqtt"
    assert process.attributes["messaging.destination.name"] == f"{base}/1"
    assert process.attributes["messaging.destination.template"] == f"{base}/+"
    assert otlp_receiver.wait_for(
        lambda r: {"messaging.client.operation.duration", "messaging.process.duration"}
        <= {p.name for p in r.metrics()}, timeout=20), [p.name for p in otlp_receiver.metrics()]
