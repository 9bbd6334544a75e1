"""pika (RabbitMQ) under the instrumentation, against the local RabbitMQ: send spans and the
trace context in the message headers, process spans around consumer callbacks and
``consume()`` items, receive spans for ``basic_get``, the duration metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

pytestmark = pytest.mark.service("rabbitmq")

HOST, PORT = "127.0.0.1", 5672
PASSWORD = "guest"  # the broker's default; never in telemetry (nor the user name)
SECRET_BODY = b"t0p-secret-body-5521"
OPERATION = "messaging.client.operation.duration"
PROCESS = "messaging.process.duration"
SERVER = {"messaging.system": "rabbitmq", "server.address": HOST, "server.port": PORT}


class Recorded:
    """In-memory span and metric exporters behind a hand-made PatchContext; pika is
    patched with it once per session (patching is global and permanent)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation import pika as ours
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.tracer_provider.get_tracer("tests.app")
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.context = PatchContext(
            tracer=self.tracer_provider.get_tracer("tests.pika"),
            meter=self.meter_provider.get_meter("tests.pika"),
            logger_provider=None, config=TelemetryConfig(), handler=None)
        ours.patch(pika, self.context)

    def spans(self, kind: SpanKind | None = None) -> list[Any]:
        found = self.exporter.get_finished_spans()
        return [s for s in found if kind is None or s.kind is kind]

    def one(self, kind: SpanKind) -> Any:
        found = self.spans(kind)
        assert len(found) == 1, [(s.name, s.kind) for s in self.spans()]
        return found[0]

    def points(self, name: str, **attributes: Any) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    found += [p for p in metric.data.data_points
                              if all(p.attributes.get(k) == v for k, v in attributes.items())]
        return found

    def all_text(self) -> str:
        """Every span name, attribute, event, link attribute and metric attribute."""
        parts = []
        for span in self.spans():
            parts.append(f"{span.name} {dict(span.attributes)!r} {span.status.description!r}")
            parts += [f"{e.name} {dict(e.attributes)!r}" for e in span.events]
        for name in (OPERATION, PROCESS):
            parts += [repr(dict(p.attributes)) for p in self.points(name)]
        return "\n".join(parts)


_session: list[Recorded] = []


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    if not _session:
        _session.append(Recorded())
    session = _session[0]
    session.exporter.clear()
    yield session
    session.exporter.clear()


@pytest.fixture
def conn() -> Iterator[pika.BlockingConnection]:
    made = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
    yield made
    if made.is_open:
        made.close()


@pytest.fixture
def queue(conn: pika.BlockingConnection) -> Iterator[str]:
    """A queue of this test's own, deleted afterwards."""
    name = f"tf-pika-{uuid.uuid4().hex[:12]}"
    with suppress_instrumentation():
        admin = conn.channel()
        admin.queue_declare(name)
    yield name
    with suppress_instrumentation():
        other = pika.BlockingConnection(pika.ConnectionParameters(HOST, PORT))
        other.channel().queue_delete(name)
        other.close()


def _get_untraced(channel: Any, queue: str) -> tuple[Any, Any, Any]:
    with suppress_instrumentation():
        return channel.basic_get(queue, auto_ack=True)


def _traceparent(span: Any) -> str:
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


# ----- send ------------------------------------------------------------------------------


def test_publish_is_a_producer_span_and_the_message_carries_its_context(recorded, conn,
                                                                        queue):
    """basic_publish to the default exchange: one PRODUCER span ``send {queue}`` with the
    conventions' attributes, and the message arrives with that span's traceparent; the
    caller's properties object and headers dict are left as they were."""
    channel = conn.channel()
    headers = {"x-app": "orders"}
    properties = pika.BasicProperties(headers=headers, message_id="m-1",
                                      correlation_id="c-9")
    assert channel.basic_publish("", queue, SECRET_BODY, properties) is None
    assert properties.headers is headers and headers == {"x-app": "orders"}
    send = recorded.one(SpanKind.PRODUCER)
    assert send.name == f"send {queue}"
    assert dict(send.attributes) == {
        **SERVER, "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue,
        "messaging.message.id": "m-1", "messaging.message.conversation_id": "c-9",
        "messaging.message.body.size": len(SECRET_BODY)}
    _, got, body = _get_untraced(channel, queue)
    assert body == SECRET_BODY
    assert got.headers == {"x-app": "orders", "traceparent": _traceparent(send)}
    assert got.message_id == "m-1"


