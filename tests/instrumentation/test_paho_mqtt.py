"""paho-mqtt under the instrumentation, against the local Mosquitto broker: publish and
process spans, the context in MQTT 5 user properties (none in MQTT 3.1.1, whose payload
stays as sent), duration metrics, callback failures, and what is never recorded."""

from __future__ import annotations

import os
import queue
import textwrap
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.side_by_side import run_scenarios

pytestmark = pytest.mark.service("mosquitto")

HOST, PORT = "127.0.0.1", 1883
SERVER = {"messaging.system": "mqtt", "server.address": HOST, "server.port": PORT}
PASSWORD = "s3cr3t-mqtt-pw-5521"
PAYLOAD = b"t0p-secret-payload-8812"
WAIT = 10.0


class Recorded:
    """In-memory span and metric exporters behind a PatchContext paho is patched with
    (once per process: patching is global and permanent)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from paho.mqtt import client

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation import paho_mqtt as ours
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("tests.mqtt.app")
        self.reader = InMemoryMetricReader()
        self.context = PatchContext(
            tracer=provider.get_tracer("tests.mqtt"),
            meter=MeterProvider(metric_readers=[self.reader]).get_meter("t"),
            logger_provider=None, config=TelemetryConfig(), handler=None)
        ours.patch(client, self.context)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> Any:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.spans()])
        return found[0]

    def points(self, metric_name: str, **attributes: Any) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == metric_name:
                        found += [p for p in metric.data.data_points
                                  if all(p.attributes.get(k) == v
                                         for k, v in attributes.items())]
        return found

    def all_text(self) -> str:
        parts = []
        for span in self.spans():
            parts.append(f"{span.name} {dict(span.attributes)!r} {span.status}")
            parts.extend(f"{e.name} {dict(e.attributes)!r}" for e in span.events)
        for name in ("messaging.client.operation.duration", "messaging.process.duration"):
            parts.extend(repr(dict(p.attributes)) for p in self.points(name))
        return "\n".join(parts)


_session: list[Recorded] = []


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    if not _session:
        _session.append(Recorded())
    _session[0].exporter.clear()
    yield _session[0]
    _session[0].exporter.clear()


def topic(name: str) -> str:
    """A topic unique to this test run."""
    return f"tf/{os.getpid()}/{uuid.uuid4().hex[:8]}/{name}"


class Client:
    """A connected paho client with its network loop in a thread (``loop=False``: the test
    drives ``client.loop()`` itself), and the messages its ``on_message`` got."""

    def __init__(self, protocol: Any = None, loop: bool = True,
                 credentials: tuple[str, str] | None = None, **options: Any) -> None:
        from paho.mqtt import client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  protocol=protocol or mqtt.MQTTv5, **options)
        self.messages: queue.Queue[tuple[Any, Any, Any]] = queue.Queue()
        self._ready = threading.Event()
        self._acked = threading.Event()
        self.client.on_connect = lambda *_: self._ready.set()
        self.client.on_subscribe = lambda *_: self._acked.set()
        self.client.on_message = self.on_message
        self._loop = loop
        if credentials is not None:
            self.client.username_pw_set(*credentials)

    def on_message(self, client: Any, userdata: Any, message: Any) -> None:
        from opentelemetry import trace

        self.messages.put((message, trace.get_current_span().get_span_context(),
                           client.on_message))

    def __enter__(self) -> Client:
        self.client.connect(HOST, PORT)
        if self._loop:
            self.client.loop_start()
            assert self._ready.wait(WAIT)
        else:
            self.pump(self._ready)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()
        if self._loop:
            self.client.loop_stop()

    def pump(self, event: threading.Event) -> None:
        """Run the network loop in this thread until ``event`` is set."""
        for _ in range(int(WAIT * 20)):
            if event.is_set():
                return
            self.client.loop(0.05)
        raise AssertionError("timed out")

    def subscribe(self, *filters: str) -> None:
        self._acked.clear()
        self.client.subscribe([(f, 1) for f in filters])
        if self._loop:
            assert self._acked.wait(WAIT)
        else:
            self.pump(self._acked)

    def next(self) -> tuple[Any, Any, Any]:
        return self.messages.get(timeout=WAIT)


def _v5_properties(**pairs: str) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = list(pairs.items())
    return properties


def test_v5_publish_is_a_producer_span_the_on_message_callback_continues(recorded):
    """MQTT 5: ``publish {topic}`` (PRODUCER) writes its traceparent into a copy of the
    caller's properties; ``on_message`` runs in ``process {filter}`` (CONSUMER), the publish
    span's child and linked to it, named after the wildcard subscription it came through;
    both duration metrics, the process point carrying the template, not the topic."""
    base = topic("v5")
    given = _v5_properties(tenant="blue")
    with Client() as consumer, Client() as producer:
        consumer.subscribe(f"{base}/+/state")
        with recorded.tracer.start_as_current_span("place-order"):
            producer.client.publish(f"{base}/7/state", PAYLOAD, qos=1,
                                    properties=given).wait_for_publish(WAIT)
        message, inside, seen_on_message = consumer.next()
    assert given.UserProperty == [("tenant", "blue")]  # the caller's object, untouched
    assert message.payload == PAYLOAD
    publish = recorded.span(f"publish {base}/7/state")
    process = recorded.span(f"process {base}/+/state")
    order = recorded.span("place-order")
    pairs = dict(message.properties.UserProperty)
    assert pairs["tenant"] == "blue"
    assert pairs["traceparent"] == (f"00-{publish.context.trace_id:032x}-"
                                    f"{publish.context.span_id:016x}-"
                                    f"{publish.context.trace_flags:02x}")
    assert publish.kind == SpanKind.PRODUCER and publish.parent.span_id == order.context.span_id
    assert dict(publish.attributes) == {
        **SERVER, "messaging.operation.name": "publish", "messaging.operation.type": "send",
        "messaging.destination.name": f"{base}/7/state",
        "messaging.message.body.size": len(PAYLOAD)}
    assert process.kind == SpanKind.CONSUMER
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
    assert dict(process.attributes) == {
        **SERVER, "messaging.operation.name": "process", "messaging.operation.type": "process",
        "messaging.destination.name": f"{base}/7/state",
        "messaging.destination.template": f"{base}/+/state",
        "messaging.message.body.size": len(PAYLOAD)}
    assert inside.span_id == process.context.span_id  # the callback ran inside it
    assert seen_on_message == consumer.on_message  # the program reads its own callback
    assert len(recorded.points("messaging.client.operation.duration",
                               **{"messaging.destination.name": f"{base}/7/state"})) == 1
    [point] = recorded.points("messaging.process.duration",
                              **{"messaging.destination.template": f"{base}/+/state"})
    assert "messaging.destination.name" not in point.attributes


def test_topic_callbacks_are_named_after_their_filter(recorded):
    """``message_callback_add`` (and ``@topic_callback``) callbacks run in ``process
    {filter}`` spans, ``on_message`` not called for their messages; a shared subscription
    names its group; the callback keeps its ``__name__`` for paho's logs, and reading
    ``client.on_message`` inside it gives the program's own function."""
    base = topic("filters")
    got: queue.Queue[tuple[str, Any]] = queue.Queue()
    reads: list[Any] = []

    def exact(client, userdata, message):
        from opentelemetry import trace

        got.put((message.topic, trace.get_current_span().get_span_context()))
        reads.append(client.on_message)

    with Client() as consumer, Client() as producer:
        consumer.client.message_callback_add(f"{base}/exact", exact)
        consumer.client.topic_callback(f"{base}/dev/#")(exact)
        consumer.subscribe(f"{base}/exact", f"{base}/dev/#", f"$share/workers/{base}/jobs")
        for suffix in ("exact", "dev/9/temp", "jobs"):
            producer.client.publish(f"{base}/{suffix}", b"1", qos=1).wait_for_publish(WAIT)
        received = dict(got.get(timeout=WAIT) for _ in range(2))
        message, _, _ = consumer.next()  # jobs: no topic callback, so on_message
    assert message.topic == f"{base}/jobs" and consumer.messages.empty()
    assert received[f"{base}/exact"].span_id == recorded.span(
        f"process {base}/exact").context.span_id
    device = recorded.span(f"process {base}/dev/#")
    assert received[f"{base}/dev/9/temp"].span_id == device.context.span_id
    assert device.attributes["messaging.destination.template"] == f"{base}/dev/#"
    shared = recorded.span(f"process {base}/jobs")
    assert shared.attributes["messaging.consumer.group.name"] == "workers"
    assert "messaging.destination.template" not in shared.attributes
    assert consumer.client._on_message_filtered[f"{base}/exact"].__name__ == "exact"
    assert reads == [consumer.on_message] * 2  # the program reads back its own callback
    [exact_point] = recorded.points("messaging.process.duration",
                                    **{"messaging.destination.name": f"{base}/exact"})
    assert "messaging.destination.template" not in exact_point.attributes


