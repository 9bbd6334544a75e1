"""A plain program that records metric points (OpenTelemetry API only) in one span, says
``exiting`` and leaves the way argv[1] says: ``exit`` (the end of the program, the default)
or ``os_exit`` (``os._exit(0)``, no atexit).

Three series of one counter and one histogram series: four metric points, plus the
runtime metrics unless TELEMETRYFLOW_RUNTIME_METRICS=false.

Run by hand: ``telemetryflow-run python tests/apps/metrics_exit_app.py [exit|os_exit]``.
"""

import os
import signal
import sys

from opentelemetry import metrics, trace

# Python's default Ctrl-C even when SIGINT was ignored on entry (a shell's background job
# inherits it ignored, and Python then leaves it so: a test's SIGINT did nothing)
signal.signal(signal.SIGINT, signal.default_int_handler)

how = sys.argv[1] if len(sys.argv) > 1 else "exit"
meter = metrics.get_meter("metrics_exit_app")
orders = meter.create_counter("orders.placed")
latency = meter.create_histogram("orders.latency", unit="ms")

with trace.get_tracer("metrics_exit_app").start_as_current_span("orders"):
    for shop in ("eu", "us", "asia"):
        orders.add(1, {"shop": shop})
    latency.record(12.5)

print("exiting", flush=True)
if how == "os_exit":
    os._exit(0)
