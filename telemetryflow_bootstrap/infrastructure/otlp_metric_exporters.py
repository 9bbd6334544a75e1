"""The OTLP metric exporters (gRPC and HTTP), each collection sent in requests that fit.

Why: a collection is one request, however many series it holds. A high-cardinality
instrument (a counter keyed by user, by URL) makes one past what the backend takes: over
gRPC an OpenTelemetry Collector refuses a request past 4 MiB (``max_recv_msg_size_mib``)
with RESOURCE_EXHAUSTED, which the exporter retried until its deadline; over HTTP the
exporter dropped a request past its ``max_request_size`` (64 MiB) itself, and a proxy or
collector with a lower limit answers 413, not retried. Either way every metric of the
process was lost at every export from then on (cumulative series only grow), and the
backend blamed.

Here the exporter's own encoder makes the request, as before; one past the limit
(``_GRPC_LIMIT`` over gRPC, ``max_request_size`` over HTTP, or the backend's, lower, once
it refused a request as too large) is cut into requests that fit (``metric_parts``): by
data point, each part carrying the resource (and its schema URL), scope and metric
(name, description, unit, metadata, temporality, monotonicity) its points belong to, so
that each point arrives exactly once and means what it meant. A refusal as too large
(RESOURCE_EXHAUSTED naming a limit, or 413) sends the request again at once in parts
within the limit it names, or half the request, and that limit is kept for later exports
(as ``otlp_exporters`` does for spans and logs). A data point that does not fit a request
on its own is left out, counted (``too_large_points``) and said once, with its metric's
name and size, never its attributes.

A collection within the limit costs one ``ByteSize()`` more than before (once per export
interval). Each class is made at first use, importing only its own exporter stack.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import Any

from .. import _diagnostics
from . import otlp_exporters
from .otlp_exporters import _MAX_REFUSALS, _MIN_LEARNED, _Refusal, _size_refused

_FRAME = 6  # a field's tag (1 byte) and its length (at most 5): what nesting adds
_too_large = 0
_lock = threading.Lock()


def grpc_metric_exporter(**kwargs: Any) -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return _grpc_class(OTLPMetricExporter)(**kwargs)


def http_metric_exporter(**kwargs: Any) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return _http_class(OTLPMetricExporter)(**kwargs)


def too_large_points() -> int:
    """How many metric data points were left out of their export because a request
    holding only that point is past the limit."""
    return _too_large


def metric_parts(request: Any, limit: int) -> Iterator[tuple[Any, int, int, str]]:
    """``request`` (an ``ExportMetricsServiceRequest``) as requests of at most ``limit``
    bytes, in order: (part, its data points, its size at most, ""). A part is None for a
    data point that fits no request on its own (then its size is that of a request
    holding only it, and the name is its metric's). Sizes are added up from each point's
    and each header's ``ByteSize()``, with ``_FRAME`` bytes for each length prefix (never
    more than that): no part is encoded to be measured, and none is past ``limit``."""
    make = type(request)
    part, size, points = make(), 0, 0
    for resource_metrics in request.resource_metrics:
        rm_head = _shell(resource_metrics, "scope_metrics")
        rm_cost = rm_head.ByteSize() + _FRAME
        rm_open: Any = None
        for scope_metrics in resource_metrics.scope_metrics:
            sm_head = _shell(scope_metrics, "metrics")
            sm_cost = sm_head.ByteSize() + _FRAME
            sm_open: Any = None
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:  # (no data: nothing to send)
                    continue
                m_head = _shell(metric, None, kind)
                m_cost = m_head.ByteSize() + _FRAME
                m_open: Any = None
                for point in getattr(metric, kind).data_points:
                    cost = point.ByteSize() + _FRAME
                    if m_open is None:
                        cost += m_cost + (sm_cost if sm_open is None else 0) + (
                            rm_cost if rm_open is None else 0)
                    if points and size + cost > limit:
                        yield part, points, size, ""
                        part, size, points = make(), 0, 0
                        rm_open = sm_open = m_open = None
                        cost = point.ByteSize() + _FRAME + m_cost + sm_cost + rm_cost
                    if cost > limit:
                        yield None, 1, cost, metric.name
                        continue
                    if rm_open is None:
                        rm_open = part.resource_metrics.add()
                        rm_open.CopyFrom(rm_head)
                    if sm_open is None:
                        sm_open = rm_open.scope_metrics.add()
                        sm_open.CopyFrom(sm_head)
                    if m_open is None:
                        m_open = sm_open.metrics.add()
                        m_open.CopyFrom(m_head)
                        m_points = getattr(m_open, kind).data_points
                    m_points.append(point)
                    size += cost
                    points += 1
    if points:
        yield part, points, size, ""


def _shell(message: Any, repeated: str | None, kind: str | None = None) -> Any:
    """A copy of ``message`` without its ``repeated`` field (a metric: without its data
    points, its ``kind`` message and its other fields kept)."""
    shell = type(message)()
    shell.CopyFrom(message)
    if kind is not None:
        getattr(shell, kind).ClearField("data_points")
    else:
        shell.ClearField(repeated)
    return shell


def _points(request: Any) -> int:
    count = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    count += len(getattr(metric, kind).data_points)
    return count


def _first_name(request: Any) -> str:
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                return str(metric.name)
    return ""


class _FittingRequests:
    """What the gRPC and HTTP metric exporters share: requests within the limit
    (``_send``), a refusal as too large answered by smaller ones, what is left out counted.
    A subclass gives ``_post`` (one request through the exporter's own sending, which sets
    ``_refusal.limit`` on a refusal as too large), ``_own_limit`` and ``_transport``."""

    too_large_points = 0  # (data points left out of this exporter's exports)
    _transport = ""
    _learned = 0  # (the backend's limit, once it refused a larger request; 0: none)

    def _post(self, request: Any, points: int) -> Any:
        raise NotImplementedError

    def _own_limit(self) -> int:
        raise NotImplementedError

    def _limit_now(self) -> int:
        own, learned = self._own_limit(), self._learned
        if learned and (own <= 0 or learned < own):
            return learned
        return max(own, 0)

    def _send(self, request: Any, depth: int) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExportResult

        size = request.ByteSize()
        limit = self._limit_now()
        if 0 < limit < size:
            return self._send_in_parts(request, depth)
        points = _points(request)
        refusal: _Refusal = self._refusal  # type: ignore[attr-defined]
        refusal.limit = None
        refusal.quiet = (depth < _MAX_REFUSALS and size > _MIN_LEARNED) or points == 1
        result = self._post(request, points)
        stated = refusal.limit
        if stated is None or result is MetricExportResult.SUCCESS:
            return result
        if refusal.quiet:
            from . import watched_exporters

            watched_exporters.quiet_this_attempt(False)
        lowered = stated if 0 < stated < size else size // 2
        if lowered >= _MIN_LEARNED and (not self._learned or lowered < self._learned):
            self._learned = lowered
            _diagnostics.debug(f"the backend refused a {size}-byte {self._transport} metrics "
                               f"request as too large: requests are now kept within "
                               f"{lowered}")
        if points == 1:
            self._count(1, size, _first_name(request), refused=True)
            return MetricExportResult.SUCCESS
        if depth >= _MAX_REFUSALS or size <= _MIN_LEARNED:
            return result  # (a backend refusing even that has another trouble)
        return self._send_in_parts(request, depth + 1)

    def _send_in_parts(self, request: Any, depth: int) -> Any:
        """A part the backend fails ends the export (the exporter retried it already)."""
        from opentelemetry.sdk.metrics.export import MetricExportResult

        limit = self._limit_now()
        lost = size = 0
        name = ""
        result = MetricExportResult.SUCCESS
        for part, _, part_size, metric in metric_parts(request, limit):
            if part is None:
                lost, size, name = lost + 1, size or part_size, name or metric
            elif self._send(part, depth) is not MetricExportResult.SUCCESS:
                result = MetricExportResult.FAILURE
                break
        if lost:
            self._count(lost, size, name, refused=limit == self._learned)
        return result

    def _count(self, lost: int, size: int, name: str, *, refused: bool) -> None:
        global _too_large
        self.too_large_points += lost
        with _lock:
            first = not _too_large
            _too_large += lost
        if not first:
            return
        limit = self._limit_now()
        whose = (f"the backend's limit (it refused a larger request as too large; requests "
                 f"are kept within {limit})" if refused else self._whose_limit(limit))
        of = f" of metric {name[:100]!r}" if name else ""
        _diagnostics.warn(
            "metric data points left out of the export (the rest of their collection is "
            f"sent): a request holding only one data point{of} is {size} bytes, past "
            f"{whose}; further ones are counted, not said")

    def _whose_limit(self, limit: int) -> str:
        raise NotImplementedError


@functools.cache
def _grpc_class(base: type) -> type:
    """(Made per exporter class: the one the SDK's module holds when an exporter is made.)"""
    import grpc
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    from . import watched_exporters

    class GrpcMetricExporter(base, _FittingRequests):  # type: ignore[valid-type, misc]
        """The exporter's retry loop (``_export``) sends our requests (``_Encoded``); its
        stub notes a refusal as too large and raises it as an error not retried."""

        _transport = "gRPC"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._refusal = _Refusal()
            self._fits = all(hasattr(self, n) for n in ("_stub", "_channel", "_client",
                                                        "_export", "_shutdown"))
            if self._fits:
                make = self._stub
                self._stub = functools.partial(_noting_stub, make, self._refusal)
                self._client = self._stub(self._channel)

        def export(self, metrics_data: Any, timeout_millis: float = 10_000,
                   **kwargs: Any) -> Any:
            if (not self._fits or self._shutdown
                    or getattr(self, "_max_export_batch_size", None) is not None):
                return super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            try:
                request = encode_metrics(metrics_data)
            except Exception:  # (the exporter's own export says what it makes of it)
                return super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            return self._send(request, 0)

        def _post(self, request: Any, points: int) -> Any:
            return self._export(_Encoded(request, points))

        def _translate_data(self, data: Any) -> Any:
            return data.request if type(data) is _Encoded else super()._translate_data(data)

        def _count_data(self, data: Any) -> Any:
            return data.points if type(data) is _Encoded else super()._count_data(data)

        def _own_limit(self) -> int:
            return otlp_exporters._GRPC_LIMIT

        def _whose_limit(self, limit: int) -> str:
            return (f"the limit of {limit} on a gRPC request (an OpenTelemetry Collector's "
                    "by default: max_recv_msg_size_mib 4)")

    def _noting_stub(make: Any, refusal: _Refusal, channel: Any) -> Any:
        stub = make(channel)
        call = stub.Export

        def export(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except grpc.RpcError as error:
                limit = _size_refused(error)
                if limit is None:
                    raise
                refusal.limit = limit
                raise watched_exporters.not_retried(error, quiet=refusal.quiet) from error

        stub.Export = export
        return stub

    return GrpcMetricExporter


class _Encoded:
    """A request already made, through the gRPC exporter's ``_export`` in place of the
    collection it was made from."""

    __slots__ = ("points", "request")

    def __init__(self, request: Any, points: int) -> None:
        self.request, self.points = request, points


@functools.cache
def _http_class(base: type) -> type:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics.export import MetricExportResult

    class HttpMetricExporter(base, _FittingRequests):  # type: ignore[valid-type, misc]
        """The exporter's steps (its metrics, its client's retries) around our requests;
        its client's transport notes a 413 answer (``note_payload_too_large``)."""

        _transport = "HTTP"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._refusal = _Refusal()
            self._fits = all(hasattr(self, n) for n in ("_client", "_metrics", "_shutdown",
                                                        "_max_request_size"))
            if self._fits:
                otlp_exporters.note_payload_too_large(self._client, self._refusal)

        def export(self, metrics_data: Any, timeout_millis: float = 10_000,
                   **kwargs: Any) -> Any:
            if (not self._fits or self._shutdown
                    or getattr(self, "_max_export_batch_size", None) is not None):
                return super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            try:
                request = encode_metrics(metrics_data)
            except Exception:  # (the exporter's own export says what it makes of it)
                return super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            return self._send(request, 0)

        def _post(self, request: Any, points: int) -> Any:
            with self._metrics.export_operation(points) as result:
                sent = self._client.export(request.SerializeToString())
                if not sent.success:
                    result.error = sent.error
                    status = getattr(sent, "status_code", None)
                    result.error_attrs = ({"http.response.status_code": status}
                                          if status is not None else None)
                    return MetricExportResult.FAILURE
            return MetricExportResult.SUCCESS

        def _own_limit(self) -> int:
            return int(self._max_request_size)

        def _whose_limit(self, limit: int) -> str:
            return f"the exporter's limit of {limit} (max_request_size)"

    return HttpMetricExporter
