"""In-process cost of the client API against the raw OpenTelemetry SDK call it makes.

    .venv/bin/python scripts/bench/api_overhead.py [--runs N] [--calls N]

One ``TelemetryFlowClient`` is built with exporters that drop everything (spans, logs) and an
in-memory metric reader (nothing is exported by time), via ``ExporterOverrides``. Our calls
(``increment_counter``, ``record_histogram``, ``with client.span(...)``) are timed against the
raw SDK calls (``counter.add``, ``histogram.record``, ``tracer.start_as_current_span``) on
``client.handler.meter`` / ``client.handler.tracer``: the same providers, so the ratio is our
own overhead. A second client with sample rate 0 gives the unsampled span.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

ATTRS = {"http.route": "/orders", "shop": "eu"}
TARGET = 1.3  # our call ≤ 1.3x the raw SDK call


Loop = Callable[[int], None]


def _clients() -> tuple[Any, Any]:
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from telemetryflow_bootstrap import TelemetryFlowBuilder
    from telemetryflow_bootstrap.client import TelemetryFlowClient
    from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    class DropLogs(LogRecordExporter):
        def export(self, batch: Any) -> LogRecordExportResult:
            return LogRecordExportResult.SUCCESS

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

        def shutdown(self) -> None:
            pass

    def build(rate: float) -> Any:
        config = TelemetryFlowBuilder().with_service("bench").with_sample_rate(rate) \
            .build_config()
        overrides = ExporterOverrides(span_exporter=DropSpans(),
                                      metric_reader=InMemoryMetricReader(),
                                      log_exporter=DropLogs())
        return TelemetryFlowClient(config, exporters=overrides, set_global=False).initialize()

    return build(1.0), build(0.0)


def _pairs(sampled: Any, unsampled: Any) -> list[tuple[str, str, Loop, str, Loop]]:
    """(API, raw name, raw loop, our name, our loop) — each loop(n) makes n calls."""
    meter, tracer = sampled.handler.meter, sampled.handler.tracer
    raw_counter = meter.create_counter("bench.raw.counter")
    raw_hist = meter.create_histogram("bench.raw.histogram")
    untracer = unsampled.handler.tracer
    attrs = ATTRS

    def raw_add(n: int) -> None:
        add = raw_counter.add
        for _ in range(n):
            add(1, attrs)

    def our_add(n: int) -> None:
        inc = sampled.increment_counter
        for _ in range(n):
            inc("bench.ours.counter", 1, attrs)

    def raw_record(n: int) -> None:
        record = raw_hist.record
        for _ in range(n):
            record(12.5, attrs)

    def our_record(n: int) -> None:
        record = sampled.record_histogram
        for _ in range(n):
            record("bench.ours.histogram", 12.5, attrs)

    def span_loop(make: Callable[..., Any]) -> Loop:
        def loop(n: int) -> None:
            for _ in range(n):
                with make("bench.span", attributes=attrs):
                    pass
        return loop

    def raw_start_end(n: int) -> None:
        start = tracer.start_span
        for _ in range(n):
            start("bench.span", attributes=attrs).end()

    def our_start_end(n: int) -> None:
        start, end = sampled.start_span, sampled.end_span
        for _ in range(n):
            end(start("bench.span", attributes=attrs))

    raw_span = "tracer.start_as_current_span"
    return [
        ("counter", "counter.add", raw_add, "client.increment_counter", our_add),
        ("histogram", "histogram.record", raw_record, "client.record_histogram", our_record),
        ("span", raw_span, span_loop(tracer.start_as_current_span), "client.span()",
         span_loop(sampled.span)),
        ("span, sample rate 0", raw_span, span_loop(untracer.start_as_current_span),
         "client.span()", span_loop(unsampled.span)),
        ("start/end span", "tracer.start_span().end()", raw_start_end,
         "client.start_span+end_span", our_start_end),
    ]


def _time(loop: Loop, calls: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call."""
    cpu, wall = time.thread_time(), time.perf_counter()
    loop(calls)
    return (time.thread_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=40)
    p.add_argument("--calls", type=int, default=1000, help="calls per timed loop")
    args = p.parse_args(argv)
    sampled, unsampled = _clients()
    pairs = _pairs(sampled, unsampled)
    print(common.header("Client API vs the raw SDK call, in process (µs per call)", None))
    print(f"\nEach round times every pair raw, ours, ours, raw (ABBA, so drift cancels) in "
          f"loops of {args.calls} calls; {args.runs} rounds, the pair order rotating. Times "
          "are this thread's CPU time (`time.thread_time`: a noisy machine's preemptions do "
          "not count) and wall time (`perf_counter`). ours/raw is the median over rounds of "
          "the per-round ratio. Attributes: 2 string pairs; spans go to an exporter that drops "
          "them, metrics to an in-memory reader.\n")
    for _, _, raw, _, ours in pairs:  # warm up: instruments created, code paths hot
        raw(args.calls)
        ours(args.calls)
    cpu: dict[str, list[tuple[float, float]]] = {api: [] for api, *_ in pairs}
    wall: dict[str, list[tuple[float, float]]] = {api: [] for api, *_ in pairs}
    order = list(pairs)
    for _ in range(args.runs):
        for api, _, raw, _, ours in order:
            gc.collect()
            r1, o1, o2, r2 = (_time(raw, args.calls), _time(ours, args.calls),
                              _time(ours, args.calls), _time(raw, args.calls))
            for i, store in ((0, cpu), (1, wall)):
                store[api].append(((r1[i] + r2[i]) / 2, (o1[i] + o2[i]) / 2))
        order = order[1:] + order[:1]
    sampled.shutdown(2)
    unsampled.shutdown(2)

    rows = []
    ratios: dict[str, float] = {}
    medians: dict[str, tuple[float, float]] = {}
    for api, raw_name, _, our_name, _ in pairs:
        c, w = cpu[api], wall[api]
        raw_c, our_c = common.median([x[0] for x in c]), common.median([x[1] for x in c])
        raw_w, our_w = common.median([x[0] for x in w]), common.median([x[1] for x in w])
        ratio_c = common.median([o / r for r, o in c])
        ratio_w = common.median([o / r for r, o in w])
        ratios[api] = ratio_c
        medians[api] = (raw_c, our_c)
        rows.append([api, raw_name, f"{raw_c * 1e6:.2f}", our_name, f"{our_c * 1e6:.2f}",
                     f"{ratio_c:.2f}x", f"{raw_w * 1e6:.2f} / {our_w * 1e6:.2f}",
                     f"{ratio_w:.2f}x"])
    print(common.table(["API", "raw SDK call", "raw µs (cpu)", "our call", "ours µs (cpu)",
                        "ours/raw (cpu)", "raw / ours µs (wall)", "ours/raw (wall)"], rows))
    print()
    for api in ("counter", "histogram", "span"):
        print(f"- {api}: ours/raw {common.fmt_ratio(ratios[api], TARGET)}")
    unsampled_ratio = medians["span, sample rate 0"][1] / medians["span"][1]
    print(f"- client.span() with sample rate 0 / sampled (cpu): {unsampled_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
