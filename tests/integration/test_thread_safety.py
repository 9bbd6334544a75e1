"""Many threads using one client at once: no increment and no span is lost or duplicated."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExportResult

from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

THREADS = 8
PER_THREAD = 10_000


class CountingSpanExporter:
    """Counts exported spans (and their distinct ids) instead of keeping them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.span_ids: set[int] = set()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        with self._lock:
            self.count += len(spans)
            self.span_ids.update(span.context.span_id for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def test_concurrent_counters_and_spans_are_exact() -> None:
    """8 threads x 10 000 counter increments and spans: the counter totals exactly 80 000 and
    exactly 80 000 distinct spans are exported, none dropped."""
    spans, reader = CountingSpanExporter(), InMemoryMetricReader()
    config = (TelemetryFlowBuilder().with_service("threads")
              .with_batch_settings(timeout_ms=50, max_size=2048, max_queue_size=200_000)
              .build_config())
    client = TelemetryFlowClient(
        config, exporters=ExporterOverrides(spans, reader, InMemoryLogRecordExporter()),
        set_global=False).initialize()
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(thread_number: int) -> None:
        try:
            start.wait()
            attributes = {"worker": thread_number % 2}
            for _ in range(PER_THREAD):
                client.increment_counter("jobs", 1, attributes)
                with client.span("job"):
                    pass
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert client.flush(30.0) is True
        data = reader.get_metrics_data()
        points = [p for rm in data.resource_metrics for sm in rm.scope_metrics
                  for m in sm.metrics if m.name == "jobs" for p in m.data.data_points]
        total = THREADS * PER_THREAD
        assert sum(p.value for p in points) == total
        assert {p.attributes["worker"]: p.value for p in points} == {0: total // 2,
                                                                      1: total // 2}
        assert spans.count == total
        assert len(spans.span_ids) == total
        status = client.get_status()
        assert (status["spans_exported"], status["spans_dropped"]) == (total, 0)
        assert status["active_spans"] == 0
    finally:
        client.shutdown(5.0)
