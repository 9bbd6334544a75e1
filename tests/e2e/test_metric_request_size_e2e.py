"""A program's high-cardinality metrics (10,000 series here, 50,000 by hand: OTLP requests of
~1.3 and ~6.4 MB) under the installed ``telemetryflow-run``, against the real loopback
receiver given a lower request limit than that (gRPC: refused with RESOURCE_EXHAUSTED
naming the limit; HTTP: 413 Payload Too Large). Before, the whole collection was refused
(over gRPC retried until the export's deadline), every metric of the process lost, and the
backend blamed. Now every data point arrives exactly once, in requests within the limit,
under its own counter."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.otlp_receiver import OTLPReceiver

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_APP = app("high_cardinality_metrics_app.py")
_LIMIT = 256 * 1024
_COUNTERS, _SETS = 5, 2000


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_high_cardinality_collection_arrives_whole_within_the_backends_limit(
        protocol: str) -> None:
    """10,000 series past a 256 KiB limit (uncompressed, so that the limit is the
    request's size): refused once, then every point arrives exactly once, under its own
    counter (name, unit, temporality, scope), with its value, in requests within the
    limit; nothing is said to have failed."""
    option = ({"grpc_max_receive_bytes": _LIMIT} if protocol == "grpc"
              else {"http_max_request_bytes": _LIMIT})
    receiver = OTLPReceiver(**option).start()
    try:
        proc = run(python(_APP, str(_COUNTERS)), receiver_env(
            receiver, protocol, TELEMETRYFLOW_TIMEOUT="20", TELEMETRYFLOW_SHUTDOWN_TIMEOUT="30",
            TELEMETRYFLOW_RUNTIME_METRICS="false", TELEMETRYFLOW_COMPRESSION="none"),
            timeout=90)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"recorded {_COUNTERS * _SETS} attribute sets\n"
        points = [p for p in receiver.metrics() if p.name.startswith("app.requests.")]
        requests = receiver.requests("metrics")
    finally:
        receiver.stop()
    seen = Counter((p.name, p.attributes["user.id"]) for p in points)
    assert len(seen) == _COUNTERS * _SETS and set(seen.values()) == {1}
    assert {(p.unit, p.temporality, p.is_monotonic, p.scope_name) for p in points} == {
        ("{request}", "CUMULATIVE", True, "high_cardinality_metrics_app")}
    assert all(p.value == int(p.attributes["user.id"][-5:]) + 1 for p in points)
    sizes = [r.message.ByteSize() for r in requests]
    assert len(sizes) >= 6 and max(sizes) <= _LIMIT, sizes
    assert "not all telemetry" not in proc.stderr, proc.stderr
    assert "RESOURCE_EXHAUSTED" not in proc.stderr and "413" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_point_past_the_limit_alone_is_left_out_and_said_lost_at_exit(protocol: str) -> None:
    """One data point whose attributes alone make a request past the backend's limit: the
    other points arrive, that one is left out, and the exit line counts it lost (it was
    counted exported with the rest of its collection, so nothing said it was lost)."""
    limit = 64 * 1024
    option = ({"grpc_max_receive_bytes": limit} if protocol == "grpc"
              else {"http_max_request_bytes": limit})
    code = ("from opentelemetry import metrics\n"
            "counter = metrics.get_meter('big').create_counter('app.uploads')\n"
            "for n in range(50):\n"
            "    counter.add(1, {'file': f'small-{n}'})\n"
            "counter.add(1, {'file': 'x' * 200_000})\n")
    receiver = OTLPReceiver(**option).start()
    try:
        proc = run(python("-c", code), receiver_env(
            receiver, protocol, TELEMETRYFLOW_RUNTIME_METRICS="false",
            TELEMETRYFLOW_COMPRESSION="none", TELEMETRYFLOW_SHUTDOWN_TIMEOUT="10"), timeout=60)
        points = [p for p in receiver.metrics() if p.name == "app.uploads"]
    finally:
        receiver.stop()
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.attributes["file"] for p in points) == sorted(
        f"small-{n}" for n in range(50))
    [line] = [x for x in proc.stderr.splitlines() if "not all telemetry" in x]
    assert "metric points=1" in line and "past the request size limit: metric_points=1" in line
    assert "x" * 100 not in proc.stderr
