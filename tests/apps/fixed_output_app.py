"""Prints a fixed line, makes a span and exits 7: its stdout and exit code must never change
whatever the telemetry configuration is."""

import sys

from opentelemetry import trace

with trace.get_tracer("fixed").start_as_current_span("fixed-work"):
    print("fixed output 42")
sys.exit(7)
