"""Registry entries for the messaging instrumentations (see registry.Instrumentation):
message brokers' clients, whose spans carry a trace from the producer through the broker to
the consumer (the trace context travels in the message's headers)."""

from __future__ import annotations

from .registry import Instrumentation

_BASE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation("pika", ("pika",), f"{_BASE}.pika:patch", "pika", ">=1.3"),
    Instrumentation("aio-pika", ("aio_pika",), f"{_BASE}.aio_pika:patch", "aio-pika", ">=9.0"),
    Instrumentation("nats", ("nats",), f"{_BASE}.nats:patch", "nats-py", ">=2.6"),
    Instrumentation("celery", ("celery",), f"{_BASE}.celery:patch", "celery", ">=5.3"),
    Instrumentation("paho-mqtt", ("paho.mqtt.client",), f"{_BASE}.paho_mqtt:patch",
                    "paho-mqtt", ">=2.0"),
)
