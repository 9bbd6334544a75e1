"""A tiny program that knows nothing about telemetryflow.

    telemetryflow-run python examples/hello.py

With no backend configured, its spans, logs and metrics are printed on stderr. Point it at a
collector with TELEMETRYFLOW_ENDPOINT=host:4317 (add TELEMETRYFLOW_INSECURE=true for a plain
local collector).
"""

import time

from opentelemetry import metrics, trace

from telemetryflow_bootstrap import get_client

tracer = trace.get_tracer("hello")
orders = metrics.get_meter("hello").create_counter("hello.orders", description="orders placed")


def place_order(order_id: int) -> None:
    with tracer.start_as_current_span("place-order") as span:
        span.set_attribute("order.id", order_id)
        with tracer.start_as_current_span("charge-card"):
            time.sleep(0.01)
        orders.add(1, {"shop": "demo"})
        get_client().log_info(f"order {order_id} placed")


for order_id in range(3):
    place_order(order_id)
print("hello: placed 3 orders")
