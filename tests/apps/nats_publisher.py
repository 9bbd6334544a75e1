"""A NATS producer that knows nothing of telemetryflow: inside a span of its own it
publishes one message to a subject (``request`` mode: sends a request and prints the
reply).

Run by hand: ``telemetryflow-run python tests/apps/nats_publisher.py orders [request]``.
"""

import asyncio
import sys

import nats
from opentelemetry import trace

tracer = trace.get_tracer("nats_publisher")


async def main(subject: str, request: bool) -> None:
    nc = await nats.connect("nats://127.0.0.1:4222")
    with tracer.start_as_current_span("place-order"):
        if request:
            reply = await nc.request(subject, b"order-1", timeout=10)
            print(reply.data.decode(), flush=True)
        else:
            await nc.publish(subject, b"order-1")
    await nc.drain()


asyncio.run(main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "request"))
