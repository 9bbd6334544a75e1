"""A plain program that makes a few spans, log records and metric points (OpenTelemetry API
and ``logging`` only), says ``exiting`` and leaves; with ``wait`` it says ``waiting`` and
sleeps until a signal ends it instead.

Run by hand: ``telemetryflow-run python tests/apps/all_signals_app.py [wait]``.
"""

import logging
import signal
import sys
import time

from opentelemetry import metrics, trace

# Python's default Ctrl-C even when SIGINT was ignored on entry (a shell's background job
# inherits it ignored, and Python then leaves it so)
signal.signal(signal.SIGINT, signal.default_int_handler)

tracer = trace.get_tracer("all_signals_app")
orders = metrics.get_meter("all_signals_app").create_counter("orders.placed")
log = logging.getLogger("all_signals_app")

for i in range(3):
    with tracer.start_as_current_span(f"order-{i}"):
        orders.add(1, {"shop": "eu"})
        log.warning("order %d placed", i)

if sys.argv[1:] == ["wait"]:
    print("waiting", flush=True)
    time.sleep(60)
print("exiting", flush=True)