def test_publish_without_properties_and_with_keywords(recorded, conn, queue):
    """properties=None (or not given), arguments by name: the message still gets the
    trace context, and the call answers as pika does."""
    channel = conn.channel()
    channel.basic_publish(exchange="", routing_key=queue, body="text body")
    channel.basic_publish("", queue, b"two", None)
    first, second = recorded.spans(SpanKind.PRODUCER)
    assert first.attributes["messaging.message.body.size"] == len(b"text body")
    for span in (first, second):
        _, got, _ = _get_untraced(channel, queue)
        assert got.headers == {"traceparent": _traceparent(span)}


def test_exchange_and_routing_key_make_the_destination(recorded, conn, queue):
    """To a named exchange: ``{exchange}:{routing key}``; to the default exchange with no
    routing key: ``amq.default``."""
    channel = conn.channel()
    exchange = f"{queue}-x"
    with suppress_instrumentation():
        channel.exchange_declare(exchange, "direct", auto_delete=True)
        channel.queue_bind(queue, exchange, "rk.1")
    try:
        channel.basic_publish(exchange, "rk.1", b"x")
        channel.basic_publish("", "", b"nowhere")
    finally:
        with suppress_instrumentation():
            channel.exchange_delete(exchange)
    named, default = recorded.spans(SpanKind.PRODUCER)
    assert named.name == f"send {exchange}:rk.1"
    assert named.attributes["messaging.destination.name"] == f"{exchange}:rk.1"
    assert default.name == "send amq.default"
    assert "messaging.rabbitmq.destination.routing_key" not in default.attributes


def test_a_context_the_caller_put_in_the_headers_is_kept_and_linked(recorded, conn, queue):
    """A traceparent the caller set is the message's creation context: not replaced, and
    the send span links to it."""
    channel = conn.channel()
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    channel.basic_publish("", queue, b"x", pika.BasicProperties(
        headers={"traceparent": theirs}))
    send = recorded.one(SpanKind.PRODUCER)
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}")
            for link in send.links] == [("0af7651916cd43dd8448eb211c80319c",
                                         "b7ad6b7169203331")]
    _, got, _ = _get_untraced(channel, queue)
    assert got.headers == {"traceparent": theirs}


def test_publish_metric_and_no_secrets(recorded, queue):
    """A send records messaging.client.operation.duration with low-cardinality attributes;
    neither the body nor the password of the connection URL reaches telemetry."""
    url = f"amqp://guest:{PASSWORD}@{HOST}:{PORT}/%2F"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        connection.channel().basic_publish("", queue, SECRET_BODY)
    finally:
        connection.close()
    points = recorded.points(OPERATION, **{"messaging.operation.name": "send",
                                           "messaging.destination.name": queue})
    assert points and points[0].count >= 1
    assert dict(points[0].attributes) == {
        **SERVER, "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.destination.name": queue}
    text = recorded.all_text()
    assert SECRET_BODY.decode() not in text and PASSWORD not in text


def test_unroutable_publish_with_confirms_is_an_error(recorded, conn):
    """With publisher confirms, a mandatory message nobody can route raises
    UnroutableError: the span says so and the program gets the exception unchanged."""
    channel = conn.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        channel.basic_publish("", f"tf-pika-none-{uuid.uuid4().hex}", b"x", mandatory=True)
    send = recorded.one(SpanKind.PRODUCER)
    assert send.status.status_code is StatusCode.ERROR
    assert send.attributes["error.type"] == "pika.exceptions.UnroutableError"
    assert recorded.points(OPERATION, **{"error.type": "pika.exceptions.UnroutableError"})


