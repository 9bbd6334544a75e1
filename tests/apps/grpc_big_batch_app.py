"""A program whose spans and log records, in one export batch each, make an OTLP/gRPC request
past 4 MiB: the limit an OpenTelemetry Collector's gRPC receiver puts on a request by default
(``max_recv_msg_size_mib: 4``; gRPC's own default for any server), past which it refuses the
request whole (RESOURCE_EXHAUSTED, "received message larger than max"). It prints what it
made.

Six spans each carry a payload attribute (a captured request body) of a quarter of the
limit, and six log records a message as long: together past the limit, each far within it.
One more span and one more record carry ``4.5`` quarters: past the limit on their own. And
one record has an attribute OTLP cannot carry (an int past 64 bits), which is left out.

Run by hand against a collector (the payloads take about 20 MiB)::

    telemetryflow-run python tests/apps/grpc_big_batch_app.py

or with another limit, in bytes (a test's backend with a lower limit)::

    telemetryflow-run python tests/apps/grpc_big_batch_app.py 1048576

What a collector would accept must arrive: the normal and big spans and records; the two
past the limit on their own are left out, and said, never blamed on the backend.
"""

import logging
import sys

from opentelemetry import trace

BIG = 6
limit = int(sys.argv[1]) if len(sys.argv) > 1 else 4 << 20
PAYLOAD = "x" * (limit // 4)
TOO_BIG = PAYLOAD * 4 + PAYLOAD[: len(PAYLOAD) // 2]

tracer = trace.get_tracer("grpc_big_batch_app")
for i in range(3):
    tracer.start_span("normal-before", attributes={"i": i}).end()
for i in range(BIG):
    tracer.start_span("big", attributes={"payload": PAYLOAD, "n": i}).end()
tracer.start_span("too-big", attributes={"payload": TOO_BIG}).end()
for i in range(3):
    tracer.start_span("normal-after", attributes={"i": i}).end()

logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
log = logging.getLogger("grpc_big_batch_app")
log.info("first")
for i in range(BIG):
    log.info("%s", PAYLOAD, extra={"n": i})
log.info("%s", TOO_BIG)
log.info("odd", extra={"huge": 2**70, "kept": 1})
log.info("last")
print(f"spans normal=6 big={BIG}; logs normal=3 big={BIG}", flush=True)
