"""A program whose spans, in one export batch, make an OTLP request past the HTTP exporter's
limit on a request (``max_request_size``: 64 MiB), among them one span OTLP cannot encode at
all (a start time in float seconds, ``time.time()``): two spans each carrying a payload
attribute (a captured request body) of 9/16 of the limit, which fit in a request each but
not together, and one carrying it twice, which fits in none. It prints what it made.

Run by hand (the real limit: the payload is 36 MiB)::

    telemetryflow-run python tests/apps/oversized_batch_app.py

or with the limit made smaller, as a program can (the exporter module's default, set before
the exporter is built at the first export), so that a test need not move 64 MiB::

    telemetryflow-run python tests/apps/oversized_batch_app.py 1048576

The payload is one string, shared by the spans (the program holds it once). What a
collector would accept must arrive: the normal spans and the two big ones; the span that
cannot be encoded and the one past the limit on its own are left out, and said, never
blamed on the backend.

``--more``: also values OTLP cannot carry, each changed or left out on its own (a span
attribute and a counter value past 64 bits, a span name with a lone surrogate), and a log
record: a test sends the logs where nothing listens, so that the exit has a line to say.
"""

import logging
import sys
import time

from opentelemetry import metrics, trace

NORMAL = 5
args = [a for a in sys.argv[1:] if not a.startswith("--")]
limit = int(args[0]) if args else 64 << 20
if args:
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    trace_exporter._DEFAULT_MAX_REQUEST_SIZE = limit
PAYLOAD = "x" * (limit * 9 // 16)

tracer = trace.get_tracer("oversized_batch_app")
for i in range(NORMAL):
    tracer.start_span("normal-before", attributes={"i": i}).end()
tracer.start_span("seconds-start", start_time=time.time()).end()
tracer.start_span("big", attributes={"payload": PAYLOAD, "n": 1}).end()
tracer.start_span("big", attributes={"payload": PAYLOAD, "n": 2}).end()
tracer.start_span("too-big", attributes={"payload": PAYLOAD, "copy": PAYLOAD}).end()
for i in range(NORMAL):
    tracer.start_span("normal-after", attributes={"i": i}).end()
if "--more" in sys.argv:
    tracer.start_span("odd-values", attributes={"big": 2**70, "kept": 1}).end()
    tracer.start_span("odd-name-" + b"\xff".decode("utf-8", "surrogateescape")).end()
    metrics.get_meter("oversized_batch_app").create_counter("bytes.total").add(2**70)
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    logging.getLogger("oversized_batch_app").info("checkout done")
print(f"spans normal={2 * NORMAL} big=2", flush=True)
