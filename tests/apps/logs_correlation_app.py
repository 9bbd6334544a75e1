"""``logging.basicConfig()`` without a format inside a span: under
``TELEMETRYFLOW_LOG_CORRELATION=true`` its lines carry the trace ids.

Run by hand: ``TELEMETRYFLOW_LOG_CORRELATION=true telemetryflow-run python
tests/apps/logs_correlation_app.py``.
"""

import logging

from opentelemetry import trace

logging.basicConfig(level=logging.INFO)

with trace.get_tracer("logs_correlation_app").start_as_current_span("job") as span:
    logging.getLogger("job").info("working")
    print(f"trace {span.get_span_context().trace_id:032x}")
