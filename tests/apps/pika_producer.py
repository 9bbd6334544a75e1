"""Publishes one message to the queue named on the command line (declared here), the way a
producer script does; under ``telemetryflow-run`` the message carries the trace context."""

import sys

import pika

queue = sys.argv[1]
connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
channel = connection.channel()
channel.queue_declare(queue)
channel.basic_publish("", queue, b'{"order": 42}',
                      pika.BasicProperties(message_id="order-42", content_type="application/json"))
connection.close()
print("published", flush=True)
