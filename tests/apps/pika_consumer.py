"""Consumes one message from the queue named on the command line with a ``basic_consume``
callback that does some work in a span of its own, then deletes the queue; gives up after
20 seconds without a message."""

import sys

import pika
from opentelemetry import trace

queue = sys.argv[1]
tracer = trace.get_tracer("pika_consumer")
connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
channel = connection.channel()
handled = []


def on_message(ch, method, properties, body):
    with tracer.start_as_current_span("handle-order"):
        handled.append(properties.message_id)
    ch.basic_ack(method.delivery_tag)
    ch.stop_consuming()


channel.basic_consume(queue, on_message)
connection.call_later(20, channel.stop_consuming)
channel.start_consuming()
channel.queue_delete(queue)
connection.close()
print("handled", *handled, flush=True)
sys.exit(0 if handled else 1)
