"""Calls ``get_client()`` with arguments of the wrong type or value (each three times), next
to valid calls that share their export batches; prints "done" if no call raised."""

from telemetryflow_bootstrap import get_client

client = get_client()
for _ in range(3):
    client.increment_counter("orders.placed", "1")  # a str value
    client.record_histogram("order.total", float("nan"))
    client.log(ValueError("card declined"), "verbose")  # a body OTLP cannot carry
    span_id = client.start_span(404, "srv")  # a span name that is not a str
    client.end_span(span_id, "timeout")  # an error that is not an exception
    client.end_span("checkout")  # a span name where its id belongs
    with client.span("checkout", attributes=[("shop", "eu")]):
        pass
client.increment_counter("orders.placed", 2, {"shop": "eu"})
client.log("valid record", "ERROR")
with client.span("valid.span"):
    pass
print("bad arguments:", len(client.get_status()["bad_arguments"]))
print("done")
