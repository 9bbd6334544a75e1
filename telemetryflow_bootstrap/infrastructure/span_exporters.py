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
    )

    class GrpcSpanExporter(OTLPSpanExporter):
        """The request message is parsed from our bytes (in C, ~1 µs a span), so the
        exporter's stub and retry logic run unchanged."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = SpanEncoder()

        def _translate_data(self, data: Sequence[Any]) -> Any:
            encoded = _encoded(self._encoder, data)
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
