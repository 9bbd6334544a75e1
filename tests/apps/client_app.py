"""Uses the SDK client the launcher started: get_client() works with no setup code."""

from telemetryflow_bootstrap import get_client

client = get_client()
with client.span("client-span", attributes={"order.id": 42}):
    client.increment_counter("orders.placed", 3, {"shop": "eu"})
    client.record_gauge("queue.depth", 7)
    client.record_histogram("order.value", 12.5, unit="EUR")
    client.log_info("order placed", {"order.id": 42})
print("initialized:", client.is_initialized)
