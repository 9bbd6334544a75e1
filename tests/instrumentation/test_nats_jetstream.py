"""nats-py under the instrumentation, against the local NATS server (JetStream on):
``publish_async`` spans that end with the broker's ack, key-value and object store
subjects kept out of span names and metric attributes (templates), and the sent/consumed
message counters."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .test_nats import SERVER, Recorded, connect, recorded, run, subject

__all__ = ["recorded"]  # (the fixture)

pytestmark = pytest.mark.service("nats")

SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"
DURATION = "messaging.client.operation.duration"
PROCESS = "messaging.process.duration"


def _stream() -> str:
    return f"TF{os.getpid()}{uuid.uuid4().hex[:6]}"


def _total(found: Recorded, name: str, **attributes: Any) -> int:
    return sum(p.value for p in found.points(name, **attributes))


def test_publish_async_span_ends_with_the_ack(recorded):
    """js.publish_async: one PRODUCER span ``publish {subject}`` still open when the call
    returns and ended by the broker's ack (a duration point and one sent message then);
    the stored message carries its context (a fetch links to it); nats-py's own ack
    subscription and inner publish add no span."""
    stream, name = _stream(), subject("async")

    async def main() -> Any:
        nc = await connect()
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[name])
        try:
            recorded.exporter.clear()
            future = await js.publish_async(name, b"later")
            open_at_return = [s.name for s in recorded.spans()]
            ack = await future
            await asyncio.sleep(0)  # (the done callbacks run after the awaiting task's)
            ended = [s.name for s in recorded.spans()]
            pull = await js.pull_subscribe(name, durable=f"p{stream}")
            msgs = await pull.fetch(1, timeout=5)
            return open_at_return, ack, ended, msgs
        finally:
            await js.delete_stream(stream)
            await nc.close()

    open_at_return, ack, ended, msgs = run(main())
    assert ack.stream == stream and msgs[0].data == b"later"
    assert open_at_return == []
    assert ended == [f"publish {name}"]
    publish = recorded.span(f"publish {name}")
    assert publish.kind is SpanKind.PRODUCER
    assert publish.status.status_code is StatusCode.UNSET
    assert dict(publish.attributes) == {
        **SERVER, "messaging.operation.name": "publish", "messaging.operation.type": "send",
        "messaging.destination.name": name, "messaging.message.body.size": 5}
    receive = recorded.span(f"receive {name}")
    assert [link.context.span_id for link in receive.links] == [publish.context.span_id]
    assert not [s for s in recorded.spans() if s.name.startswith("process")]
    assert _total(recorded, SENT, **{"messaging.destination.name": name}) == 1
    assert recorded.points(DURATION, **{"messaging.destination.name": name,
                                        "messaging.operation.name": "publish"})


def test_publish_async_whose_ack_fails_is_an_error(recorded):
    """publish_async to a subject no stream takes: the future fails (no responders) and
    the span ends with that error's type, counted as a failed sent message; the future's
    exception still reaches the program unchanged."""
    from nats.js.errors import NoStreamResponseError

    name = subject("nostream")

    async def main() -> Any:
        nc = await connect()
        try:
            future = await nc.jetstream().publish_async(name, b"x")
            with pytest.raises(NoStreamResponseError):
                await future
        finally:
            await nc.close()

    run(main())
    publish = recorded.span(f"publish {name}")
    assert publish.status.status_code is StatusCode.ERROR
    assert publish.attributes["error.type"] == "nats.js.errors.NoStreamResponseError"
    (failed,) = recorded.points(SENT, **{"messaging.destination.name": name})
    assert failed.value == 1
    assert failed.attributes["error.type"] == "nats.js.errors.NoStreamResponseError"


def test_key_value_and_object_store_subjects_are_templated(recorded):
    """Key-value keys, object names and chunk ids, and the server-named consumers a watch
    or a get makes never become a span name or a metric attribute: those operations are
    named after a template (``$KV.{bucket}.>`` ...), kept as
    ``messaging.destination.template``; the full subject stays on the span only."""
    bucket, store = f"tfkv{uuid.uuid4().hex[:6]}", f"tfob{uuid.uuid4().hex[:6]}"
    key, object_name = "user-4417.profile", "report-4417.txt"

    async def main() -> None:
        nc = await connect()
        js = nc.jetstream()
        kv = await js.create_key_value(bucket=bucket)
        objects = await js.create_object_store(bucket=store)
        try:
            await kv.put(key, b"v1")
            assert (await kv.get(key)).value == b"v1"
            watcher = await kv.watchall()
            assert (await watcher.updates(timeout=5)).key == key
            await watcher.stop()
            await objects.put(object_name, b"data" * 8)
            assert (await objects.get(object_name)).data == b"data" * 8
        finally:
            await js.delete_key_value(bucket)
            await js.delete_object_store(store)
            await nc.close()

    run(main())
    names = {s.name for s in recorded.spans()}
    assert f"publish $KV.{bucket}.>" in names
    assert f"publish $O.{store}.C.*" in names and f"publish $O.{store}.M.*" in names
    assert any(n.startswith("request $JS.API.CONSUMER.INFO.") and n.endswith(".>")
               for n in names), names
    put = next(s for s in recorded.spans() if s.name == f"publish $KV.{bucket}.>")
    assert put.attributes["messaging.destination.name"] == f"$KV.{bucket}.{key}"
    assert put.attributes["messaging.destination.template"] == f"$KV.{bucket}.>"
    points = [p for metric in (DURATION, PROCESS, SENT, CONSUMED)
              for p in recorded.points(metric)]
    assert points
    metric_text = repr([dict(p.attributes) for p in points])
    for unbounded in (key, "4417", "C.", ".M."):
        assert unbounded not in metric_text.replace(".C.*", "").replace(".M.*", "")
    for span in recorded.spans():
        assert "4417" not in span.name
        destination = span.attributes.get("messaging.destination.name", "")
        if destination.startswith("$JS.API.CONSUMER.INFO.") and not span.attributes.get(
                "messaging.destination.temporary"):
            assert "messaging.destination.template" in span.attributes


def test_sent_and_consumed_message_counters(recorded):
    """messaging.client.sent.messages counts publishes and requests; consumed.messages
    counts what reached the program: a callback's messages (process), next_msg's
    (receive) and a fetch's whole batch, once each; a wait that got nothing counts none."""
    from nats.errors import TimeoutError as NoMessage

    stream, name, pushed, pulled = _stream(), subject("n"), subject("cb"), subject("js")

    async def main() -> None:
        nc = await connect()
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[pulled])
        try:
            got: list[Any] = []
            done = asyncio.Event()

            async def cb(msg: Any) -> None:
                got.append(msg)
                if len(got) == 2:
                    done.set()

            async def reply(msg: Any) -> None:
                await msg.respond(b"pong")

            await nc.subscribe(pushed, cb=cb)
            sub = await nc.subscribe(name)
            await nc.subscribe(f"{name}.ping", cb=reply)
            for target in (pushed, pushed, name):
                await nc.publish(target, b"m")
            await done.wait()
            await sub.next_msg(timeout=5)
            with pytest.raises(NoMessage):
                await sub.next_msg(timeout=0.2)
            await nc.request(f"{name}.ping", b"ping", timeout=5)
            for _ in range(3):
                await js.publish(pulled, b"j")
            pull = await js.pull_subscribe(pulled, durable=f"c{stream}")
            assert len(await pull.fetch(3, timeout=5)) == 3
        finally:
            await js.delete_stream(stream)
            await nc.close()

    run(main())
    assert _total(recorded, SENT, **{"messaging.destination.name": pushed}) == 2
    assert _total(recorded, SENT, **{"messaging.destination.name": name}) == 1
    assert _total(recorded, SENT, **{"messaging.destination.name": f"{name}.ping",
                                     "messaging.operation.name": "request"}) == 1
    assert _total(recorded, SENT, **{"messaging.destination.name": pulled}) == 3
    assert _total(recorded, CONSUMED, **{"messaging.destination.name": pushed,
                                         "messaging.operation.name": "process"}) == 2
    assert _total(recorded, CONSUMED, **{"messaging.destination.name": name,
                                         "messaging.operation.name": "receive"}) == 1
    assert _total(recorded, CONSUMED, **{"messaging.destination.name": f"{name}.ping",
                                         "messaging.operation.name": "process"}) == 1
    assert _total(recorded, CONSUMED, **{"messaging.destination.name": pulled,
                                         "messaging.operation.name": "receive"}) == 3
    (point,) = recorded.points(SENT, **{"messaging.destination.name": pushed})
    assert dict(point.attributes) == {
        **SERVER, "messaging.operation.name": "publish", "messaging.operation.type": "send",
        "messaging.destination.name": pushed}
