"""The metric points recorded after a collection: what a second collection holds that the
first did not (``CountingMetricReader.export_late_points``).

Why: the exit's last collection is made as the exit starts (so its points are counted
whatever happens next, see ``metric_reader``), but the process goes on recording while the
exit waits for its exports: a daemon thread finishing its job, the main thread after a
SIGTERM we handle, a server thread ending its last request. Comparing a collection made at
the end with that one tells, without a cost on the recording path, whether anything was
recorded since, and which points: only those are exported again (or counted lost).

A point is late when its series (scope, metric, attributes) is new, or when its value moved:
cumulative temporality carries each series' running total, so an unchanged total means
nothing was recorded. Under delta temporality a synchronous series has a point only if
something was recorded since the previous collection: every such point is late.
Asynchronous instruments are left out: their callbacks run at each collection, so a new
reading is not a point recorded late (the exit's collection has their value at exit).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from opentelemetry.sdk.metrics.export import AggregationTemporality


def asynchronous_metrics(provider: Any) -> frozenset[tuple[str, str]]:
    """(scope name, instrument name) of ``provider``'s observable instruments; empty if
    the SDK is laid out otherwise (their readings then count as late when they change)."""
    try:
        instruments = list(provider._measurement_consumer._async_instruments)
        return frozenset((i.instrumentation_scope.name, i.name.lower()) for i in instruments)
    except Exception:
        return frozenset()


def late_points(previous: Any, current: Any, asynchronous: frozenset[tuple[str, str]]
                ) -> tuple[Any, int, int]:
    """``current`` cut down to the points recorded since ``previous`` (None: nothing is
    known of it, every synchronous point is late); with how many points that is and how
    many of them are series ``previous`` did not have. (None, 0, 0) if none."""
    before = _fingerprints(previous) if previous is not None else {}
    points = new = 0
    resources = []
    for rm in current.resource_metrics:
        scopes = []
        for sm in rm.scope_metrics:
            kept_metrics = []
            for metric in sm.metrics:
                if (sm.scope.name, metric.name.lower()) in asynchronous:
                    continue
                delta = getattr(metric.data, "aggregation_temporality", None) \
                    is AggregationTemporality.DELTA
                kept = []
                for point in metric.data.data_points:
                    seen = before.get(_series(sm.scope, metric, point))
                    if seen is None:
                        new += 1
                    elif not delta and seen == _value(point):
                        continue
                    kept.append(point)
                if kept:
                    points += len(kept)
                    kept_metrics.append(dataclasses.replace(
                        metric, data=dataclasses.replace(metric.data, data_points=kept)))
            if kept_metrics:
                scopes.append(dataclasses.replace(sm, metrics=kept_metrics))
        if scopes:
            resources.append(dataclasses.replace(rm, scope_metrics=scopes))
    if not points:
        return None, 0, 0
    return dataclasses.replace(current, resource_metrics=resources), points, new


def _fingerprints(data: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {_series(sm.scope, metric, point): _value(point)
            for rm in data.resource_metrics for sm in rm.scope_metrics
            for metric in sm.metrics for point in metric.data.data_points}


def _series(scope: Any, metric: Any, point: Any) -> tuple[Any, ...]:
    attributes = point.attributes or {}
    # (repr: attribute values may be sequences, unhashable; exit-time only, never hot)
    return (scope.name, scope.version, metric.name,
            repr(sorted(attributes.items())))


def _value(point: Any) -> tuple[Any, ...]:
    """What moves when something is recorded: a sum's or gauge's value, a histogram's
    count and sum."""
    return (getattr(point, "value", None), getattr(point, "count", None),
            getattr(point, "sum", None))
