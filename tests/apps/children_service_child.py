"""A child of children_service_app.py: one span named after how it was started."""

import sys

from opentelemetry import trace

with trace.get_tracer("children_service_child").start_as_current_span(f"child-{sys.argv[1]}"):
    pass
