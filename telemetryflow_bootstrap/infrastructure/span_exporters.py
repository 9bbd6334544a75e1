"""The OTLP span exporters (gRPC and HTTP) with our span encoder in place of theirs.

Everything else — channels, sessions, TLS, headers, compression, retries, the exporter's
own metrics — stays the exporter's. If our encoder cannot encode a batch (see
``span_encoding``) the exporter's encoder does it, so a batch is never lost to us.
Each class is made at first use, importing only its own exporter stack (grpc or
requests), on the export thread (see ``exporters.LazyExporter``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from .span_encoding import SpanEncoder

_logger = logging.getLogger(__name__)


def _encoded(encoder: SpanEncoder, spans: Sequence[Any]) -> bytes | None:
    try:
        return encoder.encode(spans)
    except Exception as exc:  # the exporter's encoder takes this batch
        _logger.debug("span encoder fell back to the exporter's: %r", exc)
        return None


def grpc_span_exporter(**kwargs: Any) -> Any:
    return _grpc_class()(**kwargs)


def http_span_exporter(**kwargs: Any) -> Any:
    return _http_class()(**kwargs)


@functools.cache
def _grpc_class() -> type:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    class RawTraceStub:
        """The trace service's Export method taking the request already serialized."""

        def __init__(self, channel: Any) -> None:
            self.Export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,  # bytes pass through
                response_deserializer=ExportTraceServiceResponse.FromString)

    class GrpcSpanExporter(OTLPSpanExporter):
        """Our bytes go to the channel as they are; the exporter's retries, reconnects
        (which build the stub anew: ours) and metadata are unchanged. An exporter without
        the stub attributes this relies on gets a request message parsed from our bytes."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = SpanEncoder()
            self._raw = all(hasattr(self, n) for n in ("_stub", "_channel", "_client"))
            if self._raw:
                self._stub = RawTraceStub
                self._client = RawTraceStub(self._channel)

        def _translate_data(self, data: Sequence[Any]) -> Any:
            encoded = _encoded(self._encoder, data)
            if self._raw:
                return encoded if encoded is not None else \
                    super()._translate_data(data).SerializeToString()
            if encoded is None:
                return super()._translate_data(data)
            return ExportTraceServiceRequest.FromString(encoded)

    return GrpcSpanExporter


@functools.cache
def _http_class() -> type:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class HttpSpanExporter(OTLPSpanExporter):
        """The exporter encodes inside ``export``, so ``export`` is ours: the same steps
        (shut-down check, transport, the exporter's metrics) around our bytes. An oversized
        batch, a failed encoding, or an installed exporter lacking what those steps use
        goes through its own ``export``."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = SpanEncoder()
            self._fast = all(hasattr(self, name) for name in
                             ("_client", "_metrics", "_shutdown", "_max_request_size"))

        def export(self, spans: Sequence[Any]) -> Any:
            if not self._fast or self._shutdown:
                return super().export(spans)
            data = _encoded(self._encoder, spans)
            if data is None or 0 < self._max_request_size < len(data):
                return super().export(spans)
            with self._metrics.export_operation(len(spans)) as result:
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    status = getattr(sent, "status_code", None)
                    result.error_attrs = ({"http.response.status_code": status}
                                          if status is not None else None)
                    return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS

    return HttpSpanExporter
