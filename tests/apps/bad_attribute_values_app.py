"""A program whose telemetry holds a few values OTLP cannot carry, among normal spans and log
records: ints past 64 bits (as attributes of spans, events, links and log records, inside a
sequence and inside a structured log body), and lone surrogates (what ``os.fsdecode`` makes of
an undecodable byte) in a span name, a status description and a log body. It uses the
OpenTelemetry API, the standard ``logging`` module and the SDK client only, and prints what it
made.

Run by hand::

    telemetryflow-run python tests/apps/bad_attribute_values_app.py spans
    telemetryflow-run python tests/apps/bad_attribute_values_app.py logs

Each run's normal items and bad ones go out in the same export batch: none may be lost to
the bad values.
"""

import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import get_logger
from opentelemetry.trace import Link, Status, StatusCode

from telemetryflow_bootstrap import get_client

NORMAL = 10
BIG = 2**70
UNDECODABLE = b"report-\xff.csv".decode("utf-8", "surrogateescape")  # 'report-\udcff.csv'


def spans() -> None:
    tracer = trace.get_tracer("bad_attribute_values_app")
    for i in range(NORMAL):
        tracer.start_span("normal-before", attributes={"i": i}).end()
    with tracer.start_as_current_span(
        "big-attributes",
        attributes={"ok": "kept", "big": BIG, "below": -(2**63) - 1, "seq": [1, 2**64]},
    ) as span:
        span.add_event("big-event", {"ok": 1, "big": BIG})
        link = Link(span.get_span_context(), {"ok": 2, "big": BIG})
        tracer.start_span("big-link", links=[link]).end()
    tracer.start_span(f"open {UNDECODABLE}", attributes={"ok": "kept"}).end()
    failed = tracer.start_span("bad-status")
    failed.set_status(Status(StatusCode.ERROR, f"cannot read {UNDECODABLE}"))
    failed.end()
    with get_client().span("client-big", attributes={"ok": "kept", "big": BIG}):
        pass
    for i in range(NORMAL):
        tracer.start_span("normal-after", attributes={"i": i}).end()
    print(f"spans normal={2 * NORMAL}", flush=True)


def logs() -> None:
    # Records are exported from INFO up; the program itself shows none of them.
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    log = logging.getLogger("bad_values")
    for i in range(NORMAL):
        log.info("normal before %d", i)
    log.info("big extra", extra={"ok": "kept", "big": BIG})
    log.info({"order": {"id": 7, "total": BIG}})
    log.info(UNDECODABLE)
    otel = get_logger("bad_attribute_values_app")
    otel.emit(body=BIG, attributes={"ok": "kept"})
    otel.emit(body="nested big", attributes={"ok": "kept", "deep": {"n": BIG}})
    for i in range(NORMAL):
        log.info("normal after %d", i)
    print(f"logs normal={2 * NORMAL}", flush=True)


if __name__ == "__main__":
    {"spans": spans, "logs": logs}[sys.argv[1] if len(sys.argv) > 1 else "spans"]()
