"""The log queue's own batch settings (``OTEL_BLRP_*``) end to end: programs run under the
installed ``telemetryflow-run`` against the real OTLP receiver, logs batched by their own
variables while spans keep the shared settings."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .launcher import LAUNCHER, REPO, app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e

_SPANS, _RECORDS = 30, 400


def _burst(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = run(python(app("log_burst_app.py"), str(_SPANS), str(_RECORDS)), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"spans={_SPANS} records={_RECORDS}\n"
    return proc


def _drop_lines(stderr: str, what: str) -> list[str]:
    return [line for line in stderr.splitlines() if f"dropping {what}" in line]


def test_small_log_queue_drops_a_burst_of_logs_while_every_span_arrives(otlp_receiver):
    """OTEL_BLRP_MAX_QUEUE_SIZE=5: a burst of log records overflows the log queue, and the
    one warning names OTEL_BLRP_MAX_QUEUE_SIZE=5 as the setting to raise; the spans, in
    their own queue of the default size, all arrive and none is dropped."""
    proc = _burst(receiver_env(otlp_receiver, OTEL_BLRP_MAX_QUEUE_SIZE="5"))
    [line] = _drop_lines(proc.stderr, "logs")
    assert line.startswith("telemetryflow: warning: dropping logs (queue full)"), line
    assert line.endswith("(OTEL_BLRP_MAX_QUEUE_SIZE=5)"), line
    assert _drop_lines(proc.stderr, "spans") == []
    spans = otlp_receiver.wait_for_spans(_SPANS, name="burst-span", timeout=20)
    assert sorted(span.attributes["i"] for span in spans) == list(range(_SPANS))
    bodies = {log.body for log in otlp_receiver.wait_for_logs(1, timeout=20)}
    assert 0 < len(bodies) < _RECORDS


def test_same_burst_without_the_log_setting_loses_nothing(otlp_receiver):
    """The control: with no OTEL_BLRP_* the log queue has the shared size (2048), so the
    same burst arrives whole and nothing is dropped."""
    proc = _burst(receiver_env(otlp_receiver))
    assert _drop_lines(proc.stderr, "logs") == _drop_lines(proc.stderr, "spans") == []
    otlp_receiver.wait_for_spans(_SPANS, name="burst-span", timeout=20)
    logs = otlp_receiver.wait_for_logs(_RECORDS, timeout=20)
    assert {log.body for log in logs} == {f"burst record {i}" for i in range(_RECORDS)}


def test_short_log_schedule_delay_sends_logs_while_spans_wait(otlp_receiver):
    """OTEL_BLRP_SCHEDULE_DELAY=100 under a 60 s TELEMETRYFLOW_BATCH_TIMEOUT: a waiting
    program's log records arrive while it runs, its spans only when it is ended (SIGTERM
    exports what is buffered)."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000",
                       OTEL_BLRP_SCHEDULE_DELAY="100", TELEMETRYFLOW_ENABLE_METRICS="false")
    proc = subprocess.Popen([LAUNCHER, *python(app("all_signals_app.py"), "wait")], env=env,
                            cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
        logs = otlp_receiver.wait_for_logs(3, timeout=30)
        assert sorted(log.body for log in logs) == [f"order {i} placed" for i in range(3)]
        assert otlp_receiver.spans() == []  # (60 s away)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    names = {span.name for span in otlp_receiver.wait_for_spans(3, timeout=20)}
    assert {"order-0", "order-1", "order-2"} <= names


def test_malformed_log_setting_is_one_line_and_the_shared_value_is_used(otlp_receiver):
    """A malformed OTEL_BLRP_MAX_QUEUE_SIZE is one warning naming it, its value and what is
    expected; the log queue keeps the shared size, so the burst arrives whole."""
    proc = _burst(receiver_env(otlp_receiver, OTEL_BLRP_MAX_QUEUE_SIZE="lots",
                               TELEMETRYFLOW_MAX_QUEUE_SIZE="4096"))
    assert [line for line in proc.stderr.splitlines() if "OTEL_BLRP" in line] == [
        "telemetryflow: warning: OTEL_BLRP_MAX_QUEUE_SIZE='lots': expected a whole number "
        "from 1 to 2147483647 (using TELEMETRYFLOW_MAX_QUEUE_SIZE instead)"]
    assert _drop_lines(proc.stderr, "logs") == []
    otlp_receiver.wait_for_logs(_RECORDS, timeout=20)


def test_malformed_log_setting_in_strict_mode_exits_2(tmp_path: Path) -> None:
    """Strict mode refuses the launch for a bad OTEL_BLRP_* value, naming it."""
    marker = tmp_path / "ran"
    env = clean_env(TELEMETRYFLOW_STRICT="true", OTEL_BLRP_SCHEDULE_DELAY="1s")
    proc = run(python("-c", f"open({str(marker)!r}, 'w')"), env)
    assert proc.returncode == 2
    assert not marker.exists()
    assert "telemetryflow: error: OTEL_BLRP_SCHEDULE_DELAY='1s': expected a whole number " \
           "(milliseconds) without a unit suffix" in proc.stderr


def test_info_shows_the_log_batch_next_to_the_shared_one() -> None:
    """--info shows each OTEL_BLRP_* set, as the log queue's own over the shared setting,
    which it marks as not for logs; no warning calls them unsupported."""
    env = clean_env(OTEL_BLRP_MAX_QUEUE_SIZE="64", OTEL_BSP_EXPORT_TIMEOUT="2000")
    text = run(["--info"], env).stdout
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")
            and line.split()}
    assert rows["TELEMETRYFLOW_MAX_QUEUE_SIZE"].endswith("default (not for logs: see below)")
    assert rows["OTEL_BLRP_MAX_QUEUE_SIZE"].split()[1] == "64"
    assert rows["OTEL_BLRP_MAX_QUEUE_SIZE"].endswith(
        "logs only, over TELEMETRYFLOW_MAX_QUEUE_SIZE")
    assert "traces only: in effect" in rows["OTEL_BSP_EXPORT_TIMEOUT"]
    assert "not supported" not in text
