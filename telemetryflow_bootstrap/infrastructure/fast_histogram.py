"""Duration points without the SDK's per-call path, for the histograms we record on every
request and every database call.

Why: ``Histogram.record`` costs ~8-10 µs of the program's own thread, most of it spent
re-validating, copying and hashing the same five attributes for every point (a
``Measurement`` cleans them, each view match copies and hashes them again) before a bucket
count goes up. That is most of what an unsampled request costs, and metrics must count
every request. ``FastHistogram`` resolves, once per attribute set, the SDK aggregation
objects the point lands in (one per reader and view), then hands later points of that set
straight to them, exactly as ``_ViewInstrumentMatch.consume_measurement`` would: same
aggregation, same exemplar filter and reservoir, same locking under delta temporality.

Anything it does not recognise goes through ``histogram.record`` unchanged: a histogram
that is not the SDK's, an SDK without the internals this reads, a view that aggregates
differently, an attribute set past the cardinality limit, a disabled meter, readers added
or removed since (their storages are re-resolved). Tests compare the collected points of
both paths field by field, so an SDK upgrade that changes these internals fails there.

The attribute values must be ``str`` or ``int`` (never ``bool`` or ``float``: ``1``,
``1.0`` and ``True`` share a cache key here but not in the SDK). Our callers build them so.

Points are not aggregated one by one but queued and aggregated ``_BATCH`` at a time, by
whichever thread fills the batch, and by every collection of the provider's readers before
it reads anything (each reader's collect callback is wrapped once). Why: in a running
program one aggregation costs 5-9 µs of CPU (its code and data are cold again by the next
request), a batch of them ~1 µs each. A batch's points that offer no exemplar are added to
their set's aggregation together, under its lock, exactly as its ``aggregate`` adds one
(sum in the order they came, min, max, bucket count): ~0.2 µs a point instead of ~2 (the
SDK's call, its lock and our loop around it, per point). A point that offers an exemplar
(a sampled request's, under the default trace-based filter) is queued with its time and
context and offered to the reservoir in the same order, so the exemplars collected are the
same. A point lands in the same collection as without the queue; a collection running at
the very moment a point is queued (or a batch is being added) may leave it for the next
one, as a point recorded a moment later would be.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left
from collections import deque
from time import time_ns
from typing import Any

from opentelemetry.trace import INVALID_SPAN, get_current_span

from .. import _diagnostics
from .current_context import get_current

try:  # the internals this module relies on; any missing one: histograms stay as they are
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
    from opentelemetry.sdk.metrics._internal.aggregation import (
        _ExplicitBucketHistogramAggregation,
    )
    from opentelemetry.sdk.metrics._internal.exemplar.exemplar_filter import (
        AlwaysOffExemplarFilter,
        AlwaysOnExemplarFilter,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics._internal.instrument import _Histogram as _SdkHistogram
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
except ImportError:  # pragma: no cover - depends on the installed SDK
    _SdkHistogram = None

try:  # (without it, every exemplar point is offered: see _last_offers_only)
    from opentelemetry.sdk.metrics._internal.exemplar.exemplar_reservoir import (
        AlignedHistogramBucketExemplarReservoir as _Aligned,
    )
except ImportError:  # pragma: no cover - depends on the installed SDK
    _Aligned = None

_INF = float("inf")
_CACHE_LIMIT = 2000  # attribute sets remembered per histogram (the SDK's default limit)
_NEEDED = ("_measurement_consumer", "_is_enabled")
_CONSUMER_NEEDED = ("_reader_storages", "_sdk_config")
_MATCH_NEEDED = ("_attributes_aggregation", "_lock", "_reset_on_collect", "_view")
_AGGREGATION_NEEDED = ("_lock", "_value", "_sum", "_min", "_max", "_record_min_max",
                       "_boundaries", "_get_empty_bucket_counts")
_TRACE_BASED, _ALWAYS_ON, _ALWAYS_OFF, _OTHER_FILTER = range(4)
_NEVER, _AGAIN = object(), object()  # what _resolve answers besides targets
_BATCH = 64  # queued points aggregated at once (a collection takes them all before)
_DRAINS = "_telemetryflow_drains"  # marks a reader's collect callback we wrapped
# The FastHistograms of each SDK measurement consumer (one per MeterProvider), which its
# readers' collections drain first.
_BY_CONSUMER: weakref.WeakKeyDictionary[Any, weakref.WeakSet[FastHistogram]] = \
    weakref.WeakKeyDictionary()


def fast_histogram(histogram: Any) -> Any:
    """``histogram`` wrapped in a ``FastHistogram`` when it is the SDK's and the SDK is
    shaped as this module expects; else ``histogram`` itself."""
    if _SdkHistogram is None or type(histogram) is not _SdkHistogram:
        return histogram
    if not all(hasattr(histogram, name) for name in _NEEDED):
        return histogram
    consumer = histogram._measurement_consumer
    if not all(hasattr(consumer, name) for name in _CONSUMER_NEEDED):
        return histogram
    if not hasattr(getattr(consumer._sdk_config, "exemplar_filter", None), "should_sample"):
        return histogram
    return FastHistogram(histogram)


class _Value:
    """What ``aggregate`` reads of a point that is offered to no exemplar reservoir."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


