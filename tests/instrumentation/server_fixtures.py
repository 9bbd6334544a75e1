"""Shared fixtures of the HTTP server instrumentation tests.

Patching is global and permanent, so Flask, Django, Starlette and FastAPI are patched once per
process (the first test that asks), with in-memory exporters that every test starts empty.
The patch context excludes ``/healthz`` (as ``TELEMETRYFLOW_EXCLUDED_URLS`` would).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

DURATION = "http.server.request.duration"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
DJANGO_SETTINGS = "tests.apps.server_django.server_django.settings"


@dataclass
class ServerTelemetry:
    """What the patched frameworks recorded, and the context they were patched with."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    context: PatchContext

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.SERVER]

    def one_server_span(self) -> ReadableSpan:
        spans = self.server_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def duration_points(self) -> list[Any]:
        """The ``http.server.request.duration`` points since the last call (delta)."""
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == DURATION:
                        assert metric.unit == "s"
                        points.extend(metric.data.data_points)
        return points


_lock = threading.Lock()
_telemetry: ServerTelemetry | None = None


def _patched() -> ServerTelemetry:
    global _telemetry
    with _lock:
        if _telemetry is None:
            import django.core.handlers.base
            import fastapi
            import flask
            import starlette.applications

            from telemetryflow_bootstrap.instrumentation import django as django_patch
            from telemetryflow_bootstrap.instrumentation import flask as flask_patch
            from telemetryflow_bootstrap.instrumentation import starlette as starlette_patch

            exporter = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            reader = InMemoryMetricReader(
                preferred_temporality={Histogram: AggregationTemporality.DELTA})
            meter_provider = MeterProvider(metric_readers=[reader])
            context = PatchContext(
                tracer=tracer_provider.get_tracer("telemetryflow"),
                meter=meter_provider.get_meter("telemetryflow"), logger_provider=None,
                config=TelemetryConfig(excluded_urls=("/healthz",)), handler=None)
            flask_patch.patch(flask, context)
            django_patch.patch(django.core.handlers.base, context)
            starlette_patch.patch(starlette.applications, context)
            starlette_patch.patch_fastapi(fastapi, context)
            _telemetry = ServerTelemetry(exporter, reader, context)
        return _telemetry


@pytest.fixture
def server_telemetry() -> ServerTelemetry:
    """The frameworks patched (once per process), exporters emptied for this test."""
    telemetry = _patched()
    telemetry.exporter.clear()
    telemetry.reader.get_metrics_data()  # delta temporality: drop earlier tests' points
    return telemetry


@contextlib.contextmanager
def no_client_spans() -> Iterator[None]:
    """Keep the HTTP *client* instrumentation (patched by other tests in this process) out
    of a test client's requests: our test sends the headers it means to send."""
    token = attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        detach(token)


def configure_django() -> None:
    """Django settings from the test project, once per process."""
    import django
    from django.conf import settings

    if not settings.configured:
        import importlib

        module = importlib.import_module(DJANGO_SETTINGS)
        settings.configure(**{k: v for k, v in vars(module).items() if k.isupper()})
        django.setup()
