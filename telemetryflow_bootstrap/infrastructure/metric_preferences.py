"""What the metric reader asks of every instrument: its temporality and, for histograms, its
aggregation, from ``TELEMETRYFLOW_METRICS_TEMPORALITY`` /
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` and ``TELEMETRYFLOW_HISTOGRAM_AGGREGATION``
/ ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION``.

Why here: the SDK's reader takes both from its exporter when it is built, and the OTLP
exporters read these variables in their constructors; ours is built lazily, on the export
thread, long after the reader (the exporter stack stays off the start-up path), so the
exporter the reader sees states them itself. The mapping is the OpenTelemetry
specification's: ``delta`` makes counters, observable counters and histograms delta (up-down
counters stay cumulative: their deltas would not add up to a level), ``lowmemory`` the
synchronous counters and histograms only.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from ..domain.config import TelemetryConfig

_DELTA_FOR = {
    "cumulative": (),
    "delta": (Counter, ObservableCounter, Histogram),
    "lowmemory": (Counter, Histogram),
}
_INSTRUMENTS = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter,
                ObservableGauge)


def exporter_preferences(config: TelemetryConfig) -> dict[str, Any]:
    """``MetricExporter.__init__``'s ``preferred_temporality`` and
    ``preferred_aggregation`` for ``config``."""
    delta = _DELTA_FOR[config.metrics_temporality]
    temporality = {instrument: AggregationTemporality.DELTA if instrument in delta
                   else AggregationTemporality.CUMULATIVE for instrument in _INSTRUMENTS}
    aggregation: dict[type, Any] = {}
    if config.histogram_aggregation == "base2_exponential_bucket_histogram":
        aggregation[Histogram] = ExponentialBucketHistogramAggregation()
    return {"preferred_temporality": temporality, "preferred_aggregation": aggregation}
