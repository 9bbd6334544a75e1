"""aio-pika (RabbitMQ, asyncio) under the instrumentation, against the local RabbitMQ: send
spans and the trace context in a copy of the message's headers, process spans around
``Queue.consume`` callbacks, ``queue.iterator()`` items and ``message.process()`` blocks,
receive spans for ``Queue.get``, settle spans, the RPC pattern's trace, the metrics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import aio_pika
import aio_pika.exceptions
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from ..e2e.launcher import REPO

pytestmark = pytest.mark.service("rabbitmq")

HOST, PORT = "127.0.0.1", 5672
PASSWORD = "guest"  # the broker's default; never in telemetry (nor the user name)
URL = f"amqp://guest:{PASSWORD}@{HOST}/"  # (no port: the default one is reported)
SECRET_BODY = b"t0p-secret-body-7731"
OPERATION = "messaging.client.operation.duration"
PROCESS = "messaging.process.duration"
SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"
SERVER = {"messaging.system": "rabbitmq", "server.address": HOST, "server.port": PORT}
T = TypeVar("T")


class Recorded:
    """In-memory span and metric exporters behind a hand-made PatchContext; aio-pika is
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
        from telemetryflow_bootstrap.instrumentation import aio_pika as ours
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.tracer_provider.get_tracer("tests.app")
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        context = PatchContext(
            tracer=self.tracer_provider.get_tracer("tests.aio_pika"),
            meter=self.meter_provider.get_meter("tests.aio_pika"),
            logger_provider=None, config=TelemetryConfig(), handler=None)
        ours.patch(aio_pika, context)

    def spans(self, kind: SpanKind | None = None) -> list[Any]:
        found = self.exporter.get_finished_spans()
        return [s for s in found if kind is None or s.kind is kind]

    def one(self, kind: SpanKind) -> Any:
        found = self.spans(kind)
        assert len(found) == 1, [(s.name, s.kind) for s in self.spans()]
        return found[0]

    def settles(self) -> list[Any]:
        return [s for s in self.spans(SpanKind.CLIENT)
                if s.attributes.get("messaging.operation.type") == "settle"]

    def points(self, name: str, **attributes: Any) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [p for p in metric.data.data_points if all(
                            p.attributes.get(k) == v for k, v in attributes.items())]
        return found

    def total(self, name: str, **attributes: Any) -> int:
        return sum(p.value for p in self.points(name, **attributes))

    def all_text(self) -> str:
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
def name() -> str:
    """A queue (and exchange) name of this test's own; ``run`` deletes what it made."""
    return f"tf-aiopika-{uuid.uuid4().hex[:12]}"


def run(coroutine: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coroutine, 20))  # type: ignore[arg-type]


async def _declare(channel: Any, name: str) -> Any:
    with suppress_instrumentation():
        return await channel.declare_queue(name, auto_delete=False)


async def _cleanup(connection: Any, *queues: str, exchange: str | None = None) -> None:
    with suppress_instrumentation():
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        if exchange:
            await channel.exchange_delete(exchange)
    await connection.close()


def _traceparent(span: Any) -> str:
    c = span.context
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


async def _get_untraced(queue: Any) -> Any:
    with suppress_instrumentation():
        return await queue.get(no_ack=True, timeout=5)


# ----- send ------------------------------------------------------------------------------


def test_publish_is_a_producer_span_and_the_message_carries_its_context(recorded, name):
    """Exchange.publish to the default exchange: one PRODUCER span ``send {queue}`` with
    the conventions' attributes (server port the URL's default), covering the broker's
    confirmation; the message arrives with that span's traceparent while the program's
    Message and headers dict are unchanged, and a second publish of the same Message
    carries its own context."""

    async def main() -> list[Any]:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            headers = {"x-app": "orders"}
            message = aio_pika.Message(SECRET_BODY, headers=headers, message_id="m-1",
                                       correlation_id="c-9")
            confirmed = await channel.default_exchange.publish(message, name)
            assert confirmed is not None  # (the broker's Basic.Ack, as without us)
            await channel.default_exchange.publish(message, routing_key=name)
            assert message.headers is headers and headers == {"x-app": "orders"}
            return [await _get_untraced(queue), await _get_untraced(queue)]
        finally:
            await _cleanup(connection, name)

    first, second = run(main())
    sends = recorded.spans(SpanKind.PRODUCER)
    assert [s.name for s in sends] == [f"send {name}"] * 2
    assert dict(sends[0].attributes) == {
        **SERVER, "messaging.operation.type": "send", "messaging.operation.name": "send",
        "messaging.destination.name": name,
        "messaging.rabbitmq.destination.routing_key": name,
        "messaging.message.id": "m-1", "messaging.message.conversation_id": "c-9",
        "messaging.message.body.size": len(SECRET_BODY)}
    assert first.body == SECRET_BODY and first.message_id == "m-1"
    assert first.headers == {"x-app": "orders", "traceparent": _traceparent(sends[0])}
    assert second.headers["traceparent"] == _traceparent(sends[1])
    assert recorded.total(SENT, **{"messaging.destination.name": name}) == 2
    assert recorded.points(OPERATION, **{"messaging.operation.name": "send",
                                         "messaging.destination.name": name})


