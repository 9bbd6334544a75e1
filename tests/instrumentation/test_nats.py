"""nats-py under the instrumentation, against the local NATS server (JetStream on): spans,
context in the message headers, duration metrics, and what is never recorded."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

pytestmark = pytest.mark.service("nats")

URL = "nats://127.0.0.1:4222"
SECRET_URL = "nats://nuser:s3cr3tpw@127.0.0.1:4222"
PAYLOAD = b"t0p-secret-payload-4417"
SERVER = {"messaging.system": "nats", "server.address": "127.0.0.1", "server.port": 4222}


class Recorded:
    """In-memory span and metric exporters behind a PatchContext nats-py is patched with
    (once per process: patching is global and permanent)."""

    def __init__(self) -> None:
        import nats
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation import nats as ours
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("tests.nats.app")
        self.reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[self.reader])
        ours.patch(nats, PatchContext(
            tracer=provider.get_tracer("tests.nats"), meter=meter_provider.get_meter("t"),
            logger_provider=None, config=TelemetryConfig(), handler=None))

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
            parts.append(f"{span.name} {dict(span.attributes)!r}")
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


def subject(name: str) -> str:
    """A subject unique to this test run."""
    return f"tf.{os.getpid()}.{uuid.uuid4().hex[:8]}.{name}"


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def connect(url: str = URL) -> Any:
    import nats

    return await nats.connect(url)


def test_publish_is_a_producer_span_whose_context_the_callback_continues(recorded):
    """publish: a PRODUCER span ``publish {subject}`` with size and server; the callback's
    CONSUMER ``process`` span is its child and links to it; the callback's own spans are
    the process span's children; the caller's headers dict is not changed."""
    name = subject("orders")
    seen: list[Any] = []

    async def main() -> None:
        nc = await connect()
        done = asyncio.Event()

        async def cb(msg: Any) -> None:
            with recorded.tracer.start_as_current_span("handle order"):
                seen.append((msg.data, dict(msg.headers or {})))
            done.set()

        await nc.subscribe(name, cb=cb)
        headers = {"Order-Kind": "retail"}
        assert await nc.publish(name, PAYLOAD, headers=headers) is None
        assert headers == {"Order-Kind": "retail"}
        await done.wait()
        await nc.close()

    run(main())
    publish = recorded.span(f"publish {name}")
    process = recorded.span(f"process {name}")
    work = recorded.span("handle order")
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert dict(publish.attributes) == {
        **SERVER, "messaging.operation.name": "publish", "messaging.operation.type": "send",
        "messaging.destination.name": name, "messaging.message.body.size": len(PAYLOAD)}
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.context.trace_id == publish.context.trace_id
    assert process.parent.span_id == publish.context.span_id
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
    assert work.parent.span_id == process.context.span_id
    data, headers = seen[0]
    assert data == PAYLOAD and headers["Order-Kind"] == "retail"
    assert headers["traceparent"].split("-")[2] == f"{publish.context.span_id:016x}"
    assert PAYLOAD.decode() not in recorded.all_text()
    assert recorded.points("messaging.client.operation.duration",
                           **{"messaging.destination.name": name})[0].count == 1
    assert recorded.points("messaging.process.duration",
                           **{"messaging.destination.name": name})[0].count == 1


def test_callback_failure_is_recorded_and_still_reaches_the_error_callback(recorded):
    """An exception in the callback ends the process span with ERROR and error.type, and
    nats-py's error callback receives the very same exception."""
    name = subject("fails")
    errors: list[BaseException] = []

    class OrderRejected(Exception):
        pass

    async def main() -> None:
        import nats

        reported = asyncio.Event()

        async def error_cb(exc: BaseException) -> None:
            errors.append(exc)
            reported.set()

        nc = await nats.connect(URL, error_cb=error_cb)

        async def cb(msg: Any) -> None:
            raise OrderRejected("no stock")

        await nc.subscribe(name, cb=cb)
        await nc.publish(name, b"x")
        await reported.wait()
        await nc.close()

    run(main())
    process = recorded.span(f"process {name}")
    assert isinstance(errors[0], OrderRejected)
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"].endswith("OrderRejected")
    assert [e.name for e in process.events] == ["exception"]
    assert recorded.points("messaging.process.duration",
                           **{"error.type": process.attributes["error.type"]})


