"""OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE and
OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION, as a user sets them for a backend
that takes only delta points (Dynatrace) or exponential histograms: what arrives is that.
(Both were ignored: every point arrived cumulative, every histogram with fixed buckets.)"""

from __future__ import annotations

import pytest

from ..otlp_receiver import OTLPReceiver
from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_NAMES = ("app.jobs", "app.size", "http.server.request.duration")


def _run(receiver: OTLPReceiver, **env: str) -> dict[str, list]:
    proc = run(python(app("metrics_temporality_app.py")), receiver_env(
        receiver, TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="100", TELEMETRYFLOW_RUNTIME_METRICS="false",
        **env))
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout
    receiver.wait_for_metric("app.jobs")
    return {name: [p for p in receiver.metrics() if p.name == name] for name in _NAMES}


def _total(point) -> float:
    return point.value if point.kind == "sum" else point.count


def test_delta_points_carry_the_change_since_the_last_export(otlp_receiver):
    points = _run(otlp_receiver, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="delta")
    for name, received in points.items():
        assert received, name
        assert {p.temporality for p in received} == {"DELTA"}, name
        # (the points of successive exports add up to what was recorded: 15 of each)
        assert sum(_total(p) for p in received) == 15, (name, [_total(p) for p in received])
        assert len([p for p in received if _total(p)]) >= 2, name  # more than one export


def test_cumulative_is_the_default(otlp_receiver):
    points = _run(otlp_receiver)
    for name, received in points.items():
        assert {p.temporality for p in received} == {"CUMULATIVE"}, name
        assert max(_total(p) for p in received) == 15, name


def test_exponential_histograms_when_asked(otlp_receiver):
    points = _run(otlp_receiver, OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=
                  "base2_exponential_bucket_histogram")
    for name in ("app.size", "http.server.request.duration"):
        assert {p.kind for p in points[name]} == {"exponential_histogram"}, name
        assert max(p.count for p in points[name]) == 15, name
    assert {p.kind for p in points["app.jobs"]} == {"sum"}


def test_a_bad_value_is_one_line_and_the_default_is_used(otlp_receiver):
    proc = run(python(app("metrics_temporality_app.py")), receiver_env(
        otlp_receiver, TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="100",
        OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="weekly"))
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "TEMPORALITY" in line]
    assert len(lines) == 1, proc.stderr
    assert "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE='weekly'" in lines[0]
    assert "expected one of: cumulative, delta, lowmemory" in lines[0]
    points = [p for p in otlp_receiver.wait_for_metric("app.jobs")]
    assert {p.temporality for p in points} == {"CUMULATIVE"}
