"""loguru end to end: a program that logs with loguru, run under the installed
``telemetryflow-run`` against the real OTLP receiver."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .launcher import app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e


def test_loguru_messages_arrive_once_correlated_and_stderr_is_unchanged(otlp_receiver):
    """After logger.remove(); logger.add(sys.stderr): messages arrive with their severity,
    body, span ids, code location, bound values and exception; a logging record routed into
    loguru arrives once; nothing under the export level; stderr byte for byte as without
    the launcher."""
    plain = subprocess.run(python(app("loguru_app.py")), env=clean_env(), capture_output=True,
                           text=True, timeout=60)
    proc = run(python(app("loguru_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == plain.returncode == 0, proc.stderr
    assert proc.stderr == plain.stderr
    source = Path(app("loguru_app.py")).read_text().splitlines()
    placed_line = next(n for n, text in enumerate(source, 1) if '"order {} placed"' in text)
    assert f"INFO | __main__:<module>:{placed_line} | order 42 placed | {{'order_id': 42" \
        in plain.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("span "))
    _, trace_id, span_id = line.split()

    otlp_receiver.wait_for_logs(1, body="from the logging module")
    logs = {log.body: log for log in otlp_receiver.wait_for_logs(4)}
    assert sorted(log.body for log in otlp_receiver.logs()) == [
        "from the logging module", "order 42 placed", "payment captured", "payment failed"]

    placed = logs["order 42 placed"]
    assert (placed.trace_id, placed.span_id) == (trace_id, span_id)
    assert (placed.severity_number, placed.severity_text) == (9, "INFO")
    assert placed.scope_name == "__main__"
    assert placed.attributes["order_id"] == 42
    assert placed.attributes["customer"] == "{'tier': 'gold'}"
    assert placed.attributes["code.file.path"].endswith("loguru_app.py")
    assert placed.attributes["code.function.name"] == "<module>"
    assert placed.attributes["code.line.number"] == placed_line
    assert placed.resource["service.name"] == "loguru_app"

    captured = logs["payment captured"]
    assert (captured.severity_number, captured.severity_text) == (11, "SUCCESS")
    assert captured.trace_id == trace_id

    failed = logs["payment failed"]
    assert (failed.severity_number, failed.severity_text) == (17, "ERROR")
    assert failed.span_id != span_id  # logged after the span ended
    assert failed.attributes["exception.type"] == "__main__.PaymentError"
    assert failed.attributes["exception.message"] == "card declined"
    assert 'raise PaymentError("card declined")' in failed.attributes["exception.stacktrace"]

    legacy = logs["from the logging module"]
    assert (legacy.severity_number, legacy.scope_name) == (13, "legacy.billing")