def test_request_reply_is_one_trace_with_the_reply_a_temporary_publish(recorded):
    """request: a CLIENT span ``request {subject}``; the responder's process span is its
    child, the responder's ``msg.respond()`` a ``publish`` to a temporary inbox (named
    without the inbox, kept out of the metric); the reply comes back unchanged."""
    name = subject("quote")

    async def main() -> Any:
        nc = await connect()

        async def responder(msg: Any) -> None:
            await msg.respond(b"42")

        await nc.subscribe(name, cb=responder)
        reply = await nc.request(name, b"price?", timeout=5)
        await nc.close()
        return reply

    reply = run(main())
    assert reply.data == b"42"
    request = recorded.span(f"request {name}")
    process = recorded.span(f"process {name}")
    respond = recorded.span("publish")
    assert request.kind is SpanKind.CLIENT
    assert request.attributes["messaging.operation.name"] == "request"
    assert process.parent.span_id == request.context.span_id
    assert respond.parent.span_id == process.context.span_id
    assert respond.attributes["messaging.destination.temporary"] is True
    assert respond.attributes["messaging.destination.name"].startswith("_INBOX.")
    # nats-py's own reply subscription and the request's inner publish make no spans
    assert len(recorded.spans()) == 3
    for point in recorded.points("messaging.client.operation.duration"):
        assert not str(point.attributes.get("messaging.destination.name", "")).startswith(
            "_INBOX.")


def test_request_without_responders_fails_with_error_type(recorded):
    """A request nobody answers raises NoRespondersError as before; its span says so."""
    import nats.errors

    name = subject("nobody")

    async def main() -> None:
        nc = await connect()
        try:
            with pytest.raises(nats.errors.NoRespondersError):
                await nc.request(name, b"?", timeout=5)
        finally:
            await nc.close()

    run(main())
    request = recorded.span(f"request {name}")
    assert request.attributes["error.type"] == "nats.errors.NoRespondersError"
    assert request.status.status_code is StatusCode.ERROR


def test_next_msg_and_iteration_are_receive_spans_linked_to_the_producer(recorded):
    """next_msg and ``async for`` over ``sub.messages``: a CLIENT ``receive`` span per
    message, in the caller's trace, linked to the message's publish span; a timed-out wait
    and the end of the iteration make none."""
    import nats.errors

    name = subject("inbox")

    async def main() -> list[bytes]:
        nc = await connect()
        sub = await nc.subscribe(name)
        with recorded.tracer.start_as_current_span("poller"):
            await nc.publish(name, b"one")
            first = await sub.next_msg(timeout=5)
            got = [first.data]
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.05)
            await nc.publish(name, b"two")
            await sub.unsubscribe(limit=2)
            async for msg in sub.messages:
                got.append(msg.data)
        await nc.close()
        return got

    assert run(main()) == [b"one", b"two"]
    poller = recorded.span("poller")
    receives = [s for s in recorded.spans() if s.name == f"receive {name}"]
    publishes = [s for s in recorded.spans() if s.name == f"publish {name}"]
    assert len(receives) == 2 and len(publishes) == 2
    for receive, publish in zip(receives, publishes, strict=True):
        assert receive.kind is SpanKind.CLIENT
        assert receive.parent.span_id == poller.context.span_id
        assert [link.context.span_id for link in receive.links] == [publish.context.span_id]
        assert receive.attributes["messaging.operation.type"] == "receive"


def test_wildcard_and_queue_subscriptions_name_the_template_and_group(recorded):
    """A wildcard subscription's process spans are named after its subject (the
    template), the queue group is recorded; the metric keeps the template, not the
    per-message subject."""
    base = subject("events")

    async def main() -> None:
        nc = await connect()
        done = asyncio.Event()

        async def cb(msg: Any) -> None:
            done.set()

        await nc.subscribe(f"{base}.*", queue="workers", cb=cb)
        await nc.publish(f"{base}.created", b"x")
        await done.wait()
        await nc.close()

    run(main())
    process = recorded.span(f"process {base}.*")
    assert process.attributes["messaging.destination.name"] == f"{base}.created"
    assert process.attributes["messaging.destination.template"] == f"{base}.*"
    assert process.attributes["messaging.consumer.group.name"] == "workers"
    point, = recorded.points("messaging.process.duration",
                             **{"messaging.destination.template": f"{base}.*"})
    assert "messaging.destination.name" not in point.attributes


