"""A program that makes a few spans, then logs a burst of records in a tight loop, with the
OpenTelemetry API and the standard ``logging`` module only; it prints how many of each.

Run by hand, with a log queue too small for the burst (spans keep their own queue)::

    OTEL_BLRP_MAX_QUEUE_SIZE=5 telemetryflow-run python tests/apps/log_burst_app.py 20 500

(the arguments: how many spans, then how many log records; 20 and 500 when left out).
"""

import logging
import sys

from opentelemetry import trace

spans = int(sys.argv[1]) if len(sys.argv) > 1 else 20
records = int(sys.argv[2]) if len(sys.argv) > 2 else 500

# Records are exported from INFO up; the program itself shows none of them.
logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
log = logging.getLogger("burst")
tracer = trace.get_tracer("log_burst_app")

for i in range(spans):
    with tracer.start_as_current_span("burst-span", attributes={"i": i}):
        pass
for i in range(records):
    log.info("burst record %d", i)
print(f"spans={spans} records={records}", flush=True)
