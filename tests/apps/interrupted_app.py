"""Interrupted right after its first span: the export thread is still importing the
exporter stack while the interpreter exits with the unhandled KeyboardInterrupt."""

from opentelemetry import trace

with trace.get_tracer("interrupted").start_as_current_span("before-interrupt"):
    pass
raise KeyboardInterrupt