def test_trace_state_baggage_and_other_propagators_reach_the_headers(recorded, conn, queue):
    """The headers are what the global propagator writes: ``tracestate`` and ``baggage``
    of the current context with the default one, whatever another one (set later by the
    program) writes instead, and nothing at all (no empty headers table) with none."""
    from opentelemetry import baggage, context, propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    channel = conn.channel()
    incoming = propagate.extract({
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "congo=t61rcWkgMzE", "baggage": "tenant=acme"})
    token = context.attach(incoming)
    try:
        channel.basic_publish("", queue, b"x")
    finally:
        context.detach(token)
    send = recorded.one(SpanKind.PRODUCER)
    _, got, _ = _get_untraced(channel, queue)
    expected: dict[str, str] = {}
    propagate.inject(expected, context=context.Context(
        incoming, **_span_context_of(send)))
    assert got.headers == expected == {"traceparent": _traceparent(send),
                                       "tracestate": "congo=t61rcWkgMzE",
                                       "baggage": "tenant=acme"}
    assert baggage.get_all() == {}

    class Custom(TextMapPropagator):
        def inject(self, carrier, context=None, setter=None):
            carrier["x-custom-trace"] = "1"

        def extract(self, carrier, context=None, getter=None):
            return context

        @property
        def fields(self):
            return {"x-custom-trace"}

    saved = propagate.get_global_textmap()
    propagate.set_global_textmap(Custom())
    try:
        channel.basic_publish("", queue, b"y")
    finally:
        propagate.set_global_textmap(saved)
    _, got, _ = _get_untraced(channel, queue)
    assert got.headers == {"x-custom-trace": "1"}

    from opentelemetry.propagators.composite import CompositePropagator

    propagate.set_global_textmap(CompositePropagator([]))  # OTEL_PROPAGATORS=none
    try:
        channel.basic_publish("", queue, b"z")
    finally:
        propagate.set_global_textmap(saved)
    _, got, _ = _get_untraced(channel, queue)
    assert got.headers is None  # nothing to carry: the message as the program sent it


def _span_context_of(span: Any) -> dict[str, Any]:
    from opentelemetry.trace import NonRecordingSpan

    from telemetryflow_bootstrap.instrumentation._http_common import SPAN_KEY

    return {SPAN_KEY: NonRecordingSpan(span.context)}


def test_a_call_pika_refuses_is_refused_the_same_way_untraced(recorded, conn):
    """A publish without a body: pika's own TypeError, and no span for a call that never
    happened."""
    channel = conn.channel()
    with pytest.raises(TypeError, match="body"):
        channel.basic_publish("", "q")
    assert recorded.spans() == []


def test_suppressed_publish_is_neither_traced_nor_injected(recorded, conn, queue):
    """Inside suppress_instrumentation: no span, and the message goes out as given."""
    channel = conn.channel()
    with suppress_instrumentation():
        channel.basic_publish("", queue, b"x", pika.BasicProperties(headers={"a": "b"}))
    assert recorded.spans() == []
    _, got, _ = _get_untraced(channel, queue)
    assert got.headers == {"a": "b"}


# ----- consume -----------------------------------------------------------------------------


def _publish_one(recorded: Recorded, channel: Any, queue: str, body: bytes = b"job") -> Any:
    channel.basic_publish("", queue, body, pika.BasicProperties(message_id="id-7"))
    return recorded.spans(SpanKind.PRODUCER)[-1]


def test_basic_consume_callback_is_a_process_span_under_the_send_span(recorded, conn,
                                                                        queue):
    """Each delivery runs the callback inside a CONSUMER span ``process {queue}`` whose
    parent is the send span (no span of the program's is current), linked to it too; what
    the callback does is its child; messaging.process.duration is recorded."""
    channel = conn.channel()
    send = _publish_one(recorded, channel, queue, SECRET_BODY)
    seen: list[Any] = []

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        with recorded.tracer.start_as_current_span("handle"):
            seen.append((ch is channel, body, properties.message_id))
        ch.basic_ack(method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    channel.start_consuming()
    assert seen == [(True, SECRET_BODY, "id-7")]
    process = recorded.one(SpanKind.CONSUMER)
    handle = next(s for s in recorded.spans() if s.name == "handle")
    assert process.name == f"process {queue}"
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert handle.parent.span_id == process.context.span_id
    assert dict(process.attributes) == {
        **SERVER, "messaging.operation.type": "process",
        "messaging.operation.name": "process", "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue,
        "messaging.rabbitmq.message.delivery_tag": 1, "messaging.message.id": "id-7",
        "messaging.message.body.size": len(SECRET_BODY)}
    assert recorded.points(PROCESS, **{"messaging.destination.name": queue,
                                       "messaging.operation.name": "process"})
    assert SECRET_BODY.decode() not in recorded.all_text()


def test_a_failing_callback_is_recorded_and_the_exception_propagates(recorded, conn, queue):
    """An exception from the callback: ERROR status, error.type and an exception event
    without the message (it may quote the body); pika's caller sees the same exception."""
    channel = conn.channel()
    _publish_one(recorded, channel, queue)

    class RejectedJob(Exception):
        pass

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        raise RejectedJob(f"cannot handle {SECRET_BODY!r}")

    channel.basic_consume(queue=queue, on_message_callback=on_message, auto_ack=True)
    with pytest.raises(RejectedJob) as caught:
        channel.start_consuming()
    assert "cannot handle" in str(caught.value)
    process = recorded.one(SpanKind.CONSUMER)
    assert process.status.status_code is StatusCode.ERROR
    kind = f"{RejectedJob.__module__}.{RejectedJob.__qualname__}"
    assert process.attributes["error.type"] == kind
    assert [e.name for e in process.events] == ["exception"]
    assert SECRET_BODY.decode() not in recorded.all_text()
    assert recorded.points(PROCESS, **{"error.type": kind})


def test_processing_inside_a_span_of_the_program_stays_under_the_message(recorded, conn,
                                                                        queue):
    """Deliveries handled while a span of the program is current (the process span of
    ``telemetryflow-run``, a request): the process span is still the send span's child,
    and links to both the message's context and that span."""
    channel = conn.channel()
    send = _publish_one(recorded, channel, queue)

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    with recorded.tracer.start_as_current_span("poll") as poll:
        channel.start_consuming()
    process = recorded.one(SpanKind.CONSUMER)
    assert process.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in process.links] == [
        send.context.span_id, poll.get_span_context().span_id]


