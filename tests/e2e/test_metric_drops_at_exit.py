"""Metric points lost at exit are counted and said: ``telemetryflow-run python
metrics_exit_app.py`` (four metric points, runtime metrics off so the count is exact)
against a collector that never answers, one answering UNAVAILABLE (HTTP 503) to every
export, and one that takes them; leaving at the end of the program (atexit) or through
``os._exit``. The exit stays within TELEMETRYFLOW_SHUTDOWN_TIMEOUT (2 s here)."""

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

_APP = app("metrics_exit_app.py")
_POINTS = 4  # (3 series of a counter, 1 histogram)
_WHY = {"exit": "exit", "os_exit": "os._exit"}  # how the app leaves -> what the line says


def _timed_run(how: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                       float]:
    started = time.monotonic()
    proc = run(python(_APP, how), dict(env, TELEMETRYFLOW_RUNTIME_METRICS="false"))
    return proc, time.monotonic() - started


def _exit_line(proc: subprocess.CompletedProcess[str]) -> str:
    [line] = [x for x in proc.stderr.splitlines()
              if x.startswith("telemetryflow:") and "not all telemetry" in x]
    return line


@pytest.mark.parametrize("how", ["exit", "os_exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_collector_that_never_answers_loses_metric_points_said_at_exit(
        blackhole: Blackhole, protocol: str, how: str) -> None:
    """Reachable but silent: the exit waits up to the shutdown timeout, then one line
    names the metric points lost with the spans (it said ``metric points=0`` at exit, and
    nothing at all at os._exit)."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=blackhole.endpoint, TELEMETRYFLOW_PROTOCOL=protocol,
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2")
    proc, took = _timed_run(how, env)
    assert proc.returncode == 0, proc.stderr
    assert blackhole.connected.is_set()
    assert 2.0 <= took < 2.0 + 4.0, took
    line = _exit_line(proc)
    assert f"at {_WHY[how]} within 2s (TELEMETRYFLOW_SHUTDOWN_TIMEOUT)" in line, line
    assert re.search(rf"dropped: spans=[1-9]\d* logs=0 metric points={_POINTS}$", line), line


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_metrics_alone_to_a_collector_that_never_answers_are_said_lost_at_exit(
        blackhole: Blackhole, protocol: str) -> None:
    """Only metrics on: the exit waits for their last export up to the shutdown timeout
    and says the points are lost (it said nothing: the points stuck in the export were
    counted as neither exported nor dropped, and the shutdown passed for a success)."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=blackhole.endpoint, TELEMETRYFLOW_PROTOCOL=protocol,
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2", TELEMETRYFLOW_ENABLE_TRACES="false",
                    TELEMETRYFLOW_ENABLE_LOGS="false")
    proc, took = _timed_run("exit", env)
    assert proc.returncode == 0, proc.stderr
    assert 2.0 <= took < 2.0 + 4.0, took
    line = _exit_line(proc)
    assert line.endswith(f"dropped: spans=0 logs=0 metric points={_POINTS}"), line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_abandoning_the_exit_counts_the_metric_points_too(
        blackhole: Blackhole, signum: signal.Signals) -> None:
    """A SIGINT or SIGTERM while the exit waits for a silent collector ends it at once (see
    test_interrupted_exits); its line counts the metric points with what was still queued
    (they had not been collected yet: ``metric points=0``)."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=blackhole.endpoint, TELEMETRYFLOW_PROTOCOL="grpc",
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="30", TELEMETRYFLOW_BATCH_TIMEOUT="60000",
                    TELEMETRYFLOW_RUNTIME_METRICS="false")
    proc = subprocess.Popen([LAUNCHER, *python(_APP)], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "exiting"
        assert blackhole.connected.wait(20), "no export at exit"
        time.sleep(0.2)
        assert proc.poll() is None, "the exit did not wait for the export"
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signum, err
    [line] = [x for x in err.splitlines() if x.startswith("telemetryflow:")]
    assert f"(abandoned on {signum.name}); dropped: spans=" in line, line
    assert line.endswith(f" metric points={_POINTS}"), line


@pytest.mark.parametrize("how", ["exit", "os_exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_collector_answering_unavailable_until_the_deadline_loses_metric_points_said(
        otlp_receiver: OTLPReceiver, protocol: str, how: str) -> None:
    """Every export answered UNAVAILABLE (503 over HTTP): the exporters retry until the
    shutdown timeout ends them, and the line counts the metric points with the rest."""
    otlp_receiver.set_failure("UNAVAILABLE")
    env = receiver_env(otlp_receiver, protocol, TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2")
    proc, took = _timed_run(how, env)
    assert proc.returncode == 0, proc.stderr
    assert took < 2.0 + 4.0, took
    line = _exit_line(proc)
    assert re.search(rf"dropped: spans=[1-9]\d* logs=0 metric points={_POINTS}$", line), line
    assert otlp_receiver.rejected() and otlp_receiver.requests("metrics") == []


@pytest.mark.parametrize("how", ["exit", "os_exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_collector_that_answers_gets_the_metric_points_and_nothing_is_said(
        otlp_receiver: OTLPReceiver, protocol: str, how: str) -> None:
    """(Unchanged.) With the collector answering, every point arrives at exit and no line
    of ours says anything was lost."""
    proc, _ = _timed_run(how, receiver_env(otlp_receiver, protocol))
    assert proc.returncode == 0, proc.stderr
    assert [x for x in proc.stderr.splitlines() if x.startswith("telemetryflow:")] == []
    assert sorted(p.attributes["shop"] for p in otlp_receiver.wait_for_metric(
        "orders.placed")) == ["asia", "eu", "us"]
    [latency] = otlp_receiver.wait_for_metric("orders.latency")
    assert (latency.count, latency.sum) == (1, 12.5)

