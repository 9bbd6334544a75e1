"""A metrics collection whose OTLP request is past what the backend takes goes out in
requests that fit, cut by data point, each part carrying its points' resource, scope and
metric (name, unit, description, temporality, monotonicity) as they were, against the real
loopback receiver given a limit (gRPC: RESOURCE_EXHAUSTED; HTTP: 413). Before, the whole
collection was refused (gRPC: retried until the deadline) and every metric lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.infrastructure import otlp_exporters, otlp_metric_exporters
from telemetryflow_bootstrap.infrastructure.otlp_metric_exporters import (
    grpc_metric_exporter,
    http_metric_exporter,
    metric_parts,
)
from telemetryflow_bootstrap.infrastructure.watched_exporters import watch
from tests.otlp_receiver import OTLPReceiver, ReceivedMetricPoint

_LIMIT = 32_768
_SERIES = 1500  # (under the SDK's cardinality limit, 2000 per instrument)
_SECRET = "4111-1111-1111-1111"


@pytest.fixture(autouse=True)
def _fresh_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(otlp_metric_exporters, "_too_large", 0)
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _collection(huge: bool = False) -> Any:
    """Two resources' worth of metrics: a counter of ``_SERIES`` series, a delta
    up-down counter, a histogram, an exponential histogram and a gauge (and, if ``huge``,
    a counter point whose attributes alone are past ``_LIMIT``)."""
    reader = InMemoryMetricReader(preferred_temporality={
        _up_down_type(): AggregationTemporality.DELTA})
    provider = MeterProvider(
        resource=Resource({"service.name": "shop"}, schema_url="https://s/1"),
        metric_readers=[reader],
        views=[View(instrument_name="latency.exp",
                    aggregation=ExponentialBucketHistogramAggregation())])
    meter = provider.get_meter("shop.meter", "2.0", schema_url="https://s/2")
    counter = meter.create_counter("requests", unit="{request}", description="served")
    for n in range(_SERIES):
        counter.add(n + 1, {"user": f"user-{n}", "route": "/items/{id}"})
    if huge:
        counter.add(1, {"user": _SECRET + "u" * _LIMIT})
    queue = meter.create_up_down_counter("queue.depth", unit="{item}")
    for n in range(50):
        queue.add(-n, {"queue": f"q{n}"})
    histogram = meter.create_histogram("latency", unit="ms")
    exponential = meter.create_histogram("latency.exp", unit="ms")
    for n in range(200):
        histogram.record(n * 1.5, {"route": f"/r{n % 40}"})
        exponential.record(n * 1.5, {"route": f"/r{n % 40}"})
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "a"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


def _up_down_type() -> type:
    from opentelemetry.sdk.metrics import UpDownCounter

    return UpDownCounter


def _identities(request: Any) -> Counter[tuple[Any, ...]]:
    """Each data point of an encoded request with all that says what it is."""
    out: Counter[tuple[Any, ...]] = Counter()
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                data = getattr(metric, kind)
                header = (rm.resource.SerializeToString(), rm.schema_url,
                          sm.scope.SerializeToString(), sm.schema_url, metric.name,
                          metric.unit, metric.description, kind,
                          getattr(data, "aggregation_temporality", None),
                          getattr(data, "is_monotonic", None))
                for point in data.data_points:
                    out[(*header, point.SerializeToString())] += 1
    return out


def _received(points: list[ReceivedMetricPoint]) -> Counter[tuple[Any, ...]]:
    return Counter((p.name, p.unit, p.kind, p.temporality, p.is_monotonic, p.scope_name,
                    p.resource.get("service.name"), p.point.SerializeToString())
                   for p in points)


def _expected(request: Any) -> Counter[tuple[Any, ...]]:
    from tests.otlp_receiver import ReceivedRequest, metric_points_from_request

    record = ReceivedRequest("metrics", "grpc", None, {}, False, None, request)
    return _received(metric_points_from_request(record))


def test_parts_hold_every_point_once_with_its_identity_within_the_limit() -> None:
    """Cutting a ~150 KiB request at 32 KiB: every part is within the limit (measured),
    and together they hold each point once, under the same resource, scope and metric."""
    request = encode_metrics(_collection())
    assert request.ByteSize() > 4 * _LIMIT
    parts = list(metric_parts(request, _LIMIT))
    assert len(parts) >= 5 and all(part is not None for part, *_ in parts)
    assert all(part.ByteSize() <= size <= _LIMIT for part, _, size, _ in parts)
    together: Counter[tuple[Any, ...]] = Counter()
    for part, points, _, _ in parts:
        assert sum(_identities(part).values()) == points
        together += _identities(part)
    assert together == _identities(request)


def test_a_point_alone_past_the_limit_is_the_only_one_left_out() -> None:
    request = encode_metrics(_collection(huge=True))
    parts = list(metric_parts(request, _LIMIT))
    lost = [(size, name) for part, _, size, name in parts if part is None]
    assert len(lost) == 1 and lost[0][0] > _LIMIT and lost[0][1] == "requests"
    kept = sum(points for part, points, _, _ in parts if part is not None)
    assert kept == sum(_identities(request).values()) - 1


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_a_collection_past_the_backends_limit_arrives_whole_in_parts(transport: str) -> None:
    """The backend refuses a request past 32 KiB (gRPC: RESOURCE_EXHAUSTED naming its
    limit; HTTP: 413): the collection is sent again at once in requests within it, every
    point arrives exactly once, and a later export needs no refusal."""
    limit_option = ({"grpc_max_receive_bytes": _LIMIT} if transport == "grpc"
                    else {"http_max_request_bytes": _LIMIT})
    data = _collection()
    with OTLPReceiver(**limit_option).start() as receiver:
        exporter = _exporter(receiver, transport)
        try:
            assert exporter.export(data) is MetricExportResult.SUCCESS
            refused = len(receiver.rejected()) if transport == "http" else None
            first = len(receiver.requests())
            assert exporter.export(data) is MetricExportResult.SUCCESS
        finally:
            exporter.shutdown()
        requests = receiver.requests("metrics")
        assert all(r.message.ByteSize() <= _LIMIT for r in requests)
        if refused is not None:
            assert len(receiver.rejected()) == refused >= 1
        once = _received([p for p in receiver.metrics() if p.request in requests[:first]])
        assert once == _expected(encode_metrics(data))
        assert sum(once.values()) == _SERIES + 50 + 40 + 40 + 1
    assert exporter.too_large_points == 0


def test_our_own_grpc_limit_cuts_before_any_refusal(
        otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past our gRPC limit (4 MiB, a collector's default; made 32 KiB), the collection is
    cut before it is sent: the backend refuses nothing."""
    monkeypatch.setattr(otlp_exporters, "_GRPC_LIMIT", _LIMIT)
    data = _collection()
    exporter = _exporter(otlp_receiver, "grpc")
    try:
        assert exporter.export(data) is MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert not otlp_receiver.rejected()
    requests = otlp_receiver.requests("metrics")
    assert len(requests) >= 5 and all(r.message.ByteSize() <= _LIMIT for r in requests)
    assert _received(otlp_receiver.metrics()) == _expected(encode_metrics(data))