class _Offered:
    """A queued point that offers an exemplar: what its ``Measurement`` needs besides the
    attributes (rebuilt from the cache key, as they were when recorded)."""

    __slots__ = ("bucket", "context", "time_unix_nano", "value")

    def __init__(self, value: float, time_unix_nano: int, context: Any,
                 bucket: int | None) -> None:
        self.value = value
        self.time_unix_nano = time_unix_nano
        self.context = context
        self.bucket = bucket  # (its bucket where only the last per bucket is offered)


class _Targets:
    """Where one attribute set's points go: for each reader and view, the view match, the
    table its aggregation sits in and that aggregation. ``bounds``/``latest``: see
    ``_last_offers_only``; ``latest`` (None: every exemplar point is offered) holds, per
    bucket, the last exemplar point queued."""

    __slots__ = ("bounds", "latest", "storages", "targets")

    def __init__(self, storages: Any, targets: list[tuple[Any, Any, Any, bool]],
                 bounds: tuple[float, ...] | None) -> None:
        self.storages = storages
        self.targets = targets
        self.bounds = bounds
        self.latest: dict[int, _Offered] | None = {} if bounds is not None else None


class _Plain:
    """The values of one flush that offer no exemplar, for one target (see ``flush``)."""

    __slots__ = ("keys", "storages", "target", "values")

    def __init__(self, target: tuple[Any, Any, Any, bool], storages: Any) -> None:
        self.target = target
        self.storages = storages
        self.values: list[float] = []
        self.keys: list[tuple[tuple[str, Any], ...]] = []


