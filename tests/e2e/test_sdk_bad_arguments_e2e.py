"""The SDK's client given bad arguments inside a program run by ``telemetryflow-run``,
exporting to the real OTLP receiver: one warning per call and problem, the program runs on,
and the valid telemetry in the same batches arrives."""

from __future__ import annotations

import pytest

from .launcher import APPS, python, receiver_env, run

pytestmark = pytest.mark.e2e


def test_bad_client_arguments_are_said_once_and_the_batches_still_export(otlp_receiver):
    """A str counter value and a NaN histogram value (OpenTelemetry raised a bare
    ``TypeError``, or logged without naming the call), an unknown severity (silently INFO),
    an exception as a log body and an int span name (which made the whole batch fail to
    encode, valid records included), an unknown kind, a str error, a name for an id and
    list attributes: each said once, and everything valid arrives."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SERVICE_NAME="bad-arguments")
    result = run([*python(str(APPS / "sdk_bad_arguments_app.py"))], env)
    assert result.returncode == 0, result.stderr
    assert "done" in result.stdout
    assert "bad arguments: 9" in result.stdout, result.stdout
    warnings = [line for line in result.stderr.splitlines() if "(said once)" in line]
    expected = ["increment_counter('orders.placed', value='1')",
                "record_histogram('order.total', value=nan)",
                "log(message=<ValueError>)", "log(severity='verbose')",
                "start_span(name=404)", "start_span('404', kind='srv')",
                "end_span('", "end_span('checkout'): no span has this id",
                "span('checkout', attributes=[('shop', 'eu')])"]
    assert len(warnings) == len(expected), result.stderr
    for line, call in zip(warnings, expected, strict=True):
        assert call in line, (call, line)
    assert "card declined" not in result.stderr  # (a log body is shown by type only)
    assert "Traceback" not in result.stderr
    [valid] = otlp_receiver.wait_for_logs(1, body="valid record")
    assert valid.severity_text == "ERROR"
    bodies = otlp_receiver.wait_for_logs(3, body="card declined")
    assert {log.severity_text for log in bodies} == {"INFO"}
    otlp_receiver.wait_for_spans(1, name="valid.span")
    renamed = otlp_receiver.wait_for_spans(3, name="404")
    assert {(s.kind, s.status_code) for s in renamed} == {("INTERNAL", "UNSET")}
    assert all(not s.attributes for s in otlp_receiver.wait_for_spans(3, name="checkout"))
    [point] = otlp_receiver.wait_for_metric("orders.placed")
    assert (point.value, point.attributes) == (2, {"shop": "eu"})
    assert "order.total" not in {p.name for p in otlp_receiver.metrics()}
