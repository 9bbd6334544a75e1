"""The OTLP span and log exporters (gRPC and HTTP) with our encoders in place of theirs.

Everything else — channels, sessions, TLS, headers, compression, retries, the exporter's
own metrics — stays the exporter's. If our encoder cannot encode a batch (see
``span_encoding``, ``log_encoding``) the exporter's encoder does it, so a batch is never
lost to us. A value OTLP cannot carry (an int past 64 bits, a lone surrogate) does not send a
batch there: our encoders leave out or escape just that value (``otlp_wire``), where the
exporter's encoder raises for some of them and the whole batch would be lost.

Each class is made at first use, importing only its own exporter stack (grpc or
requests), on the export thread (see ``exporters.LazyExporter``); importing this module
imports neither.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .log_encoding import LogEncoder
from .span_encoding import SpanEncoder

_logger = logging.getLogger(__name__)

_TRACES, _LOGS = "traces", "logs"
_ENCODERS: dict[str, Callable[[], Any]] = {_TRACES: SpanEncoder, _LOGS: LogEncoder}
_NAMES = {_TRACES: "Span", _LOGS: "Log"}


def grpc_span_exporter(**kwargs: Any) -> Any:
    return _grpc_class(_TRACES)(**kwargs)


def http_span_exporter(**kwargs: Any) -> Any:
    return _http_class(_TRACES)(**kwargs)


def grpc_log_exporter(**kwargs: Any) -> Any:
    return _grpc_class(_LOGS)(**kwargs)


def http_log_exporter(**kwargs: Any) -> Any:
    return _http_class(_LOGS)(**kwargs)


def exporter_class(signal: str, *, grpc: bool) -> type:
    """The exporter class for ``signal`` ("traces" or "logs"), made (and its stack imported)
    without building an exporter (see ``exporters.OTLPExporterFactory.warm_up``)."""
    if grpc:
        return _grpc_class(signal)
    import requests  # noqa: F401  (the HTTP exporters import it when built)

    return _http_class(signal)


def _encoded(encoder: Any, items: Sequence[Any]) -> bytes | None:
    try:
        return encoder.encode(items)  # type: ignore[no-any-return]
    except Exception as exc:  # the exporter's encoder takes this batch
        _logger.debug("%s fell back to the exporter's encoder: %r", type(encoder).__name__, exc)
        return None


def _grpc_parts(signal: str) -> tuple[type, type, type, str]:
    """The exporter class, request and response messages, and Export method path."""
    if signal == _TRACES:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        return (OTLPSpanExporter, ExportTraceServiceRequest, ExportTraceServiceResponse,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    return (OTLPLogExporter, ExportLogsServiceRequest, ExportLogsServiceResponse,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export")


@functools.cache
def _grpc_class(signal: str) -> type:
    base, request_type, response_type, method = _grpc_parts(signal)
    make_encoder = _ENCODERS[signal]

    class RawStub:
        """The service's Export method taking the request already serialized."""

        def __init__(self, channel: Any) -> None:
            self.Export = channel.unary_unary(
                method,
                request_serializer=None,  # bytes pass through
                response_deserializer=response_type.FromString)  # type: ignore[attr-defined]

    class GrpcExporter(base):  # type: ignore[valid-type, misc]
        """Our bytes go to the channel as they are; the exporter's retries, reconnects
        (which build the stub anew: ours) and metadata are unchanged. An exporter without
        the stub attributes this relies on gets a request message parsed from our bytes."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = make_encoder()
            self._raw = all(hasattr(self, n) for n in ("_stub", "_channel", "_client"))
            if self._raw:
                self._stub = RawStub
                self._client = RawStub(self._channel)

        def _translate_data(self, data: Sequence[Any]) -> Any:
            encoded = _encoded(self._encoder, data)
            if self._raw:
                return encoded if encoded is not None else \
                    super()._translate_data(data).SerializeToString()
            if encoded is None:
                return super()._translate_data(data)
            return request_type.FromString(encoded)  # type: ignore[attr-defined]

    GrpcExporter.__name__ = GrpcExporter.__qualname__ = f"Grpc{_NAMES[signal]}Exporter"
    return GrpcExporter


def _http_parts(signal: str) -> tuple[type, Any]:
    """The exporter class and its export result enum."""
    if signal == _TRACES:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult

        return OTLPSpanExporter, SpanExportResult
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    return OTLPLogExporter, LogRecordExportResult


@functools.cache
def _http_class(signal: str) -> type:
    base, result_type = _http_parts(signal)
    make_encoder = _ENCODERS[signal]

    class HttpExporter(base):  # type: ignore[valid-type, misc]
        """The exporter encodes inside ``export``, so ``export`` is ours: the same steps
        (shut-down check, transport, the exporter's metrics) around our bytes. An oversized
        batch, a failed encoding, or an installed exporter lacking what those steps use
        goes through its own ``export``."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = make_encoder()
            self._fast = all(hasattr(self, name) for name in
                             ("_client", "_metrics", "_shutdown", "_max_request_size"))

        def export(self, items: Sequence[Any]) -> Any:
            if not self._fast or self._shutdown:
                return super().export(items)
            data = _encoded(self._encoder, items)
            if data is None or 0 < self._max_request_size < len(data):
                return super().export(items)
            with self._metrics.export_operation(len(items)) as result:
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    status = getattr(sent, "status_code", None)
                    result.error_attrs = ({"http.response.status_code": status}
                                          if status is not None else None)
                    return result_type.FAILURE
            return result_type.SUCCESS

    HttpExporter.__name__ = HttpExporter.__qualname__ = f"Http{_NAMES[signal]}Exporter"
    return HttpExporter
