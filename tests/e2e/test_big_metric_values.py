"""A metric value past 64 bits costs the process none of its metrics: under the installed
``telemetryflow-run``, against the real OTLP receiver, it arrives as a double and everything
exported with it arrives too, with one warning (see ``infrastructure.metric_values``)."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_BIG = float(2**70)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_value_past_64_bits_is_sent_as_a_double_and_nothing_else_is_lost(
        otlp_receiver, protocol: str) -> None:
    proc = run(python(app("big_metric_values_app.py")),
               receiver_env(otlp_receiver, protocol=protocol))
    assert proc.returncode == 0, proc.stderr
    # (get_status() counts them after a flush: the four values, once per export)
    word, as_double, left_out, as_text = proc.stdout.split()
    assert (word, left_out, as_text) == ("recorded", "0", "0")
    assert int(as_double) >= 4
    otlp_receiver.wait_for_metric("normal.counter")
    points: dict = {}
    for point in otlp_receiver.metrics():  # (the first export's: the flush's)
        points.setdefault(point.name, point)
    assert points["normal.counter"].value == 1
    assert points["normal.counter"].attributes == {"k": "v"}
    assert points["edge.updown"].value == 2**63 - 1  # an int still
    for name, value in (("big.counter", _BIG), ("big.gauge", -_BIG), ("client.big", _BIG)):
        assert points[name].point.WhichOneof("value") == "as_double", name
        assert points[name].value == value, name
    histogram = points["big.histogram"]
    assert histogram.count == 1 and histogram.sum == _BIG
    assert [e.as_double for e in histogram.point.exemplars] == [_BIG]
    assert any(p.name.startswith("process.") for p in otlp_receiver.metrics())  # runtime too
    warnings = [line for line in proc.stderr.splitlines() if "past 64 bits" in line]
    assert len(warnings) == 1, proc.stderr
    assert str(2**70) not in proc.stderr
    assert "backend" not in proc.stderr and "Failed to encode" not in proc.stderr