def test_named_exchange_and_a_context_the_caller_set(recorded, name):
    """To a named exchange: ``send {exchange}:{routing key}``; a traceparent the program
    put in the headers is the message's creation context: kept, and the send links it."""
    theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    async def main() -> Any:
        connection = await aio_pika.connect(URL)
        exchange_name = f"{name}-x"
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            with suppress_instrumentation():
                exchange = await channel.declare_exchange(exchange_name, "direct")
                await queue.bind(exchange, "rk.1")
            await exchange.publish(aio_pika.Message(b"x", headers={"traceparent": theirs}),
                                   "rk.1")
            return await _get_untraced(queue)
        finally:
            await _cleanup(connection, name, exchange=exchange_name)

    got = run(main())
    send = recorded.one(SpanKind.PRODUCER)
    assert send.name == f"send {name}-x:rk.1"
    assert send.attributes["messaging.destination.name"] == f"{name}-x:rk.1"
    assert got.headers == {"traceparent": theirs}
    assert [f"{link.context.trace_id:032x}" for link in send.links] == [
        "0af7651916cd43dd8448eb211c80319c"]


def test_a_refused_publish_is_recorded_and_raises_as_before(recorded, name):
    """An unroutable mandatory publish on a channel with ``on_return_raises``: aio-pika's
    PublishError (aiormq's class) reaches the program unchanged; the send span is an ERROR with its
    ``error.type``, and the sent counter and duration point carry it."""

    async def main() -> None:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel(on_return_raises=True)
            with pytest.raises(aio_pika.exceptions.PublishError):
                await channel.default_exchange.publish(aio_pika.Message(b"x"), name)
        finally:
            await connection.close()

    run(main())
    send = recorded.one(SpanKind.PRODUCER)
    assert send.status.status_code is StatusCode.ERROR
    assert send.attributes["error.type"] == "aiormq.exceptions.PublishError"
    kind = {"error.type": "aiormq.exceptions.PublishError",
            "messaging.destination.name": name}
    assert recorded.total(SENT, **kind) == 1
    assert recorded.points(OPERATION, **kind)


# ----- process ---------------------------------------------------------------------------


def test_consume_callback_runs_in_a_process_span_child_of_the_send(recorded, name):
    """A Queue.consume callback: a CONSUMER span ``process {queue}`` whose parent is the
    send span (linked to it and to the program's span, which was current), the callback's
    own span inside it, its ack a settle span under it; durations and counts recorded."""

    async def main() -> None:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            handled = asyncio.Event()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                with recorded.tracer.start_as_current_span("handle"):
                    pass
                await message.ack()
                handled.set()

            await queue.consume(on_message)
            await channel.default_exchange.publish(aio_pika.Message(b"1", message_id="a"),
                                                   name)
            await asyncio.wait_for(handled.wait(), 5)
        finally:
            await _cleanup(connection, name)

    async def program() -> None:
        with recorded.tracer.start_as_current_span("consumer-program"):
            await main()

    run(program())
    send = recorded.one(SpanKind.PRODUCER)
    process = recorded.one(SpanKind.CONSUMER)
    handle = next(s for s in recorded.spans() if s.name == "handle")
    (ack,) = recorded.settles()
    ambient = next(s for s in recorded.spans() if s.name == "consumer-program")
    assert process.name == f"process {name}"
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id,
                                                                ambient.context.span_id]
    assert handle.parent.span_id == process.context.span_id
    assert ack.name == "ack" and ack.parent.span_id == process.context.span_id
    assert ack.attributes["messaging.rabbitmq.message.delivery_tag"] == \
        process.attributes["messaging.rabbitmq.message.delivery_tag"]
    assert process.attributes["messaging.message.id"] == "a"
    assert recorded.total(CONSUMED, **{"messaging.operation.name": "process",
                                       "messaging.destination.name": name}) == 1
    assert recorded.points(PROCESS, **{"messaging.destination.name": name})
    assert recorded.points(OPERATION, **{"messaging.operation.name": "ack"})


