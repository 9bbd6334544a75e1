"""Makes 100 spans through the OpenTelemetry API, then exits (for scripts/bench).

Knows nothing of any launcher: under telemetryflow-run or opentelemetry-instrument the spans
are exported at exit, bare they are no-ops. Prints, as JSON, the wall-clock time at which
its own work ended, so a caller can tell start-up from exit.
"""

import json
import sys
import time

from opentelemetry import trace

tracer = trace.get_tracer("bench_spans")
count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
with tracer.start_as_current_span("bench-root"):
    for i in range(count - 1):
        with tracer.start_as_current_span("bench-child") as span:
            span.set_attribute("bench.i", i)
# the wall-clock moment the program's own work ended: what comes after is the exit
print(json.dumps({"spans": count, "program_end": time.time()}))
