"""A NATS consumer that knows nothing of telemetryflow: it subscribes to a subject with a
callback, prints ``ready``, and handles one message inside a span of its own (in
``respond`` mode it also answers the request), then exits.

Run by hand: ``telemetryflow-run python tests/apps/nats_subscriber.py orders [respond]``,
then publish to ``orders`` (``tests/apps/nats_publisher.py``).
"""

import asyncio
import sys

import nats
from opentelemetry import trace

tracer = trace.get_tracer("nats_subscriber")


async def main(subject: str, respond: bool) -> None:
    nc = await nats.connect("nats://127.0.0.1:4222")
    handled = asyncio.Event()

    async def handle(msg):
        with tracer.start_as_current_span("handle-message"):
            if respond:
                await msg.respond(b"answer:" + msg.data)
        handled.set()

    await nc.subscribe(subject, cb=handle)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.wait_for(handled.wait(), 30)
    await nc.drain()


asyncio.run(main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "respond"))