def test_a_failing_process_block_rejects_and_fails_the_span(recorded, name):
    """``async with message.process()`` raising inside a callback: the message is
    rejected (a ``reject`` settle span under the process span) and the process span is an
    ERROR with ``error.type``, even though the callback catches the exception."""

    async def main() -> None:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            handled = asyncio.Event()

            async def on_message(message: Any) -> None:
                try:
                    async with message.process():
                        raise LookupError(message.body.decode())
                except LookupError:
                    pass
                handled.set()

            await queue.consume(on_message)
            await channel.default_exchange.publish(aio_pika.Message(SECRET_BODY), name)
            await asyncio.wait_for(handled.wait(), 5)
        finally:
            await _cleanup(connection, name)

    run(main())
    process = recorded.one(SpanKind.CONSUMER)
    (reject,) = recorded.settles()
    assert reject.name == "reject" and reject.parent.span_id == process.context.span_id
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"] == "LookupError"
    assert recorded.points(PROCESS, **{"error.type": "LookupError"})
    assert SECRET_BODY.decode() not in recorded.all_text()  # (the message quotes the body)


def test_iterator_messages_each_in_a_process_span_ended_by_their_block(recorded, name):
    """``async with queue.iterator()``: each message yielded is a process span, the send
    span's child, current in the loop body and ended when its ``process()`` block ends (a
    block that raised makes it an ERROR); the ack is under it; the last message's span
    ends when the iterator is closed, and the program's context is its own again."""

    async def main() -> Any:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            for index in range(3):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"m", message_id=str(index)), name)
            seen = []
            async with queue.iterator() as messages:
                async for message in messages:
                    seen.append(message.message_id)
                    if message.message_id == "0":
                        async with message.process():
                            with recorded.tracer.start_as_current_span("work-0"):
                                pass
                    elif message.message_id == "1":
                        with pytest.raises(KeyError):
                            async with message.process(requeue=False):
                                raise KeyError("k")
                    else:
                        await message.ack()
                        break
            from opentelemetry.trace import get_current_span
            return seen, get_current_span()
        finally:
            await _cleanup(connection, name)

    (seen, after) = run(main())
    assert seen == ["0", "1", "2"]
    assert not after.get_span_context().is_valid
    sends = {s.attributes["messaging.message.id"]: s for s in recorded.spans(SpanKind.PRODUCER)}
    processes = {s.attributes["messaging.message.id"]: s
                 for s in recorded.spans(SpanKind.CONSUMER)}
    assert sorted(processes) == ["0", "1", "2"]
    for key, process in processes.items():
        assert process.name == f"process {name}"
        assert process.parent.span_id == sends[key].context.span_id
    work = next(s for s in recorded.spans() if s.name == "work-0")
    assert work.parent.span_id == processes["0"].context.span_id
    assert processes["0"].status.status_code is StatusCode.UNSET
    assert processes["1"].attributes["error.type"] == "KeyError"
    settles = {s.name: s for s in recorded.settles()}
    assert settles["ack"].parent.span_id in {p.context.span_id for p in processes.values()}
    assert settles["reject"].parent.span_id == processes["1"].context.span_id
    assert recorded.total(CONSUMED, **{"messaging.destination.name": name}) == 3


# ----- receive ---------------------------------------------------------------------------