class FastHistogram:
    """An SDK ``Histogram``'s ``record`` for low-cardinality attribute sets (see module)."""

    __slots__ = ("__weakref__", "_cache", "_consumer", "_filter", "_filter_kind",
                 "_histogram", "_pending", "name")

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram
        self.name = histogram.name
        self._consumer = histogram._measurement_consumer
        self._filter = self._consumer._sdk_config.exemplar_filter
        self._filter_kind = {TraceBasedExemplarFilter: _TRACE_BASED,
                             AlwaysOnExemplarFilter: _ALWAYS_ON,
                             AlwaysOffExemplarFilter: _ALWAYS_OFF}.get(
            type(self._filter), _OTHER_FILTER)
        self._cache: dict[tuple[tuple[str, Any], ...], _Targets | None] = {}
        # (amount, attribute key, targets) of points not aggregated yet (see module)
        self._pending: deque[tuple[float, tuple[tuple[str, Any], ...], _Targets]] = deque()
        _BY_CONSUMER.setdefault(self._consumer, weakref.WeakSet()).add(self)

    def record(self, amount: float, attributes: dict[str, Any] | None = None,
               context: Any = None, span_sampled: bool | None = None) -> None:
        """``Histogram.record``; ``span_sampled``: whether the span of ``context`` (or of
        the current context) is sampled, when the caller knows, which spares asking the
        span (what the trace-based exemplar filter decides by)."""
        histogram = self._histogram
        if not 0 <= amount < _INF or not histogram._is_enabled():
            histogram.record(amount, attributes, context)  # the SDK drops it (and says so)
            return
        try:
            key = tuple(attributes.items()) if attributes else ()
            found = self._cache.get(key)
        except (AttributeError, TypeError):  # not a mapping, an unhashable value: the SDK's
            self._sdk_record(amount, attributes, context)
            return
        if found is None or found.storages is not self._consumer._reader_storages:
            self._record_and_resolve(key, amount, attributes, context)
            return
        kind = self._filter_kind
        if kind is _TRACE_BASED:
            if span_sampled is None:
                span = get_current_span(context or get_current())
                sample = span is not INVALID_SPAN and \
                    span.get_span_context().trace_flags.sampled
            else:
                sample = span_sampled
        elif kind is _ALWAYS_OFF:
            sample = False
        elif kind is _ALWAYS_ON:
            sample = True
        else:
            sample = self._filter.should_sample(amount, time_ns(), attributes,
                                                context or get_current())
        pending = self._pending
        if sample:  # (as the SDK: an empty Context means the current one)
            latest = found.latest
            if latest is None:
                offered = _Offered(amount, time_ns(), context or get_current(), None)
            else:  # (noted before it is queued: see _last_offers_only)
                bucket = bisect_left(found.bounds, amount)  # type: ignore[arg-type]
                offered = latest[bucket] = _Offered(amount, time_ns(),
                                                    context or get_current(), bucket)
            pending.append((offered, key, found))
        else:
            pending.append((amount, key, found))
        if len(pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        """Aggregate the queued points now (collections do this first)."""
        pending = self._pending
        histogram = self._histogram
        # per aggregation, the values (and their sets) that offer no exemplar, added
        # together (see module) and before its next exemplar point, so that its sum adds up
        # in the order the points came (two sets may share one: a view keeping fewer keys)
        plain: dict[int, _Plain] = {}
        while True:
            try:
                point, key, found = pending.popleft()
            except IndexError:  # (another thread may be taking points too)
                break
            if type(point) is _Offered:
                latest = found.latest
                if latest is not None and latest.get(point.bucket) is not point:
                    point = point.value  # a later point takes its bucket's exemplar
                else:
                    for target in found.targets:
                        waiting = plain.pop(id(target[2]), None)
                        if waiting is not None:
                            self._add(waiting)
                    # the Measurement the SDK would have made when it was recorded
                    self._aggregate(Measurement(point.value, point.time_unix_nano, histogram,
                                                point.context, dict(key)), True, key, found)
                    continue
            for target in found.targets:
                group = plain.get(id(target[2]))
                if group is None:
                    group = plain[id(target[2])] = _Plain(target, found.storages)
                group.values.append(point)
                group.keys.append(key)
        for group in plain.values():
            self._add(group)

    def _add(self, group: _Plain) -> None:
        """A group's values into its aggregation, as ``_aggregate`` adds them one by one."""
        match, table, aggregation, reset = group.target
        if reset:  # delta: as _aggregate
            with match._lock:
                if match._attributes_aggregation is table:
                    _add_values(aggregation, group.values)
                    return
            alone = _Targets(group.storages, [group.target], None)
            # collected since: point by point, the SDK's way
            for value, key in zip(group.values, group.keys, strict=True):
                self._aggregate(_Value(value), False, key, alone)
        else:
            _add_values(aggregation, group.values)

    def _sdk_record(self, amount: float, attributes: Any, context: Any) -> None:
        """``histogram.record``, after the queued points: the SDK must see points in the
        order they came, or after a delta collection, with a cardinality limit, the sets
        that come first would not be the ones that get the new slots."""
        if self._pending:
            self.flush()
        self._histogram.record(amount, attributes, context)

    def _aggregate(self, point: Any, sample: bool, key: tuple[tuple[str, Any], ...],
                   found: _Targets) -> None:
        """``point`` into each target, as ``_ViewInstrumentMatch.consume_measurement``."""
        for match, table, aggregation, reset in found.targets:
            if reset:  # delta: a collection may swap the table; the SDK aggregates locked
                with match._lock:
                    if match._attributes_aggregation is table:
                        aggregation.aggregate(point, sample)
                        continue
                # collected since: this point makes the new aggregation, the SDK's way
                match.consume_measurement(_measurement(point, self._histogram, dict(key)),
                                          sample)
                self._cache.pop(key, None)
            else:
                aggregation.aggregate(point, sample)

    def _record_and_resolve(self, key: tuple[tuple[str, Any], ...], amount: float,
                            attributes: dict[str, Any] | None, context: Any) -> None:
        """The SDK's own record (which creates the aggregations), then find them."""
        self._sdk_record(amount, attributes, context)
        if key in self._cache and self._cache[key] is None:
            return  # known not to qualify
        try:
            found = self._resolve(attributes)
        except Exception:  # internals not as expected: this set stays on the SDK's path
            found = _NEVER
        if found is _AGAIN:  # (collected meanwhile, past the cardinality limit): next time
            self._cache.pop(key, None)
        elif len(self._cache) < _CACHE_LIMIT or key in self._cache:
            self._cache[key] = None if found is _NEVER else found

    def _resolve(self, attributes: dict[str, Any] | None) -> Any:
        """The set's ``_Targets``; ``_NEVER`` when it cannot take the fast path, ``_AGAIN``
        when its aggregation is not there right now."""
        if attributes and any(type(v) is not str and type(v) is not int
                              for v in attributes.values()):
            return _NEVER
        histogram = self._histogram
        storages = self._consumer._reader_storages
        for reader in storages:
            if not _drains_first(reader, self._consumer):
                return _NEVER  # a reader whose collections would miss queued points
        cleaned = dict(attributes) if attributes else {}
        targets: list[tuple[Any, Any, Any, bool]] = []
        for storage in storages.values():
            for match in storage._get_or_init_view_instrument_match(histogram):
                if not all(hasattr(match, name) for name in _MATCH_NEEDED):
                    return _NEVER
                keys = match._view._attribute_keys
                kept = cleaned if keys is None else {
                    k: v for k, v in cleaned.items() if k in keys}
                table = match._attributes_aggregation
                aggregation = table.get(_hash_attributes(kept))
                if aggregation is None:
                    return _AGAIN
                if type(aggregation) is not _ExplicitBucketHistogramAggregation or \
                        not all(hasattr(aggregation, name) for name in _AGGREGATION_NEEDED):
                    return _NEVER  # a view that aggregates otherwise
                targets.append((match, table, aggregation, bool(match._reset_on_collect)))
        return _Targets(storages, targets, self._last_offers_only(targets))

    def _last_offers_only(self, targets: list[tuple[Any, Any, Any, bool]]
                          ) -> tuple[float, ...] | None:
        """The bucket boundaries when only the last exemplar point per bucket needs
        offering, else None. Why: under the trace-based filter every sampled request's
        point offers an exemplar, ~5 µs in a running program; the default reservoir of an
        explicit-bucket histogram (``AlignedHistogramBucketExemplarReservoir``) keeps only
        the last point offered per bucket, so offering the earlier ones changes nothing.
        Only where that holds exactly: the SDK's trace-based filter (every point offered
        has a valid span: an offer without one would keep the earlier offer's ids), that
        reservoir class and the same boundaries for every target. A collection running at
        the very moment a later point of the same bucket is being queued may miss the
        earlier point's exemplar, as it may miss that later point itself."""
        if self._filter_kind is not _TRACE_BASED or _Aligned is None:
            return None
        bounds = None
        for _match, _table, aggregation, _reset in targets:
            reservoir = getattr(aggregation, "_reservoir", None)
            if type(reservoir) is not _Aligned:
                return None
            mine = tuple(getattr(reservoir, "_boundaries", ()))
            if mine != tuple(getattr(aggregation, "_boundaries", ())) or \
                    (bounds is not None and mine != bounds):
                return None
            bounds = mine
        return bounds


def _add_values(aggregation: Any, values: list[float]) -> None:
    """``aggregation.aggregate(point, False)`` for each value in turn (the SDK's
    explicit-bucket histogram, opentelemetry-sdk 1.45), under its lock once."""
    with aggregation._lock:
        counts = aggregation._value
        if counts is None:
            counts = aggregation._value = aggregation._get_empty_bucket_counts()
        bounds = aggregation._boundaries
        total = aggregation._sum
        for value in values:
            total += value
            counts[bisect_left(bounds, value)] += 1
        aggregation._sum = total
        if aggregation._record_min_max:
            aggregation._min = min(aggregation._min, min(values))
            aggregation._max = max(aggregation._max, max(values))


def _drains_first(reader: Any, consumer: Any) -> bool:
    """Make ``reader``'s collections aggregate the queued points of ``consumer``'s
    FastHistograms before anything is read (once per reader); False when the reader is not
    shaped as the SDK's ``MetricReader`` (its sets then stay on the SDK's path)."""
    collect = getattr(reader, "_collect", None)
    if getattr(collect, _DRAINS, None) is consumer:
        return True
    if not callable(collect):
        return False
    fast_histograms = _BY_CONSUMER.setdefault(consumer, weakref.WeakSet())

    def draining_collect(*args: Any, **kwargs: Any) -> Any:
        for fast in list(fast_histograms):
            try:
                fast.flush()
            except Exception as exc:  # pragma: no cover - never keep a collection from running
                _diagnostics.warn_every_minute(
                    "fast-histogram", f"queued {fast.name} points lost "
                    f"({type(exc).__name__}: {exc})")
        return collect(*args, **kwargs)

    setattr(draining_collect, _DRAINS, consumer)
    reader._collect = draining_collect
    return True


def _measurement(point: Any, histogram: Any, attributes: Any) -> Any:
    """A queued point (offered to no exemplar reservoir: the context is not used) as the
    ``Measurement`` the SDK consumes; a ``Measurement`` as it is."""
    if isinstance(point, Measurement):
        return point
    return Measurement(point.value, time_ns(), histogram, get_current(), attributes)
