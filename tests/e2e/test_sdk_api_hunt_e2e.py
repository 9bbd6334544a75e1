"""The SDK's client used wrongly inside a program run by ``telemetryflow-run``, exporting to
the real OTLP receiver: a metric name or unit OpenTelemetry refuses costs the program
nothing but one warning per name."""

from __future__ import annotations

import pytest

from .launcher import APPS, python, receiver_env, run

pytestmark = pytest.mark.e2e


def test_refused_metric_names_are_said_once_and_the_program_runs_on(otlp_receiver):
    """``get_client().increment_counter("orders placed")`` (a space) and a non-ASCII unit,
    three times each: the program finishes (the SDK used to raise a bare ``Exception``, then
    ``KeyError``), stderr says each once, and the valid metric arrives."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="bad-metrics")
    result = run([*python(str(APPS / "sdk_bad_metric_app.py"))], env)
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "dropped" in line]
    assert len(warnings) == 2, result.stderr
    assert "'orders placed'" in warnings[0] and "instrument names" in warnings[0]
    assert "'latency'" in warnings[1] and "'µs'" in warnings[1]
    [point] = otlp_receiver.wait_for_metric("orders.placed")
    assert point.value == 2
    assert point.attributes == {"shop": "eu"}
    assert {p.name for p in otlp_receiver.metrics()}.isdisjoint({"orders placed", "latency"})