def test_a_point_past_the_limit_alone_is_counted_and_said_once_without_its_attributes(
        otlp_receiver: OTLPReceiver) -> None:
    """Over HTTP with max_request_size 32 KiB: the point whose attributes alone are past it
    is left out, counted and said once (its metric's name and size); the rest arrives."""
    exporter = watch(http_metric_exporter(endpoint=f"{otlp_receiver.http_endpoint}/v1/metrics",
                                          timeout=5, max_request_size=_LIMIT))
    try:
        assert exporter.export(_collection(huge=True)) is MetricExportResult.SUCCESS
        assert exporter.export(_collection(huge=True)) is MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert exporter.too_large_points == 2 == otlp_metric_exporters.too_large_points()
    said = [m for level, m in _diagnostics.recorded() if level == "warn"]
    assert len(said) == 1 and "'requests'" in said[0] and _SECRET not in said[0], said
    assert "max_request_size" in said[0]
    users = [p.attributes.get("user", "") for p in otlp_receiver.metrics()]
    assert len(users) == 2 * (_SERIES + 50 + 40 + 40 + 1)
    assert not any(_SECRET in user for user in users)


def _exporter(receiver: OTLPReceiver, transport: str) -> Any:
    if transport == "grpc":
        return watch(grpc_metric_exporter(endpoint=receiver.grpc_endpoint, insecure=True,
                                          timeout=5))
    return watch(http_metric_exporter(endpoint=f"{receiver.http_endpoint}/v1/metrics",
                                      timeout=5))