def test_url_credentials_and_payloads_are_never_recorded(recorded):
    """Connected with ``nats://user:password@host``: only host and port are recorded, and
    no payload appears anywhere."""
    name = subject("secret")

    async def main() -> None:
        nc = await connect(SECRET_URL)
        sub = await nc.subscribe(name)
        await nc.publish(name, PAYLOAD)
        await sub.next_msg(timeout=5)
        await nc.close()

    run(main())
    assert recorded.span(f"publish {name}").attributes["server.address"] == "127.0.0.1"
    text = recorded.all_text()
    assert "s3cr3tpw" not in text and "nuser" not in text
    assert PAYLOAD.decode() not in text


def test_suppressed_instrumentation_records_and_injects_nothing(recorded):
    """Inside suppress_instrumentation() a publish makes no span and adds no header."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    name = subject("quiet")

    async def main() -> Any:
        nc = await connect()
        sub = await nc.subscribe(name)
        with suppress_instrumentation():
            await nc.publish(name, b"x")
            msg = await sub.next_msg(timeout=5)
        await nc.close()
        return msg

    msg = run(main())
    assert not msg.headers
    assert recorded.spans() == []


def test_jetstream_publish_push_and_pull_consumers(recorded):
    """JetStream: ``js.publish`` is one PRODUCER span (its inner request makes none); a
    push subscription's callback is a process span in the publisher's trace, its auto-ack a
    ``settle`` span inside it; a pull ``fetch`` is one receive span linked to the
    message."""
    stream = f"TF{os.getpid()}{uuid.uuid4().hex[:6]}"
    name = subject("js")

    async def main() -> Any:
        nc = await connect()
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[name])
        try:
            done = asyncio.Event()

            async def cb(msg: Any) -> None:
                done.set()

            recorded.exporter.clear()
            ack = await js.publish(name, b"stored")
            await js.subscribe(name, cb=cb)
            await done.wait()
            pull = await js.pull_subscribe(name, durable=f"pull{stream}")
            msgs = await pull.fetch(1, timeout=5)
            await msgs[0].ack()
            return ack, msgs
        finally:
            await js.delete_stream(stream)
            await nc.close()

    ack, msgs = run(main())
    assert ack.stream == stream and msgs[0].data == b"stored"
    spans = recorded.spans()
    publish = recorded.span(f"publish {name}")
    assert publish.kind is SpanKind.PRODUCER
    assert not [s for s in spans if s.name == f"request {name}"]
    process = recorded.span(f"process {name}")
    assert process.parent.span_id == publish.context.span_id
    settles = [s for s in spans if s.name == f"ack {name}"]
    assert any(s.parent.span_id == process.context.span_id for s in settles)
    assert all(s.attributes["messaging.operation.type"] == "settle" for s in settles)
    receive = next(s for s in spans if s.name == f"receive {name}")
    assert [link.context.span_id for link in receive.links] == [publish.context.span_id]
    assert not [s for s in spans if s.name.startswith("publish $JS")]


def test_a_second_patch_adds_no_second_span(recorded):
    """Patching again (a second bootstrap, another context) leaves one span per publish,
    recorded where the first patch sends them."""
    import nats
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import nats as ours
    from telemetryflow_bootstrap.instrumentation.registry import PatchContext

    other = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(other))
    ours.patch(nats, PatchContext(tracer=provider.get_tracer("again"), meter=None,
                                  logger_provider=None, config=TelemetryConfig(),
                                  handler=None))
    name = subject("twice")

    async def main() -> None:
        nc = await connect()
        await nc.publish(name, b"x")
        await nc.close()

    run(main())
    assert [s.name for s in recorded.spans()] == [f"publish {name}"]
    assert other.get_finished_spans() == ()


def test_a_callback_nats_refuses_is_refused_as_before(recorded):
    """A plain function as callback: nats-py's own error at subscribe, as without us; a
    partial of a coroutine function is accepted and traced."""
    import functools

    import nats.errors

    name = subject("partial")

    async def main() -> list[str]:
        nc = await connect()
        try:
            with pytest.raises(nats.errors.Error, match="must use coroutine"):
                await nc.subscribe(name, cb=lambda msg: None)
            seen: list[str] = []
            done = asyncio.Event()

            async def handle(tag: str, msg: Any) -> None:
                seen.append(tag)
                done.set()

            await nc.subscribe(name, cb=functools.partial(handle, "partial"))
            await nc.publish(name, b"x")
            await done.wait()
            return seen
        finally:
            await nc.close()

    assert run(main()) == ["partial"]
    assert recorded.span(f"process {name}").kind is SpanKind.CONSUMER
