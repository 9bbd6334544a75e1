"""A tiny test module run by pytest under telemetryflow-run (a console-script program)."""

from opentelemetry import trace


def test_makes_a_span():
    with trace.get_tracer("pytest_target").start_as_current_span("inside-pytest"):
        assert trace.get_current_span().get_span_context().is_valid
