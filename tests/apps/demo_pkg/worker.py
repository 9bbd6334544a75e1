"""Run as ``python -m tests.apps.demo_pkg.worker``: one span from a module entry point."""

from opentelemetry import trace

with trace.get_tracer("worker").start_as_current_span("module-work"):
    print("worker ran")
