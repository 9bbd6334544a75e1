"""``metric_values.carriable``: ints past int64 become doubles, nothing else changes, and
what comes out encodes with the OTLP exporter's own encoder (real SDK data throughout)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import metric_values
from telemetryflow_bootstrap.infrastructure.metric_values import carriable

_BIG = 2**70


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(metric_values, "_changed", 0)
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _collected(record: Callable[[Any], None]) -> Any:
    reader = InMemoryMetricReader()
    record(MeterProvider(metric_readers=[reader]).get_meter("m"))
    return reader.get_metrics_data()


def _points(data: Any) -> dict[str, Any]:
    return {metric.name: metric.data.data_points[0]
            for resource in data.resource_metrics for scope in resource.scope_metrics
            for metric in scope.metrics}


def _warnings() -> list[str]:
    return [message for level, message in _diagnostics.recorded() if level == "warn"]


def test_a_collection_with_nothing_past_int64_is_returned_as_is() -> None:
    data = _collected(lambda m: (m.create_counter("c").add(2**63 - 1),
                                 m.create_gauge("g").set(-(2**63)),
                                 m.create_histogram("h").record(2**70)))  # (no exemplar)
    assert carriable(data) is data
    assert metric_values.values_sent_as_double() == 0
    assert _warnings() == []


def test_values_past_int64_become_doubles_and_the_rest_is_untouched() -> None:
    def record(meter: Any) -> None:
        meter.create_counter("big").add(_BIG, {"k": "v"})
        meter.create_gauge("low").set(-_BIG - 1)
        meter.create_counter("fine").add(5)
        meter.create_up_down_counter("edge").add(2**63 - 1)

    data = _collected(record)
    with pytest.raises(Exception, match="out of range"):
        encode_metrics(data)  # (what lost the whole export)
    fixed = carriable(data)
    points = _points(fixed)
    assert points["big"].value == float(_BIG) and type(points["big"].value) is float
    assert points["big"].attributes == {"k": "v"}
    assert points["low"].value == float(-_BIG - 1)
    assert points["fine"] is _points(data)["fine"]
    assert type(points["edge"].value) is int
    encoded = encode_metrics(fixed)
    sent = {m.name: m for rm in encoded.resource_metrics for sm in rm.scope_metrics
            for m in sm.metrics}
    assert sent["big"].sum.data_points[0].as_double == float(_BIG)
    assert sent["fine"].sum.data_points[0].as_int == 5
    assert sent["edge"].sum.data_points[0].as_int == 2**63 - 1
    assert metric_values.values_sent_as_double() == 2
    assert type(_points(data)["big"].value) is int  # (the collection itself is not changed)


def test_an_exemplar_past_int64_becomes_a_double() -> None:
    """A histogram point recorded in a sampled span keeps the int in its exemplar."""
    tracer = TracerProvider().get_tracer("t")

    def record(meter: Any) -> None:
        histogram = meter.create_histogram("h")
        with tracer.start_as_current_span("s"):
            histogram.record(_BIG)

    data = _collected(record)
    with pytest.raises(Exception, match="out of range"):
        encode_metrics(data)
    fixed = carriable(data)
    assert [e.value for e in _points(fixed)["h"].exemplars] == [float(_BIG)]
    point = encode_metrics(fixed).resource_metrics[0].scope_metrics[0].metrics[0]
    assert point.histogram.data_points[0].exemplars[0].as_double == float(_BIG)
    assert point.histogram.data_points[0].count == 1


def test_it_is_said_once_naming_the_metric_never_the_value() -> None:
    for _ in range(3):
        carriable(_collected(lambda m: m.create_counter("orders.total").add(_BIG)))
    said = _warnings()
    assert len(said) == 1, said
    assert "'orders.total'" in said[0] and "sent as a double" in said[0]
    assert str(_BIG) not in said[0]
    assert metric_values.values_sent_as_double() == 3


def test_data_of_an_unknown_shape_is_returned_as_is() -> None:
    odd = object()
    assert carriable(odd) is odd