def test_a_message_without_context_starts_a_trace_linked_to_the_current_span(recorded, conn,
                                                                             queue):
    """A message from an uninstrumented producer: its process span is a root (a long
    consumer's messages are not all one trace under its process span), linked to the
    span that was current."""
    channel = conn.channel()
    with suppress_instrumentation():
        channel.basic_publish("", queue, b"plain")

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        ch.stop_consuming()

    channel.basic_consume(queue, on_message)
    with recorded.tracer.start_as_current_span("loop") as loop:
        channel.start_consuming()
    process = recorded.one(SpanKind.CONSUMER)
    assert process.parent is None
    assert process.context.trace_id != loop.get_span_context().trace_id
    assert [link.context.span_id for link in process.links] == [
        loop.get_span_context().span_id]


def test_consume_generator_items_are_process_spans(recorded, conn, queue):
    """``for method, properties, body in channel.consume(queue)``: a process span per
    message, current while the loop body runs (its spans are children) and ended when
    the next item is asked for or the loop is left."""
    channel = conn.channel()
    sends = [_publish_one(recorded, channel, queue, b"a"), _publish_one(recorded, channel,
                                                                        queue, b"b")]
    bodies = []
    for method, _properties, body in channel.consume(queue, inactivity_timeout=5):
        assert method is not None
        with recorded.tracer.start_as_current_span(f"handle {body.decode()}"):
            bodies.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(bodies) == 2:
            break
    channel.cancel()
    assert bodies == [b"a", b"b"]
    processes = recorded.spans(SpanKind.CONSUMER)
    assert [p.name for p in processes] == [f"process {queue}"] * 2
    for process, send, name in zip(processes, sends, ("handle a", "handle b"), strict=True):
        assert process.parent.span_id == send.context.span_id
        handle = next(s for s in recorded.spans() if s.name == name)
        assert handle.parent.span_id == process.context.span_id
    with recorded.tracer.start_as_current_span("after") as after:
        pass
    assert after.parent is None  # nothing of ours left current after the loop


def test_cancel_ends_the_process_span_of_a_generator_still_held(recorded, conn, queue):
    """``item = next(items)`` on a generator the program keeps, then ``channel.cancel()``
    (what pika asks for when leaving the generator): the process span ends there and is
    no longer current."""
    channel = conn.channel()
    _publish_one(recorded, channel, queue)
    items = channel.consume(queue, inactivity_timeout=5)
    method, _properties, body = next(items)
    assert body == b"job"
    with recorded.tracer.start_as_current_span("work"):
        pass
    channel.basic_ack(method.delivery_tag)
    channel.cancel()
    process = recorded.one(SpanKind.CONSUMER)
    work = next(s for s in recorded.spans() if s.name == "work")
    assert work.parent.span_id == process.context.span_id
    with recorded.tracer.start_as_current_span("after") as after:
        pass
    assert after.parent is None
    assert list(items) == []


