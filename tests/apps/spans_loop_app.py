"""Does N units of work, each in a span, and prints how long the work itself took."""

import sys
import time

from opentelemetry import trace

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
tracer = trace.get_tracer("spans_loop_app")
start = time.perf_counter()
for i in range(count):
    with tracer.start_as_current_span("unit", attributes={"i": i}):
        sum(range(200))
print(f"work_seconds={time.perf_counter() - start:.6f}", flush=True)
