"""Metric temporality and histogram aggregation, as OTEL_EXPORTER_OTLP_METRICS_* ask: read
from the environment and applied by the SDK's reader through our exporter's preferences."""

from __future__ import annotations

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogram,
    HistogramDataPoint,
    InMemoryMetricReader,
)

from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.infrastructure.metric_preferences import exporter_preferences

_OTEL_TEMPORALITY = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
_OTEL_AGGREGATION = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"


@pytest.mark.parametrize(("env", "temporality", "aggregation"), [
    ({}, "cumulative", "explicit_bucket_histogram"),
    ({_OTEL_TEMPORALITY: "DELTA"}, "delta", "explicit_bucket_histogram"),
    ({_OTEL_TEMPORALITY: "LowMemory"}, "lowmemory", "explicit_bucket_histogram"),
    ({_OTEL_TEMPORALITY: "delta", "TELEMETRYFLOW_METRICS_TEMPORALITY": "cumulative"},
     "cumulative", "explicit_bucket_histogram"),
    ({_OTEL_AGGREGATION: "base2_exponential_bucket_histogram"}, "cumulative",
     "base2_exponential_bucket_histogram"),
    ({_OTEL_TEMPORALITY: ""}, "cumulative", "explicit_bucket_histogram"),  # empty: unset
])
def test_settings_are_read_from_the_environment(env: dict[str, str], temporality: str,
                                                aggregation: str) -> None:
    config, reading = load_config(env)
    assert (config.metrics_temporality, config.histogram_aggregation) == (temporality,
                                                                          aggregation)
    assert reading.problems == []


@pytest.mark.parametrize(("name", "value", "expected"), [
    (_OTEL_TEMPORALITY, "sometimes", "expected one of: cumulative, delta, lowmemory"),
    (_OTEL_AGGREGATION, "exponential", "expected one of: explicit_bucket_histogram, "
                                       "base2_exponential_bucket_histogram"),
])
def test_a_bad_value_names_the_variable_and_what_is_expected(name: str, value: str,
                                                             expected: str) -> None:
    config, reading = load_config({name: value})
    [problem] = reading.problems
    assert str(problem) == f"{name}={value!r}: {expected}"
    assert config.metrics_temporality == "cumulative"  # (the default is used)


def test_a_config_built_in_code_is_checked() -> None:
    with pytest.raises(Exception, match="metrics_temporality='weekly'"):
        TelemetryConfig(metrics_temporality="weekly")


def _provider(config: TelemetryConfig) -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader(**exporter_preferences(config))
    return MeterProvider(metric_readers=[reader]), reader


def _points(reader: InMemoryMetricReader) -> dict[str, object]:
    data = reader.get_metrics_data()
    return {metric.name: metric.data for rm in data.resource_metrics
            for sm in rm.scope_metrics for metric in sm.metrics}


@pytest.mark.parametrize(("temporality", "counter", "histogram", "updown"), [
    ("cumulative", ("CUMULATIVE", 5), ("CUMULATIVE", 2), ("CUMULATIVE", 1)),
    ("delta", ("DELTA", 3), ("DELTA", 1), ("CUMULATIVE", 1)),
    ("lowmemory", ("DELTA", 3), ("DELTA", 1), ("CUMULATIVE", 1)),
])
def test_temporality_reaches_the_collected_points(temporality: str, counter: tuple[str, int],
                                                  histogram: tuple[str, int],
                                                  updown: tuple[str, int]) -> None:
    """Two collections: the second carries the change since the first (delta) or the
    running total (cumulative); up-down counters stay cumulative either way."""
    provider, reader = _provider(TelemetryConfig(metrics_temporality=temporality))
    meter = provider.get_meter("t")
    c, h, u = (meter.create_counter("c"), meter.create_histogram("h"),
               meter.create_up_down_counter("u"))
    c.add(2)
    h.record(1.0)
    u.add(1)
    reader.get_metrics_data()
    c.add(3)
    h.record(2.0)
    data = _points(reader)
    shown = {name: (AggregationTemporality(d.aggregation_temporality).name,
                    d.data_points[0].value if name != "h" else d.data_points[0].count)
             for name, d in data.items()}
    assert shown == {"c": counter, "h": histogram, "u": updown}
    provider.shutdown()


def test_observable_counter_is_delta_under_delta_only() -> None:
    """``delta`` makes observable counters delta too, ``lowmemory`` keeps them cumulative."""
    for temporality, expected in (("delta", "DELTA"), ("lowmemory", "CUMULATIVE")):
        provider, reader = _provider(TelemetryConfig(metrics_temporality=temporality))
        provider.get_meter("t").create_observable_counter(
            "o", callbacks=[lambda _options: [Observation(4)]])
        data = _points(reader)
        assert AggregationTemporality(data["o"].aggregation_temporality).name == expected
        provider.shutdown()


def test_exponential_histogram_aggregation() -> None:
    provider, reader = _provider(
        TelemetryConfig(histogram_aggregation="base2_exponential_bucket_histogram"))
    provider.get_meter("t").create_histogram("h").record(3.5)
    data = _points(reader)["h"]
    assert isinstance(data, ExponentialHistogram)
    assert data.data_points[0].count == 1 and data.data_points[0].sum == 3.5
    provider.shutdown()


def test_default_histograms_keep_explicit_buckets() -> None:
    provider, reader = _provider(TelemetryConfig())
    provider.get_meter("t").create_histogram("h").record(3.5)
    assert isinstance(_points(reader)["h"].data_points[0], HistogramDataPoint)
    provider.shutdown()
