"""Records metrics through ``get_client()`` with names OpenTelemetry refuses (each three
times) between valid ones; prints "done" if no call raised."""

from telemetryflow_bootstrap import get_client

client = get_client()
for _ in range(3):
    client.increment_counter("orders placed", attributes={"shop": "eu"})
    client.record_histogram("latency", 1.5, unit="µs")
client.increment_counter("orders.placed", 2, {"shop": "eu"})
print("refused:", client.get_status()["metric_names_refused"])
print("done")
