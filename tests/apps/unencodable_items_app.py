"""A program that makes, among normal spans and log records, a few items OTLP cannot encode at
all, through the OpenTelemetry API as people misuse it: a start time or an event timestamp in
float seconds (``time.time()``), a span kind given as a string, a span renamed to a route
object by a custom ``SpanProcessor``, a log record with a float timestamp or an int severity
text; and a tracer and a logger whose schema URL holds a lone surrogate (what
``os.fsdecode`` makes of an undecodable byte). It prints what it made.

Run by hand::

    telemetryflow-run python tests/apps/unencodable_items_app.py spans
    telemetryflow-run python tests/apps/unencodable_items_app.py logs
    telemetryflow-run python tests/apps/unencodable_items_app.py spans --status

``--status``: then flush, and print what ``get_status()`` counts as exported and dropped.
Each run's normal and odd items go out in one export batch: only the odd ones may be lost
(neither the exporter's encoder nor ours can encode them), never the batch around them.
"""

import logging
import sys
import time
from pathlib import PurePosixPath

from opentelemetry import trace
from opentelemetry._logs import get_logger
from opentelemetry.sdk.trace import SpanProcessor

from telemetryflow_bootstrap import get_client

NORMAL = 10
SCHEMA = "https://example.com/schemas/" + b"\xff".decode("utf-8", "surrogateescape")


class RouteNamer(SpanProcessor):
    """Names a span after its route, as a framework hands it over: an object, not a str."""

    def on_start(self, span, parent_context=None):
        if span.name == "GET":
            span.update_name(PurePosixPath("/users/<id>"))


def spans() -> None:
    trace.get_tracer_provider().add_span_processor(RouteNamer())
    tracer = trace.get_tracer("unencodable_items_app")
    for i in range(NORMAL):
        tracer.start_span("normal-before", attributes={"i": i}).end()
    tracer.start_span("seconds-start", start_time=time.time()).end()
    tracer.start_span("string-kind", kind="server").end()
    with tracer.start_as_current_span("seconds-event") as span:
        span.add_event("retry", timestamp=time.time())
    tracer.start_span("GET").end()
    trace.get_tracer("schema_app", schema_url=SCHEMA).start_span("odd-schema").end()
    for i in range(NORMAL):
        tracer.start_span("normal-after", attributes={"i": i}).end()
    print(f"spans normal={2 * NORMAL}", flush=True)


def logs() -> None:
    # Records are exported from INFO up; the program itself shows none of them.
    logging.basicConfig(level=logging.INFO, handlers=[logging.NullHandler()])
    log = logging.getLogger("unencodable_items")
    for i in range(NORMAL):
        log.info("normal before %d", i)
    otel = get_logger("unencodable_items_app")
    otel.emit(body="seconds-timestamp", timestamp=time.time())
    otel.emit(body="int-severity-text", severity_text=logging.WARNING)
    get_logger("schema_app", schema_url=SCHEMA).emit(body="odd-schema")
    for i in range(NORMAL):
        log.info("normal after %d", i)
    print(f"logs normal={2 * NORMAL}", flush=True)


def status(signal: str) -> None:
    client = get_client()
    flushed = client.flush()
    counts = client.get_status()
    print(f"flushed={flushed} exported={counts[f'{signal}_exported']} "
          f"dropped={counts[f'{signal}_dropped']}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "spans"
    {"spans": spans, "logs": logs}[mode]()
    if "--status" in sys.argv:
        status(mode)
