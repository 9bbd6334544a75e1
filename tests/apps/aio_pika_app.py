"""An aio-pika program that knows nothing of telemetryflow, in two roles against the local
RabbitMQ: ``publish QUEUE`` declares the queue and publishes one order message to it;
``consume QUEUE`` handles one message with a ``Queue.consume`` callback (``async with
message.process()``, some work in a span of its own), deletes the queue and prints
``handled {message id}``; it gives up after 20 seconds without a message.

Run by hand: ``telemetryflow-run python tests/apps/aio_pika_app.py publish orders``, then
``telemetryflow-run python tests/apps/aio_pika_app.py consume orders``.
"""

import asyncio
import sys

import aio_pika
from opentelemetry import trace

URL = "amqp://guest:guest@127.0.0.1/"
tracer = trace.get_tracer("aio_pika_app")


async def publish(queue_name: str) -> None:
    connection = await aio_pika.connect(URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue_name)
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"order": 42}', message_id="order-42",
                             content_type="application/json"),
            routing_key=queue_name)
    print("published", flush=True)


async def consume(queue_name: str) -> None:
    connection = await aio_pika.connect(URL)
    handled = []
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name)
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                with tracer.start_as_current_span("handle-order"):
                    handled.append(message.message_id)
            done.set()

        await queue.consume(on_message)
        try:
            await asyncio.wait_for(done.wait(), 20)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    print("handled", *handled, flush=True)
    sys.exit(0 if handled else 1)


role, name = sys.argv[1], sys.argv[2]
asyncio.run(publish(name) if role == "publish" else consume(name))
