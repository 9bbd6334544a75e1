"""A program that logs with the standard ``logging`` module and knows nothing of
telemetryflow (it uses the OpenTelemetry API only to open a span).
Run by hand: ``telemetryflow-run python tests/apps/logs_app.py``.

It logs one record inside a span (so the record carries the span's trace id), one
``logging.exception`` and one record below its own level, and prints the ids of the span it
made, for the tests to compare.
"""

import logging

from opentelemetry import trace

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
log = logging.getLogger("shop.orders")

with trace.get_tracer("logs_app").start_as_current_span("place-order") as span:
    log.info("order %s placed", 42, extra={"order.id": 42, "shop": "eu"})
    context = span.get_span_context()
    print(f"span {context.trace_id:032x} {context.span_id:016x}")

try:
    {}["missing"]
except KeyError:
    log.exception("payment lookup failed")

logging.getLogger("shop.audit").debug("below the program's level: never exported")
print("logs_app done")
