"""Metric values OTLP cannot carry: an int past 64 bits, sent as a double instead.

Why: a counter, up-down counter or gauge fed a Python int keeps it an int, and so does a
histogram's exemplar; OTLP's ``as_int`` is an int64. One value past it (``counter.add(2**70)``,
``gauge.set(-2**70)``, a histogram point recorded in a sampled span) and the exporter's
encoder refuses the whole collection: every metric of the process, its runtime metrics
included, lost at every export from then on (a cumulative sum stays past int64), and
reported as a failed export, as if the backend were down. As a double the value keeps its
magnitude (what a backend stores anyway: most keep metric values as float64) and the rest of
the collection goes out untouched. Dropping the point instead would lose that series for
good, and a clamped value is a wrong value.

The check walks every point of a collection (a few hundred nanoseconds each, on the reader's
thread, once per export interval); a collection with nothing to change is returned as is,
not copied. The first value changed is said once (naming its metric, never a value or an
attribute); ``values_sent_as_double()`` counts them for ``get_status()``.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from .. import _diagnostics

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

_lock = threading.Lock()
_changed = 0


def values_sent_as_double() -> int:
    """How many metric values (points and exemplars) past int64 were sent as doubles."""
    return _changed


def _past_int64(value: Any) -> bool:
    return type(value) is int and not _INT64_MIN <= value <= _INT64_MAX


def carriable(metrics_data: Any) -> Any:
    """``metrics_data``, or a copy of it in which every int value past int64 (a point's
    ``value``, an exemplar's) is a float. Never raises: data of an unknown shape is returned
    as is (the exporter then says what it makes of it)."""
    try:
        if not _any_past_int64(metrics_data):
            return metrics_data
        return _with_doubles(metrics_data)
    except Exception as exc:
        _diagnostics.debug(f"metric values not checked ({type(exc).__name__}: {exc})")
        return metrics_data


def _any_past_int64(metrics_data: Any) -> bool:
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    if _past_int64(getattr(point, "value", None)):
                        return True
                    for exemplar in getattr(point, "exemplars", None) or ():
                        if _past_int64(exemplar.value):
                            return True
    return False


def _with_doubles(metrics_data: Any) -> Any:
    changed: list[str] = []
    resources = []
    for resource_metrics in metrics_data.resource_metrics:
        scopes = []
        for scope_metrics in resource_metrics.scope_metrics:
            metrics = [_metric_with_doubles(metric, changed)
                       for metric in scope_metrics.metrics]
            scopes.append(dataclasses.replace(scope_metrics, metrics=metrics))
        resources.append(dataclasses.replace(resource_metrics, scope_metrics=scopes))
    _count(changed)
    return dataclasses.replace(metrics_data, resource_metrics=resources)


def _metric_with_doubles(metric: Any, changed: list[str]) -> Any:
    points = []
    touched = False
    for point in metric.data.data_points:
        fields: dict[str, Any] = {}
        if _past_int64(getattr(point, "value", None)):
            fields["value"] = float(point.value)
            changed.append(metric.name)
        exemplars = getattr(point, "exemplars", None) or ()
        if any(_past_int64(exemplar.value) for exemplar in exemplars):
            fields["exemplars"] = [
                dataclasses.replace(exemplar, value=float(exemplar.value))
                if _past_int64(exemplar.value) else exemplar for exemplar in exemplars]
            changed.extend(metric.name for e in exemplars if _past_int64(e.value))
        points.append(dataclasses.replace(point, **fields) if fields else point)
        touched = touched or bool(fields)
    if not touched:
        return metric
    return dataclasses.replace(metric, data=dataclasses.replace(metric.data, data_points=points))


def _count(changed: list[str]) -> None:
    global _changed
    if not changed:
        return
    with _lock:
        first = _changed == 0
        _changed += len(changed)
    if first:
        _diagnostics.warn(
            f"metric {changed[0]!r}: a value past 64 bits (an int OTLP cannot carry) is sent "
            "as a double, the rest of its export as is; further ones are counted "
            "(get_status()['metric_values_sent_as_double']), not said")