def test_get_is_a_receive_span_and_process_block_a_process_span(recorded, name):
    """Queue.get: a CLIENT ``receive {queue}`` span linked to the producer, counted as
    consumed; ``message.process()`` on it is a process span, the producer's child; an
    empty queue (QueueEmpty, or None with fail=False) is no error."""

    async def main() -> None:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            await channel.default_exchange.publish(aio_pika.Message(b"g", message_id="g"),
                                                   name)
            message = await queue.get(timeout=5)
            async with message.process():
                pass
            assert await queue.get(fail=False, timeout=5) is None
            with pytest.raises(aio_pika.exceptions.QueueEmpty):
                await queue.get(timeout=5)
        finally:
            await _cleanup(connection, name)

    run(main())
    send = recorded.one(SpanKind.PRODUCER)
    receives = [s for s in recorded.spans(SpanKind.CLIENT)
                if s.attributes.get("messaging.operation.type") == "receive"]
    assert [s.name for s in receives] == [f"receive {name}"] * 3
    assert [link.context.span_id for link in receives[0].links] == [send.context.span_id]
    assert receives[0].attributes["messaging.message.id"] == "g"
    assert all(s.status.status_code is StatusCode.UNSET for s in receives)
    assert all(not s.links for s in receives[1:])
    process = recorded.one(SpanKind.CONSUMER)
    assert process.name == f"process {name}"
    assert process.parent.span_id == send.context.span_id
    (ack,) = recorded.settles()
    assert ack.parent.span_id == process.context.span_id
    assert recorded.total(CONSUMED, **{"messaging.destination.name": name}) == 1


# ----- RPC, suppression, secrets -----------------------------------------------------------


def test_rpc_call_and_its_reply_are_one_trace(recorded, name):
    """aio_pika.patterns.RPC: the call's send span, the server's process span (its child),
    the reply's send span inside that and the caller's process span of the reply (broker-
    named queue: ``process``, no destination) all share one trace; nothing of the URL's
    credentials anywhere."""
    from aio_pika.patterns import RPC

    async def main() -> int:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            rpc = await RPC.create(channel)

            async def double(*, x: int) -> int:
                return 2 * x

            await rpc.register(name, double, auto_delete=True)
            result = await rpc.proxy.__getattr__(name)(x=21)
            await rpc.close()
            return result
        finally:
            await connection.close()

    assert run(main()) == 42
    spans = recorded.spans()
    call = next(s for s in spans if s.name == f"send {name}")
    serve = next(s for s in spans if s.name == f"process {name}")
    reply = next(s for s in spans if s.kind is SpanKind.PRODUCER and s is not call)
    back = next(s for s in spans if s.kind is SpanKind.CONSUMER and s is not serve)
    assert serve.parent.span_id == call.context.span_id
    assert reply.parent.span_id == serve.context.span_id
    assert back.parent.span_id == reply.context.span_id and back.name == "process"
    assert back.attributes["messaging.destination.anonymous"] is True
    assert len({s.context.trace_id for s in (call, serve, reply, back)}) == 1
    text = recorded.all_text()
    assert "guest" not in text and "amq.gen-" not in repr(
        [dict(p.attributes) for p in recorded.points(PROCESS)])


def test_suppressed_calls_make_no_spans(recorded, name):
    """Inside suppress_instrumentation (our exporter's own work): no span, the message
    as given."""

    async def main() -> Any:
        connection = await aio_pika.connect(URL)
        try:
            channel = await connection.channel()
            queue = await _declare(channel, name)
            with suppress_instrumentation():
                await channel.default_exchange.publish(aio_pika.Message(b"s"), name)
                got = await queue.get(timeout=5)
                await got.ack()
            return got
        finally:
            await _cleanup(connection, name)

    got = run(main())
    assert recorded.spans() == []
    assert got.headers == {}


_ARMED = textwrap.dedent("""
    import asyncio, json, sys
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_messaging, registry
    from opentelemetry.sdk.trace import TracerProvider
    if sys.argv[1:] == ["missing"]:  # (an aio-pika without one of the methods patched)
        import aio_pika.message
        del aio_pika.message.IncomingMessage.reject
    context = registry.PatchContext(
        tracer=TracerProvider().get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=tuple(sys.argv[1:])), handler=None)
    registry.arm(context, _catalog_messaging.ENTRIES)
    import aio_pika
    from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper
    print(json.dumps([registry.status()["aio-pika"][0],
                      our_wrapper(aio_pika.Exchange, "publish") is not None]))
""")


@pytest.mark.parametrize(("disabled", "expected"), [
    ((), '["applied", true]'), (("aio-pika",), '["disabled", false]'),
    (("missing",), '["failed", false]')])
def test_the_registry_entry_patches_on_import_unless_disabled(disabled, expected):
    """The catalog's ``aio_pika`` entry patches aio-pika when the program imports it, and
    not when disabled by name; an aio-pika lacking a method we wrap is left wholly
    unpatched, the failure recorded (a fresh interpreter each)."""
    done = subprocess.run([sys.executable, "-c", _ARMED, *disabled], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
