"""Metric values past 64 bits among normal ones (for tests/e2e/test_big_metric_values.py):
through the OpenTelemetry API (a counter, a gauge, an up-down counter, a histogram point in a
sampled span, whose exemplar keeps the int) and the SDK client."""

from opentelemetry import metrics, trace

from telemetryflow_bootstrap import get_client

BIG = 2**70

meter = metrics.get_meter("big-values")
meter.create_counter("normal.counter").add(1, {"k": "v"})
meter.create_counter("big.counter").add(BIG)
meter.create_gauge("big.gauge").set(-BIG)
meter.create_up_down_counter("edge.updown").add(2**63 - 1)  # (the largest int64: kept)
histogram = meter.create_histogram("big.histogram")
with trace.get_tracer("big-values").start_as_current_span("recording"):
    histogram.record(BIG)
client = get_client()
client.increment_counter("client.big", BIG)
client.flush()
status = client.get_status()
print("recorded", status["metric_values_sent_as_double"], status["attributes_left_out"],
      status["values_sent_as_text"])
