"""Metric points recorded while the process exits, after the exit's last collection was
made (``telemetryflow-run python metrics_late_app.py``: a daemon thread records one more
job and a new series 0.2 s after that collection): they arrive with a collector that
answers, and are counted lost with one that never does. The program's own atexit
functions run before ours (registered later, atexit is LIFO): nothing of theirs is late.

Why: the exit collects the metrics as it starts, exports them alongside the spans and
logs, and shuts the reader down after those; a point recorded meanwhile (a daemon thread
still working, the main thread after a SIGTERM we handle) was neither exported nor
counted. The collector answers after 1 s here, so the exit is still waiting for the
spans when the late points are recorded."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.otlp_receiver import OTLPReceiver

from .blackhole import Blackhole, blackhole
from .launcher import LAUNCHER, REPO, app, clean_env, python, receiver_env, run

__all__ = ["blackhole"]  # (the fixture)

pytestmark = pytest.mark.e2e

_APP = app("metrics_late_app.py")
_WHY = {"daemon": "exit", "os_exit": "os._exit"}  # how the app leaves -> what the line says
_DELAY = 1.0  # the collector's answers (longer than the app's LATE_AFTER, 0.2 s)


def _run(how: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = run(python(_APP, how), dict(env, TELEMETRYFLOW_RUNTIME_METRICS="false"))
    return proc, time.monotonic() - started


def _ours(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [x for x in proc.stderr.splitlines() if x.startswith("telemetryflow:")]


def _last_jobs(receiver: OTLPReceiver) -> dict[str, float]:
    """Each ``jobs.done`` series' newest value (cumulative: its total)."""
    newest: dict[str, tuple[int, float]] = {}
    for point in receiver.metrics():
        if point.name == "jobs.done":
            queue = point.attributes["queue"]
            if queue not in newest or point.time_ns >= newest[queue][0]:
                newest[queue] = (point.time_ns, float(point.value or 0))
    return {queue: value for queue, (_, value) in newest.items()}


@pytest.mark.parametrize("how", ["daemon", "os_exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_points_a_thread_records_during_the_exit_arrive(
        otlp_receiver: OTLPReceiver, protocol: str, how: str) -> None:
    """A daemon thread's points recorded while the exit waits for the spans' export arrive
    (they were lost, and counted nowhere: the collector had ``default=2`` and no ``late``
    series), and nothing is said."""
    otlp_receiver.set_delay(_DELAY)
    proc, took = _run(how, receiver_env(otlp_receiver, protocol))
    assert proc.returncode == 0, proc.stderr
    assert "recorded late" in proc.stderr, proc.stderr
    assert _ours(proc) == [], proc.stderr
    assert took < 5.0 + 4.0, took  # (the default shutdown timeout, 5 s)
    assert _last_jobs(otlp_receiver) == {"default": 3.0, "late": 1.0}


def test_points_a_thread_records_after_a_sigterm_arrive(otlp_receiver: OTLPReceiver) -> None:
    """SIGTERM left at its default: we export, then die of it. A daemon thread's points
    recorded while that export runs arrive too."""
    otlp_receiver.set_delay(_DELAY)
    env = dict(receiver_env(otlp_receiver), TELEMETRYFLOW_RUNTIME_METRICS="false")
    proc = subprocess.Popen([LAUNCHER, *python(_APP, "sigterm")], env=env, cwd=REPO,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "exiting"
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM, err
    assert "recorded late" in err, err
    assert [x for x in err.splitlines() if x.startswith("telemetryflow:")] == [], err
    assert _last_jobs(otlp_receiver) == {"default": 3.0, "late": 1.0}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_points_the_programs_atexit_function_records_arrive(
        otlp_receiver: OTLPReceiver, protocol: str) -> None:
    """(Unchanged.) The program's atexit function runs before our exit starts: its points
    are in the exit's collection."""
    proc, _ = _run("atexit", receiver_env(otlp_receiver, protocol))
    assert proc.returncode == 0, proc.stderr
    assert _ours(proc) == [], proc.stderr
    assert _last_jobs(otlp_receiver) == {"default": 3.0, "late": 1.0}


@pytest.mark.parametrize("how", ["daemon", "os_exit"])
def test_points_recorded_during_the_exit_are_counted_lost_with_a_silent_collector(
        blackhole: Blackhole, how: str) -> None:
    """A collector that never answers: the line counts the late series with the two
    points collected as the exit started (it said ``metric points=2``), once (the late job
    on the collected series is the same series: one loss), and the exit (from the
    program's ``exiting``) ends within the shutdown timeout + 1 s."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=blackhole.endpoint, TELEMETRYFLOW_PROTOCOL="grpc",
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2", TELEMETRYFLOW_RUNTIME_METRICS="false")
    proc = subprocess.Popen([LAUNCHER, *python(_APP, how)], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "exiting"
        exiting = time.monotonic()
        _out, err = proc.communicate(timeout=20)
        took = time.monotonic() - exiting
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "recorded late" in err, err
    assert took < 2.0 + 1.0, took
    [line] = [x for x in err.splitlines() if "not all telemetry" in x]
    assert f"at {_WHY[how]} within 2s (TELEMETRYFLOW_SHUTDOWN_TIMEOUT)" in line, line
    assert re.search(r"dropped: spans=\d+ logs=0 metric points=3$", line), line
