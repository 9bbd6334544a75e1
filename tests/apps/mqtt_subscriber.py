"""An MQTT 5 consumer that knows nothing of telemetryflow: it subscribes to a wildcard
filter with paho's network loop in a thread, prints ``ready``, handles one message in
``on_message`` inside a span of its own, then exits.

Run by hand: ``telemetryflow-run python tests/apps/mqtt_subscriber.py 'orders/+'``, then
publish to ``orders/1`` (``tests/apps/mqtt_publisher.py orders/1``); the local broker is
127.0.0.1:1883.
"""

import sys
import threading

import paho.mqtt.client as mqtt
from opentelemetry import trace
from paho.mqtt.enums import CallbackAPIVersion

tracer = trace.get_tracer("mqtt_subscriber")
subscribed = threading.Event()
handled = threading.Event()


def on_message(client, userdata, message):
    with tracer.start_as_current_span("handle-message"):
        pass
    handled.set()


client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_message = on_message
client.on_subscribe = lambda *_: subscribed.set()
client.connect("127.0.0.1", 1883)
client.loop_start()
client.subscribe(sys.argv[1], qos=1)
if not subscribed.wait(15):
    sys.exit("not subscribed")
print("ready", flush=True)
ok = handled.wait(30)
client.disconnect()
client.loop_stop()
sys.exit(0 if ok else "no message")
