"""Makes N spans, says "ready", then sleeps inside an open span until killed (SIGTERM test)."""

import sys
import time

from opentelemetry import trace

count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
tracer = trace.get_tracer("sigterm_app")
for i in range(count):
    with tracer.start_as_current_span(f"unit-{i}"):
        pass
with tracer.start_as_current_span("sleeping"):
    print("ready", flush=True)
    time.sleep(120)
print("never reached", flush=True)
