"""Both brokers' producer-and-consumer paths in one program that knows nothing of
telemetryflow: RabbitMQ (publish to a queue, ``basic_get``, ``basic_ack``) and NATS
JetStream (``publish_async`` awaited for its ack, a key-value put and get, a pull fetch).
Takes a unique name for its queue, stream and bucket; cleans them up; prints ``done``.

Run by hand: ``telemetryflow-run python tests/apps/pika_nats_settle_and_counts.py demo1``.
"""

import asyncio
import sys

import nats
import pika

name = sys.argv[1]

connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
channel = connection.channel()
channel.queue_declare(name)
channel.basic_publish("", name, b"job", pika.BasicProperties(message_id="job-1"))
method, _properties, _body = channel.basic_get(name)
channel.basic_ack(method.delivery_tag)
channel.queue_delete(name)
connection.close()


async def main() -> None:
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    subject = f"tfe2e.{name}"
    await js.add_stream(name=name, subjects=[subject])
    kv = await js.create_key_value(bucket=f"kv{name}")
    try:
        ack = await (await js.publish_async(subject, b"stored"))
        assert ack.stream == name
        await kv.put("customer-981.address", b"somewhere")
        await kv.get("customer-981.address")
        pull = await js.pull_subscribe(subject, durable=f"d{name}")
        for msg in await pull.fetch(1, timeout=10):
            await msg.ack()
    finally:
        await js.delete_key_value(f"kv{name}")
        await js.delete_stream(name)
        await nc.close()


asyncio.run(main())
print("done", flush=True)