def test_consume_inactivity_items_make_no_span(recorded, conn, queue):
    """The (None, None, None) items of an inactivity timeout are not messages."""
    channel = conn.channel()
    items = channel.consume(queue, inactivity_timeout=0.05)
    assert next(items) == (None, None, None)
    channel.cancel()
    assert recorded.spans() == []


def test_basic_get_is_a_receive_span_linked_to_the_message(recorded, conn, queue):
    """basic_get: a CLIENT span ``receive {queue}`` linked to the message's creation
    context, and a messaging.client.operation.duration point; an empty queue still
    answers (None, None, None) under a receive span."""
    channel = conn.channel()
    send = _publish_one(recorded, channel, queue)
    method, properties, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"job" and properties.message_id == "id-7"
    assert channel.basic_get(queue) == (None, None, None)
    got, empty = recorded.spans(SpanKind.CLIENT)
    assert got.name == empty.name == f"receive {queue}"
    assert [link.context.span_id for link in got.links] == [send.context.span_id]
    assert got.attributes["messaging.operation.type"] == "receive"
    assert got.attributes["messaging.message.id"] == "id-7"
    assert got.attributes["messaging.rabbitmq.message.delivery_tag"] == method.delivery_tag
    assert "messaging.message.id" not in empty.attributes
    assert recorded.points(OPERATION, **{"messaging.operation.name": "receive"})


# ----- the asynchronous adapters ---------------------------------------------------------


def test_select_connection_publish_and_consume(recorded, queue):
    """SelectConnection (pika.channel.Channel): publish is a send span, the consumer
    callback a process span under it, each traced once."""
    seen: list[bytes] = []

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        with recorded.tracer.start_as_current_span("handle"):
            seen.append(body)
        ch.basic_ack(method.delivery_tag)
        ch.connection.close()

    def on_channel(ch: Any) -> None:
        ch.basic_consume(queue, on_message)
        ch.basic_publish("", queue, b"async", pika.BasicProperties(headers={"k": "v"}))

    def on_open(connection: Any) -> None:
        connection.channel(on_open_callback=on_channel)

    connection = pika.SelectConnection(
        pika.ConnectionParameters(HOST, PORT), on_open_callback=on_open,
        on_close_callback=lambda c, reason: c.ioloop.stop())
    connection.ioloop.call_later(10, connection.ioloop.stop)
    connection.ioloop.start()
    assert seen == [b"async"]
    send = recorded.one(SpanKind.PRODUCER)
    process = recorded.one(SpanKind.CONSUMER)
    handle = next(s for s in recorded.spans() if s.name == "handle")
    assert send.name == f"send {queue}"
    assert process.parent.span_id == send.context.span_id
    assert handle.parent.span_id == process.context.span_id


def test_asyncio_connection_publish_and_consume(recorded, queue):
    """AsyncioConnection: the same channel class, so the same spans, with the callback's
    work under the process span in the event loop."""
    import asyncio

    from pika.adapters.asyncio_connection import AsyncioConnection

    loop = asyncio.new_event_loop()
    seen: list[bytes] = []

    def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        with recorded.tracer.start_as_current_span("handle"):
            seen.append(body)
        ch.basic_ack(method.delivery_tag)
        ch.connection.close()

    def on_channel(ch: Any) -> None:
        ch.basic_consume(queue, on_message)
        ch.basic_publish("", queue, b"asyncio")

    AsyncioConnection(pika.ConnectionParameters(HOST, PORT),
                      on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                      on_close_callback=lambda c, reason: loop.stop(),
                      custom_ioloop=loop)
    loop.call_later(10, loop.stop)
    try:
        loop.run_forever()
    finally:
        loop.close()
    assert seen == [b"asyncio"]
    send = recorded.one(SpanKind.PRODUCER)
    process = recorded.one(SpanKind.CONSUMER)
    handle = next(s for s in recorded.spans() if s.name == "handle")
    assert process.parent.span_id == send.context.span_id
    assert handle.parent.span_id == process.context.span_id


def test_patching_twice_traces_once(recorded, conn, queue):
    """A second patch (two bootstraps) adds no second span per publish."""
    from telemetryflow_bootstrap.instrumentation import pika as ours

    ours.patch(pika, recorded.context)
    conn.channel().basic_publish("", queue, b"x")
    assert len(recorded.spans()) == 1