def test_mqtt_311_payload_is_unchanged_and_the_consumer_starts_its_own_trace(recorded):
    """MQTT 3.1.1 has no headers: the payload arrives exactly as sent (nothing injected),
    the publish span is made, and the process span starts a trace of its own, unlinked."""
    from paho.mqtt.client import MQTTv311

    name = topic("v311")
    with Client(MQTTv311) as consumer, Client(MQTTv311) as producer:
        consumer.subscribe(name)
        with recorded.tracer.start_as_current_span("place-order"):
            producer.client.publish(name, PAYLOAD, qos=1).wait_for_publish(WAIT)
        message, inside, _ = consumer.next()
    assert message.payload == PAYLOAD and message.properties is None
    publish, process = recorded.span(f"publish {name}"), recorded.span(f"process {name}")
    assert process.parent is None and process.links == ()
    assert process.context.trace_id != publish.context.trace_id
    assert inside.span_id == process.context.span_id
    assert publish.attributes["messaging.destination.name"] == name


def test_a_traceparent_the_caller_passed_is_replaced_and_linked(recorded):
    """Properties that already carry trace keys (a message republished with the properties
    it came with): the copy sent carries the publish span's context instead, the publish
    span is linked to the old one, and the caller's object keeps its own."""
    stale = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    given = _v5_properties(traceparent=stale, tracestate="x=1", note="n")
    name = topic("republish")
    with Client() as consumer, Client() as producer:
        consumer.subscribe(name)
        producer.client.publish(name, b"r", qos=1, properties=given).wait_for_publish(WAIT)
        message, _, _ = consumer.next()
    publish = recorded.span(f"publish {name}")
    sent = message.properties.UserProperty
    assert [k for k, _ in sent] == ["note", "traceparent"]
    assert dict(sent)["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"
    assert [f"{link.context.span_id:016x}" for link in publish.links] == ["b7ad6b7169203331"]
    assert given.UserProperty == [("traceparent", stale), ("tracestate", "x=1"),
                                  ("note", "n")]


@pytest.mark.parametrize("suppress", [False, True], ids=["raised", "suppressed"])
def test_a_failing_callback_is_an_error_and_paho_handles_it_as_before(recorded, suppress):
    """A callback that raises: the process span is ERROR with ``error.type`` and an
    exception event without the message (it may quote the payload); paho then raises it out
    of ``loop()`` or only logs it, as ``suppress_exceptions`` says."""
    name = topic("fails")

    class Rejected(Exception):
        pass

    def handler(client, userdata, message):
        raise Rejected(f"bad input {message.payload!r}")

    with Client(loop=False) as consumer, Client() as producer:
        consumer.client.suppress_exceptions = suppress
        consumer.client.on_message = handler
        consumer.subscribe(name)
        producer.client.publish(name, PAYLOAD, qos=1).wait_for_publish(WAIT)
        raised = False
        for _ in range(int(WAIT * 20)):
            try:
                consumer.client.loop(0.05)
            except Rejected:
                raised = True
                break
            if any(s.name == f"process {name}" for s in recorded.spans()):
                break
        else:
            raise AssertionError("no message")
    assert raised is not suppress
    process = recorded.span(f"process {name}")
    kind = f"{Rejected.__module__}.{Rejected.__qualname__}"
    assert process.status.status_code == StatusCode.ERROR
    assert process.attributes["error.type"] == kind
    [event] = process.events
    assert event.name == "exception" and "exception.message" not in event.attributes
    assert PAYLOAD.decode() not in recorded.all_text()
    assert len(recorded.points("messaging.process.duration",
                               **{"error.type": kind, "messaging.destination.name": name})) == 1


def test_calls_left_untraced_run_exactly_once(recorded):
    """A publish whose arguments are not understood and a callback run while
    instrumentation is suppressed: each runs once, its exception propagating as is."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    name = topic("once")
    calls: list[str] = []

    def handler(client, userdata, message):
        calls.append("callback")
        raise KeyError("from the callback")

    class Topic(str):  # (a str subclass: left to paho)
        pass

    with Client(loop=False) as consumer, Client() as producer:
        original = producer.client._raise_for_invalid_topic

        def counted(topic: bytes) -> None:
            calls.append("publish")
            original(topic)

        producer.client._raise_for_invalid_topic = counted
        with pytest.raises(ValueError, match="wildcards"):
            producer.client.publish(Topic(f"{name}/+"), b"1")
        assert calls == ["publish"] and not recorded.spans()
        consumer.client.on_message = handler
        consumer.subscribe(name)
        producer.client.publish(name, b"2", qos=1).wait_for_publish(WAIT)
        with suppress_instrumentation(), pytest.raises(KeyError, match="from the callback"):
            for _ in range(int(WAIT * 20)):
                consumer.client.loop(0.05)
    assert calls == ["publish", "publish", "callback"]
    assert [s.name for s in recorded.spans()] == [f"publish {name}"]


def test_credentials_and_payloads_are_never_recorded(recorded):
    """A client with ``username_pw_set`` and a client id: the id is
    ``messaging.client.id``; neither the user name nor the password nor the payload appear
    in any span, event or metric point."""
    name = topic("secret")
    credentials = ("mqtt-user-x", PASSWORD)  # (the broker takes anyone: it ignores them)
    with Client(client_id="tf-test-client", credentials=credentials) as consumer, \
            Client(client_id="tf-test-producer", credentials=credentials) as producer:
        consumer.subscribe(name)
        producer.client.publish(name, PAYLOAD, qos=1).wait_for_publish(WAIT)
        consumer.next()
    assert recorded.span(f"publish {name}").attributes["messaging.client.id"] == \
        "tf-test-producer"
    assert recorded.span(f"process {name}").attributes["messaging.client.id"] == \
        "tf-test-client"
    text = recorded.all_text()
    for secret in (PASSWORD, "mqtt-user-x", PAYLOAD.decode()):
        assert secret not in text


def test_suppressed_publish_is_neither_traced_nor_injected(recorded):
    """Inside ``suppress_instrumentation()``: no publish span, no point, no context in the
    message (the consumer's process span starts its own trace)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    name = topic("quiet")
    with Client() as consumer, Client() as producer:
        consumer.subscribe(name)
        before = len(recorded.points("messaging.client.operation.duration",
                                     **{"messaging.destination.name": name}))
        with suppress_instrumentation():
            producer.client.publish(name, b"q", qos=1,
                                    properties=_v5_properties(a="b")).wait_for_publish(WAIT)
        message, _, _ = consumer.next()
    assert dict(message.properties.UserProperty) == {"a": "b"}
    assert [s.name for s in recorded.spans()] == [f"process {name}"]
    assert recorded.span(f"process {name}").parent is None
    assert before == 0 and not recorded.points("messaging.client.operation.duration",
                                               **{"messaging.destination.name": name})


def test_a_publish_paho_refuses_or_cannot_send_is_an_error(recorded):
    """A wildcard topic: paho's ``ValueError`` propagates unchanged, the span ERROR; QoS 0
    with no connection: paho's result code as ``error.type`` (QoS 1 is kept for later:
    no error)."""
    from paho.mqtt import client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    with pytest.raises(ValueError, match="Publish topic cannot contain wildcards"):
        client.publish("tf/+/bad", b"x")
    assert client.publish("tf/offline", b"x").rc == MQTTErrorCode.MQTT_ERR_NO_CONN
    assert client.publish("tf/offline-kept", b"x", qos=1).rc == \
        MQTTErrorCode.MQTT_ERR_NO_CONN
    bad = recorded.span("publish tf/+/bad")
    assert bad.attributes["error.type"] == "ValueError"
    assert bad.status.status_code == StatusCode.ERROR
    offline = recorded.span("publish tf/offline")
    assert offline.attributes["error.type"] == "MQTT_ERR_NO_CONN"
    assert "server.address" not in offline.attributes  # never connected: no server
    kept = recorded.span("publish tf/offline-kept")
    assert kept.status.status_code == StatusCode.UNSET and "error.type" not in kept.attributes


def test_sent_and_consumed_message_counters(recorded):
    """messaging.client.sent.messages counts each publish (``{message}``, the duration
    point's attributes, ``error.type`` for one paho refused or could not send);
    messaging.client.consumed.messages counts each message handed to a callback, with the
    process point's attributes (the filter's template)."""
    from paho.mqtt import client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    base = topic("counted")
    with Client() as consumer, Client() as producer:
        consumer.subscribe(f"{base}/+")
        for _ in range(3):
            producer.client.publish(f"{base}/1", PAYLOAD, qos=1).wait_for_publish(WAIT)
        for _ in range(3):
            consumer.next()
    offline = mqtt.Client(CallbackAPIVersion.VERSION2)
    offline.publish(f"{base}-offline", b"x")
    with pytest.raises(ValueError):
        offline.publish(f"{base}/+/bad", b"x")

    sent = "messaging.client.sent.messages"
    consumed = "messaging.client.consumed.messages"
    [point] = recorded.points(sent, **{"messaging.destination.name": f"{base}/1"})
    assert point.value == 3
    assert dict(point.attributes) == {
        **SERVER, "messaging.operation.name": "publish", "messaging.operation.type": "send",
        "messaging.destination.name": f"{base}/1"}
    [refused] = recorded.points(sent, **{"messaging.destination.name": f"{base}-offline"})
    assert refused.value == 1 and refused.attributes["error.type"] == "MQTT_ERR_NO_CONN"
    [bad] = recorded.points(sent, **{"messaging.destination.name": f"{base}/+/bad"})
    assert bad.value == 1 and bad.attributes["error.type"] == "ValueError"
    [delivered] = recorded.points(consumed, **{"messaging.destination.template": f"{base}/+"})
    assert delivered.value == 3
    assert dict(delivered.attributes) == {
        **SERVER, "messaging.operation.name": "process", "messaging.operation.type": "process",
        "messaging.destination.template": f"{base}/+"}


def test_topics_past_the_limit_name_no_span_or_metric_stream(recorded):
    """The 257th distinct topic a process publishes to (topics carrying ids) is ``publish``
    with ``messaging.destination.name`` on the span only; topics seen before keep their
    names; filters are not limited."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from telemetryflow_bootstrap.instrumentation import paho_mqtt as ours

    telemetry = ours._Telemetry(recorded.context, Properties, PacketTypes.PUBLISH)
    ops = [telemetry.topic_op("publish", "send", HOST, PORT, f"dev/{i}") for i in range(300)]
    assert [op.name for op in ops[:256]] == [f"publish dev/{i}" for i in range(256)]
    assert {op.name for op in ops[256:]} == {"publish"}
    assert "messaging.destination.name" not in ops[299].metric
    assert ops[299].metric == {**SERVER, "messaging.operation.name": "publish",
                               "messaging.operation.type": "send"}
    assert telemetry.topic_op("publish", "send", HOST, PORT, "dev/3").name == "publish dev/3"
    assert telemetry.filter_op(HOST, PORT, "dev/+", "").name == "process dev/+"


def test_recorded_subscriptions_name_on_message_spans_until_unsubscribed():
    """The filters ``on_message`` spans are named after: an exact filter before a wildcard
    one, a shared subscription's group kept, gone once unsubscribed (then: no filter)."""
    from paho.mqtt import client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.subscribe([("$share/g1/a/+", 1), ("a/1", 0)])  # (not connected: refused, but
    client.subscribe(("b/#", 1))                          # recorded all the same)
    state = client.__dict__["_telemetryflow_mqtt_subscriptions"]
    assert state.match("a/1") == ("a/1", "")
    assert state.match("a/2") == ("a/+", "g1")
    assert state.match("b/c/d") == ("b/#", "")
    client.unsubscribe(["a/1", "$share/g1/a/+"])
    assert state.match("a/1") is None and state.match("b/x") == ("b/#", "")


def test_a_second_patch_adds_no_second_span(recorded):
    """Patching again (a second bootstrap, another context): one span per publish,
    recorded where the first patch sends them."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from paho.mqtt import client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import paho_mqtt as ours
    from telemetryflow_bootstrap.instrumentation.registry import PatchContext

    other = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(other))
    ours.patch(mqtt, PatchContext(tracer=provider.get_tracer("again"), meter=None,
                                  logger_provider=None, config=TelemetryConfig(),
                                  handler=None))
    mqtt.Client(CallbackAPIVersion.VERSION2).publish("tf/twice", b"x", qos=1)
    assert [s.name for s in recorded.spans()] == ["publish tf/twice"]
    assert other.get_finished_spans() == ()


# ----- the registry entry, in fresh interpreters ---------------------------------------------

_PROGRAM = textwrap.dedent("""
    import json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "twice":  # (paho imported before arming)
        import paho.mqtt.client
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_messaging, registry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    entries = tuple(e for e in _catalog_messaging.ENTRIES if e.name == "paho-mqtt")
    registry.arm(context, entries)
    if order == "twice":
        registry.arm(context, entries)
    import paho.mqtt.client as mqtt
    if order == "twice":  # a second patch call must not trace a second time
        from telemetryflow_bootstrap.instrumentation import paho_mqtt as ours
        ours.patch(mqtt, context)
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.publish("contract/topic", b"x", qos=1)  # (not connected: kept for later)
    print(json.dumps({"spans": sorted(s.name for s in exporter.get_finished_spans()),
                      "status": registry.status().get("paho-mqtt", ("", ""))[0]}))
""")
_SCENARIOS = {"twice": ("twice", ""), "arm-first": ("arm-first", ""),
              "disabled": ("arm-first", "paho-mqtt")}


@pytest.fixture(scope="module")
def contract() -> dict[str, dict[str, Any]]:
    """Every scenario's outcome; the interpreters run side by side."""
    return run_scenarios(_PROGRAM, _SCENARIOS, timeout=60)


@pytest.mark.parametrize("scenario", ["twice", "arm-first"])
def test_the_registry_entry_patches_once_whenever_paho_is_imported(contract, scenario):
    """Armed before or after paho's import (armed twice and patched again by hand): one
    publish span per publish."""
    assert contract[scenario] == {"spans": ["publish contract/topic"], "status": "applied"}


def test_disabled_by_name_leaves_paho_alone(contract):
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=paho-mqtt: no span at all."""
    assert contract["disabled"] == {"spans": [], "status": "disabled"}
