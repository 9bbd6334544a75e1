"""An MQTT 5 producer that knows nothing of telemetryflow: inside a span of its own it
publishes one message (QoS 1) and waits for the broker to take it.

Run by hand: ``telemetryflow-run python tests/apps/mqtt_publisher.py orders/1`` (the local
broker is 127.0.0.1:1883).
"""

import sys

import paho.mqtt.client as mqtt
from opentelemetry import trace
from paho.mqtt.enums import CallbackAPIVersion

tracer = trace.get_tracer("mqtt_publisher")

client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.connect("127.0.0.1", 1883)
client.loop_start()
with tracer.start_as_current_span("place-order"):
    info = client.publish(sys.argv[1], b"order-1", qos=1)
info.wait_for_publish(15)
client.disconnect()
client.loop_stop()
sys.exit(0 if info.is_published() else "not published")
