"""``TelemetryCommandHandler``: owns the OpenTelemetry providers and handles every command.

The client API goes through the command bus to here; auto-instrumentation does not: patches
take ``tracer``/``meter``/``logger`` from the handler once, at patch time, and call
OpenTelemetry directly (the hot path pays for no ceremony).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import SpanKind, Status, StatusCode

from .. import _diagnostics
from .._version import __version__
from ..application import commands as c
from ..application import queries as q
from ..application.bus import CommandBus, QueryBus
from ..domain._values import Record
from ..domain.config import TelemetryConfig
from ..domain.redaction import redact_url
from ..domain.signals import ExporterKind, SignalType
from ..instrumentation._error_type import error_type
from .exporters import LazyExporter, OTLPExporterFactory
from .providers import install_global
from .reachability import final_exports, final_exports_running, said_at_exit
from .signal_masks import quiet_during_fork_hooks_registered_in, signals_blocked, start_quietly
from .watched_exporters import backend_of, watch

# The SDK (its providers, samplers, batch processors, the metric reader) is imported by the
# ``_init_*`` method of a signal that is on, not here: with every signal off (exporter none)
# a process pays for none of it (~180M instructions, 38% of that hook's, in 2026-11).
if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import Sampler

    from .batching import BatchQueue
    from .metric_reader import CountingMetricReader

SCOPE = "telemetryflow"
MAX_ACTIVE_SPANS = 10_000
# Ended (or evicted) span ids remembered, to tell a second end_span from an id never
# returned: between this many and twice as many of the latest (two generations of a dict).
MAX_ENDED_REMEMBERED = 1024
# Why an id is no longer open (what ``why_no_span`` answers).
ENDED, EVICTED, ENDED_AT_SHUTDOWN = "ended", "evicted", "ended at shutdown"

_KINDS = {"internal": SpanKind.INTERNAL, "server": SpanKind.SERVER, "client": SpanKind.CLIENT,
          "producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}
_SEVERITIES = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"), "info": (SeverityNumber.INFO, "INFO"),
    "warn": (SeverityNumber.WARN, "WARN"), "warning": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"), "fatal": (SeverityNumber.FATAL, "FATAL"),
}


class ExporterOverrides(Record):
    """Exporters to use instead of the configured ones (tests, embedding).

    A ``metric_exporter`` is exported to by our reader, its points counted in
    ``get_status()`` and accounted for at exit like the OTLP exporter's; a ``metric_reader``
    (e.g. the SDK's ``InMemoryMetricReader``) replaces that reader, and its points are
    counted only if it is a ``CountingMetricReader``.

    (A record, not a dataclass: see ``domain._values``.)"""

    _FIELDS = __slots__ = __match_args__ = (
        "span_exporter", "metric_reader", "log_exporter", "metric_exporter")

    def __init__(self, span_exporter: Any = None, metric_reader: Any = None,
                 log_exporter: Any = None, metric_exporter: Any = None) -> None:
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.log_exporter = log_exporter
        self.metric_exporter = metric_exporter


def build_sampler(config: TelemetryConfig) -> Sampler:
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        ParentBased,
        TraceIdRatioBased,
    )

    name, rate = config.sampler, config.sample_rate
    root: Sampler
    if name in ("always_on", "parentbased_always_on"):
        root = ALWAYS_ON
    elif name in ("always_off", "parentbased_always_off"):
        root = ALWAYS_OFF
    else:
        root = ALWAYS_ON if rate >= 1.0 else TraceIdRatioBased(rate)
    return ParentBased(root) if name.startswith("parentbased") else root


def _secrets_of(config: TelemetryConfig) -> list[str]:
    """What this config sends that no message may show (see ``_diagnostics.add_secrets``):
    every signal's, its own OTEL_EXPORTER_OTLP_<SIGNAL>_* headers and password included."""
    return config.secret_values()


def _enabled(provider: Any) -> Any:
    """``provider`` working even if OTEL_SDK_DISABLED=true: the SDK's providers read that
    variable themselves and then hand out no-op tracers, meters and loggers. Whether
    telemetry is on is the config's decision (TELEMETRYFLOW_ENABLED wins over
    OTEL_SDK_DISABLED, as every TELEMETRYFLOW_* variable wins over its OTEL_* counterpart,
    and we say so): a handler that is initialized was told to record."""
    if getattr(provider, "_disabled", False) is True:
        provider._disabled = False
    return provider


def _resource_if_any_signal(config: TelemetryConfig) -> Any:
    """The resource the providers share; None when no signal is on (it would be built for
    nobody, and building it imports the SDK's resources module: subprocess, socket...)."""
    if not config.enabled_signals:
        return None
    from .resource import build_resource

    return build_resource(config)


def _metric_points_too_large() -> int:
    """Data points left out of exports as past the request size limit alone (the reader
    counted them exported with the rest of their collection); 0 when the splitting
    exporters were never loaded."""
    cut = sys.modules.get(f"{__package__}.otlp_metric_exporters")
    return cut.too_large_points() if cut is not None else 0


def _built_before_the_interpreter_shuts_down(lazy: LazyExporter) -> None:
    """Build the metrics exporter, if nothing has yet, when the interpreter starts to shut
    down (``threading``'s exit hooks run before the joins of threads and ``atexit``).

    Why: a short program's first metrics export is its last collection, at exit, and the
    exporter is built then: its imports (grpc, the logs SDK when logs are off) register
    threading exit hooks or run OpenTelemetry's resource detectors in a
    ``ThreadPoolExecutor``, both refused once the shutdown has begun ("cannot schedule new
    futures after interpreter shutdown"), and every metric point of a metrics-only program
    was lost. The hooks run last-registered first, so ``concurrent.futures.thread`` (whose
    hook closes the executors) is imported before ours is registered (~0.3 ms; the SDKs
    import most of it anyway)."""
    import concurrent.futures.thread  # noqa: F401

    register = getattr(threading, "_register_atexit", None)
    if register is None:
        return
    with contextlib.suppress(RuntimeError):  # (set up during the shutdown itself)
        register(lazy.get)


def _export_function(lazy: LazyExporter, ok: Any, signal: str) -> Callable[[Any], bool]:
    def export(batch: Any) -> bool:
        real = lazy.get()
        if real is None:
            return False
        if real.export(batch) is ok:
            return True
        if said_at_exit():  # (the exit warning says why, with the counts)
            return False
        _diagnostics.warn_every_minute(
            f"export-{signal}", f"exporting {signal} failed (backend down or rejecting?); "
            "they are dropped and counted, see get_status()")
        return False

    return export


class TelemetryCommandHandler:
    """Owns the Tracer/Meter/LoggerProvider of one SDK run and handles every command."""

    def __init__(self, overrides: ExporterOverrides | None = None, *,
                 set_global: bool = True) -> None:
        self._overrides = overrides or ExporterOverrides()
        self._set_global = set_global
        self._lock = threading.RLock()
        self._instrument_lock = threading.Lock()
        self._span_lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.config: TelemetryConfig | None = None
        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.logger_provider: LoggerProvider | None = None
        self.tracer: Any = trace.NoOpTracer()
        self.meter: Any = None
        self.logger: Any = None
        self.globals_installed: dict[str, bool] = {}
        self._span_queue: BatchQueue | None = None
        self._log_queue: BatchQueue | None = None
        self._metric_reader: CountingMetricReader | None = None  # (None: a reader given)
        self._exporters: list[LazyExporter] = []
        self._instruments: dict[tuple[str, str, str, str], Any] = {}
        self._active: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._ended: dict[str, str] = {}  # id → why it is gone (see _forget)
        self._ended_before: dict[str, str] = {}
        self._evicted_spans = 0
        self._started_at: float | None = None
        self._initialized = False

    @property
    def initialized(self) -> bool:
        return self._initialized

    def register(self, commands: CommandBus, queries: QueryBus) -> None:
        for command_type, handler in (
            (c.InitializeSDKCommand, self.initialize),
            (c.ShutdownSDKCommand, self.shutdown),
            (c.FlushTelemetryCommand, self.flush),
            (c.RecordCounterCommand, self.record_counter),
            (c.RecordGaugeCommand, self.record_gauge),
            (c.RecordHistogramCommand, self.record_histogram),
            (c.EmitLogCommand, self.emit_log),
            (c.StartSpanCommand, self.start_span),
            (c.EndSpanCommand, self.end_span),
            (c.AddSpanEventCommand, self.add_span_event),
        ):
            commands.register(command_type, handler)
        queries.register(q.GetSDKStatusQuery, self.status)
        queries.register(q.GetHealthQuery, self.health)

    # ----- lifecycle ---------------------------------------------------------------------

    def initialize(self, command: c.InitializeSDKCommand) -> None:
        with self._lock:
            if self._initialized:
                return
            config = command.config
            self.config = config
            _diagnostics.set_level(config.log_level)
            _diagnostics.add_secrets(_secrets_of(config))
            if self._set_global:
                from .propagators import import_propagate

                import_propagate()  # (first, see there)
            resource = _resource_if_any_signal(config)
            factory = OTLPExporterFactory(config)
            if config.signal_enabled(SignalType.TRACES):
                self._init_traces(config, resource, factory)
            if config.signal_enabled(SignalType.METRICS):
                self._init_metrics(config, resource, factory)
            if config.signal_enabled(SignalType.LOGS):
                self._init_logs(config, resource, factory)
            if self._set_global:
                self._install_globals(config)
            if hasattr(os, "register_at_fork"):
                ref = weakref.ref(self)
                os.register_at_fork(
                    after_in_child=lambda: (me := ref()) is not None and me._after_fork_in_child())
            self._started_at = time.monotonic()
            self._initialized = True

    def _after_fork_in_child(self) -> None:
        """A forked child reports as itself: ``process.pid`` becomes the child's in every
        provider's resource (the SDK merges and pushes it to existing tracers)."""
        from opentelemetry.sdk.resources import Resource

        child = Resource({"process.pid": os.getpid()})
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            update = getattr(provider, "_update_resource", None)
            if update is not None:
                try:
                    update(child)
                except Exception as exc:
                    _diagnostics.debug(f"could not update the resource after fork: {exc!r}")

    def _lazy(self, build: Callable[[], Any], signal: str,
              warm_up: Callable[[], None] | None = None) -> LazyExporter:
        """The exporter ``build`` makes, built at first use and watched: it knows whether
        its backend can be reached, and gives up at exit when not (``watched_exporters``)."""
        lazy = LazyExporter(lambda: watch(build()), signal, warm_up)
        self._exporters.append(lazy)
        return lazy

    def _queue(self, signal: str, export: Callable[[Any], bool], lazy: LazyExporter,
               config: TelemetryConfig) -> BatchQueue:
        from .batching import BatchQueue

        # (the log queue's own OTEL_BLRP_* settings where set: see domain.signal_batches)
        batch = config.batch_for(SignalType.LOGS if signal == "logs" else SignalType.TRACES)
        return BatchQueue(export, signal=signal, max_queue_size=batch.max_queue_size,
                          max_batch_size=batch.max_batch_size,
                          schedule_delay_ms=batch.schedule_delay_ms, on_shutdown=lazy.shutdown,
                          prepare=lazy.warm_up, queue_size_setting=batch.queue_size_variable,
                          left_out=lambda: getattr(lazy.built, "unencodable_items", 0),
                          too_large=lambda: getattr(lazy.built, "too_large_items", 0))

    def _init_traces(self, config: TelemetryConfig, resource: Any,
                     factory: OTLPExporterFactory) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SpanExportResult

        from .batching import BatchSpanProcessor

        given = self._overrides.span_exporter
        lazy = self._lazy(lambda: given if given is not None else factory.create_span_exporter(),
                          "traces", None if given is not None else
                          lambda: factory.warm_up(SignalType.TRACES))
        queue = self._queue("spans", _export_function(lazy, SpanExportResult.SUCCESS, "spans"),
                            lazy, config)
        self._span_queue = queue
        self.tracer_provider = _enabled(
            TracerProvider(resource=resource, sampler=build_sampler(config)))
        self.tracer_provider.add_span_processor(BatchSpanProcessor(queue))
        self.tracer = self.tracer_provider.get_tracer(SCOPE, __version__)

    def _init_metrics(self, config: TelemetryConfig, resource: Any,
                      factory: OTLPExporterFactory) -> None:
        from opentelemetry.sdk.metrics import MeterProvider

        from .metric_preferences import exporter_preferences
        from .metric_reader import CountingMetricReader, LazyMetricExporter

        reader = self._overrides.metric_reader
        given = self._overrides.metric_exporter
        if isinstance(reader, CountingMetricReader):
            self._metric_reader = reader
        elif reader is None:
            lazy = self._lazy((lambda: given) if given is not None
                              else factory.create_metric_exporter, "metrics")
            _built_before_the_interpreter_shuts_down(lazy)
            exporter = LazyMetricExporter(lazy, **exporter_preferences(config))
            # (its thread, and the one it restarts in a forked child, never takes SIGTERM)
            with signals_blocked():
                reader = self._metric_reader = quiet_during_fork_hooks_registered_in(
                    lambda: CountingMetricReader(
                        exporter,
                        export_interval_millis=config.metric_export_interval_ms,
                        export_timeout_millis=config.for_signal(SignalType.METRICS).timeout
                        * 1000,
                    ))
        self.meter_provider = _enabled(MeterProvider(resource=resource, metric_readers=[reader]))
        if self._metric_reader is not None:
            self._metric_reader.collects_for(self.meter_provider)
        self.meter = self.meter_provider.get_meter(SCOPE, __version__)

    def _init_logs(self, config: TelemetryConfig, resource: Any,
                   factory: OTLPExporterFactory) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        from .batching import BatchLogProcessor

        given = self._overrides.log_exporter
        lazy = self._lazy(lambda: given if given is not None else factory.create_log_exporter(),
                          "logs", None if given is not None else
                          lambda: factory.warm_up(SignalType.LOGS))
        queue = self._queue("logs", _export_function(lazy, LogRecordExportResult.SUCCESS, "logs"),
                            lazy, config)
        self._log_queue = queue
        self.logger_provider = _enabled(LoggerProvider(resource=resource))
        self.logger_provider.add_log_record_processor(BatchLogProcessor(queue))
        self.logger = self.logger_provider.get_logger(SCOPE, __version__)

    def _install_globals(self, config: TelemetryConfig) -> None:
        from .propagators import build_propagator, import_propagate

        propagate = import_propagate()

        for kind, provider in (("tracer", self.tracer_provider), ("meter", self.meter_provider),
                               ("logger", self.logger_provider)):
            if provider is not None:
                self.globals_installed[kind] = install_global(kind, provider)
        propagate.set_global_textmap(build_propagator(config.propagators))

    def flush(self, command: c.FlushTelemetryCommand) -> bool:
        """Export everything finished so far; False if any of it failed or the timeout hit.
        The metrics are collected first and exported alongside the spans and logs: they
        are then counted (queued) even if the spans take the whole time."""
        deadline = time.monotonic() + command.timeout_seconds
        dropped_before = self._metric_points_dropped()
        metrics = self._start_metrics_flush(command.timeout_seconds)
        ok = True
        for queue in (self._span_queue, self._log_queue):
            if queue is not None:
                ok = queue.flush(max(deadline - time.monotonic(), 0.0)) and ok
        if metrics is not None:
            ok = metrics(max(deadline - time.monotonic(), 0.0)) and ok
            if self._metric_reader is not None and final_exports_running():
                # The last flush before os._exit, exec or a multiprocessing child's end:
                # what was recorded while it ran (see export_late_points). Counted lost
                # only when the process ends with this flush (the exit's line says so).
                self._metric_reader.export_late_points(deadline, count_lost=said_at_exit())
        return ok and self._metric_points_dropped() == dropped_before

    def _metric_points_dropped(self) -> int:
        if self._metric_reader is None:
            return 0
        return self._metric_reader.dropped + _metric_points_too_large()

    def _start_metrics_flush(self, timeout: float) -> Callable[[float], bool] | None:
        """Start ``MeterProvider.force_flush``; returns how to wait for it (at most the
        seconds given: True if it finished and succeeded). It exports on the calling thread
        and the OTLP exporters ignore its timeout (retrying for up to ``config.timeout``), so
        it runs on a helper thread; a late export finishes unobserved (and counted)."""
        provider = self.meter_provider
        if provider is None:
            return None
        done: list[bool] = []

        def run() -> None:
            try:
                done.append(bool(provider.force_flush(timeout_millis=timeout * 1000)))
            except Exception:
                done.append(False)

        thread = threading.Thread(target=run, name="telemetryflow-metrics-flush", daemon=True)
        start_quietly(thread)

        def wait(seconds: float) -> bool:
            thread.join(seconds)
            return bool(done) and done[0]

        return wait

    def shutdown(self, command: c.ShutdownSDKCommand) -> bool:
        """Flush and stop, within ``timeout_seconds`` in total. The last exports: one
        that finds the backend unreachable gives up at once (``reachability``)."""
        with self._lock, final_exports():
            return self._shutdown_locked(command)

    def _shutdown_locked(self, command: c.ShutdownSDKCommand) -> bool:
        if not self._initialized:
            return True
        deadline = time.monotonic() + command.timeout_seconds
        self._end_active_spans()
        reader = self._metric_reader
        dropped_before = self._metric_points_dropped()
        if reader is not None:  # (its last export then runs alongside the spans' and logs')
            reader.start_last_export()
        ok = True
        for queue in (self._span_queue, self._log_queue):
            if queue is not None:
                # BatchQueue.shutdown() only says whether it finished in time: an
                # export refused meanwhile must make the answer False as well.
                failed_before = queue.failed + queue.dropped
                ok = queue.shutdown(max(deadline - time.monotonic(), 0.0)) and ok
                ok = ok and queue.failed + queue.dropped == failed_before
        if self.meter_provider is not None:
            remaining_ms = max(deadline - time.monotonic(), 0.0) * 1000
            try:
                self.meter_provider.shutdown(timeout_millis=remaining_ms)
            except Exception as exc:
                ok = False
                _diagnostics.debug(f"meter provider shutdown raised {exc!r}")
            if reader is not None:
                # What it did not export by now is dropped, and counted: the last
                # collection too if it was never made (a collector that never answers kept
                # the reader's thread in an earlier export, or no time was left).
                reader.close()
                ok = ok and self._metric_points_dropped() == dropped_before
        self._final_counts = self.status(q.GetSDKStatusQuery())
        self._initialized = False
        return ok

    def _end_active_spans(self) -> None:
        with self._span_lock:
            spans = list(self._active.values())
            for span_id in self._active:
                self._forget(span_id, ENDED_AT_SHUTDOWN)
            self._active.clear()
        for span in spans:
            span.set_attribute("telemetryflow.span.ended_at_shutdown", True)
            span.end()

    # ----- metrics -------------------------------------------------------------------------

    def _instrument(self, kind: str, name: str, unit: str, description: str) -> Any:
        key = (kind, name, unit, description)
        instrument = self._instruments.get(key)
        if instrument is None:
            with self._instrument_lock:
                instrument = self._instruments.get(key)
                if instrument is None:
                    create = getattr(self.meter, f"create_{kind}")
                    instrument = create(name, unit=unit, description=description)
                    self._instruments[key] = instrument
        return instrument

    def record_counter(self, command: c.RecordCounterCommand) -> None:
        if self.meter is None:
            return
        self._instrument("counter", command.name, command.unit, command.description).add(
            command.value, command.attributes)

    def record_gauge(self, command: c.RecordGaugeCommand) -> None:
        if self.meter is None:
            return
        self._instrument("gauge", command.name, command.unit, command.description).set(
            command.value, command.attributes)

    def record_histogram(self, command: c.RecordHistogramCommand) -> None:
        if self.meter is None:
            return
        self._instrument("histogram", command.name, command.unit, command.description).record(
            command.value, command.attributes)

    # ----- logs ----------------------------------------------------------------------------

    def emit_log(self, command: c.EmitLogCommand) -> None:
        if self.logger is None:
            return
        number, text = _SEVERITIES.get(command.severity, _SEVERITIES["info"])
        self.logger.emit(body=command.message, severity_number=number, severity_text=text,
                         attributes=dict(command.attributes) if command.attributes else None)

    # ----- spans ---------------------------------------------------------------------------

    def start_span(self, command: c.StartSpanCommand) -> str:
        kind = _KINDS.get(command.kind, SpanKind.INTERNAL)
        span = self.tracer.start_span(command.name, kind=kind, attributes=command.attributes)
        return self.track_span(span)

    def track_span(self, span: Any) -> str:
        """Remember ``span`` under its hex id until it ends (bounded: the oldest is evicted
        and counted). Recorded or not: an unsampled span is tracked the same way, so that
        a second ``end_span`` or a late event on it is told from an unsampled span's
        (the caller cannot see the difference, and should not have to). A span without an
        id of its own (a no-op tracer's, traces off) gets one drawn here."""
        span_id = format(span.get_span_context().span_id, "016x")
        with self._span_lock:
            active = self._active
            if span_id == _INVALID_ID or active.setdefault(span_id, span) is not span:
                span_id = _fresh_id(active)
                active[span_id] = span
            if len(active) > MAX_ACTIVE_SPANS:
                self._forget(active.popitem(last=False)[0], EVICTED)
                self._evicted_spans += 1
        return span_id

    def untrack_span(self, span_id: str) -> Any:
        """The open span ``span_id`` names, no longer open (None if it was not)."""
        with self._span_lock:
            span = self._active.pop(span_id, None)
            if span is not None:  # (_forget, inlined: once per span)
                ended = self._ended
                ended[span_id] = ENDED
                if len(ended) >= MAX_ENDED_REMEMBERED:
                    self._ended_before, self._ended = ended, {}
        return span

    def _forget(self, span_id: str, why: str) -> None:
        """Remember that ``span_id`` is gone, and ``why`` (under ``_span_lock``). Two
        generations of a plain dict: cheaper per span than an ordered table, and bounded
        (at most 2 x MAX_ENDED_REMEMBERED, the oldest generation dropped whole)."""
        ended = self._ended
        ended[span_id] = why
        if len(ended) >= MAX_ENDED_REMEMBERED:
            self._ended_before, self._ended = ended, {}

    def why_no_span(self, span_id: str) -> str | None:
        """Why no open span has ``span_id`` (``ENDED``, ``EVICTED``, ``ENDED_AT_SHUTDOWN``),
        or None when it was never one of ours or ended long ago (the slow path of a call
        that found no span: ``end_span``/``add_span_event`` returned False)."""
        with self._span_lock:
            return self._ended.get(span_id) or self._ended_before.get(span_id)

    def remembered_ended_spans(self) -> int:
        return len(self._ended) + len(self._ended_before)

    def end_span(self, command: c.EndSpanCommand) -> bool:
        span = self.untrack_span(command.span_id)
        if span is None:
            return False
        if command.error is not None:
            record_error(span, command.error)
        span.end()
        return True

    def add_span_event(self, command: c.AddSpanEventCommand) -> bool:
        with self._span_lock:
            span = self._active.get(command.span_id)
        if span is None:
            return False
        span.add_event(command.name, attributes=command.attributes)
        return True

    # ----- queries -------------------------------------------------------------------------

    def status(self, query: q.GetSDKStatusQuery) -> dict[str, Any]:
        config = self.config
        spans, logs = self._span_queue, self._log_queue
        metrics = self._metric_reader
        points_too_large = _metric_points_too_large()
        return {
            "initialized": self._initialized,
            "service_name": config.service_name if config else None,
            "endpoint": redact_url(config.resolved_endpoint())
            if config and config.endpoint else None,
            # where each OTLP signal goes (its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT or
            # the one above): host:port for gRPC, the full URL for HTTP
            "destinations": {s.value: redact_url(config.export_target(s))
                             for s in config.enabled_signals
                             if config.exporter_for(s) is ExporterKind.OTLP} if config else {},
            "protocol": config.protocol.value if config else None,
            "exporters": {s.value: config.exporter_for(s).value for s in SignalType}
            if config else {},
            "enabled_signals": [s.value for s in config.enabled_signals] if config else [],
            "spans_exported": spans.exported if spans else 0,
            "spans_dropped": _dropped(spans),
            # (queued: not exported yet, the batch being exported included)
            "spans_queued": (spans.queued + spans.in_flight) if spans else 0,
            "logs_exported": logs.exported if logs else 0,
            "logs_dropped": _dropped(logs),
            "logs_queued": (logs.queued + logs.in_flight) if logs else 0,
            # of those dropped, left out of an export that went on without them: no OTLP
            # encoder could encode them, or (HTTP) a request holding only that item was past
            # the exporter's limit (see otlp_exporters)
            "spans_unencodable": spans.unencodable if spans else 0,
            "spans_too_large": spans.too_large if spans else 0,
            "logs_unencodable": logs.unencodable if logs else 0,
            "logs_too_large": logs.too_large if logs else 0,
            # (left out: past the request size limit alone, see otlp_metric_exporters; the
            # reader counted them exported with the rest of their export)
            "metric_points_exported": (metrics.exported - points_too_large) if metrics else 0,
            # (dropped: failed, or not exported by the shutdown deadline; queued: collected,
            # the export under way or waiting)
            "metric_points_dropped": (metrics.dropped + points_too_large) if metrics else 0,
            "metric_points_too_large": points_too_large,
            "metric_points_queued": metrics.queued if metrics else 0,
            # why exports fail, when the backend could not be reached at all
            "backend_unreachable": self._unreachable(),
            "active_spans": len(self._active),
            "active_spans_evicted": self._evicted_spans,
            # values OTLP cannot carry, each costing only itself (attributes_left_out,
            # values_sent_as_text; metric_values_sent_as_double): see otlp_wire, metric_values
            **_unencodable_counts(),
            "globals_installed": dict(self.globals_installed),
            "uptime_seconds": (time.monotonic() - self._started_at) if self._started_at else 0.0,
        }

    def _unreachable(self) -> str | None:
        """Why our exporters' backend(s) could not be reached on the last attempt, if so."""
        messages = []
        for lazy in self._exporters:
            target = backend_of(lazy.built)
            if target is not None and target.unreachable is not None \
                    and target.message() not in messages:
                messages.append(target.message())
        return "; ".join(messages) or None

    def health(self, query: q.GetHealthQuery) -> dict[str, Any]:
        status = self.status(q.GetSDKStatusQuery())
        healthy = status["initialized"]
        return {"healthy": healthy, "initialized": status["initialized"],
                "dropped": status["spans_dropped"] + status["logs_dropped"]
                + status["metric_points_dropped"]}


_INVALID_ID = "0" * 16


def _fresh_id(active: Any) -> str:
    """A random span id in the SDK's shape that no open span has."""
    import random  # (rarely needed: not at start-up)

    while True:
        span_id = format(random.getrandbits(64), "016x")
        if span_id != _INVALID_ID and span_id not in active:
            return span_id


def record_error(span: Any, error: BaseException) -> None:
    """Mark ``span`` failed by ``error`` the way the semantic conventions say."""
    span.record_exception(error)
    span.set_attribute("error.type", error_type(error))  # (the one rule for every span)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _dropped(queue: BatchQueue | None) -> int:
    if queue is None:
        return 0
    return queue.dropped + queue.failed + queue.unencodable + queue.too_large


def _unencodable_counts() -> dict[str, int]:
    """The encoders' counts. They count in modules imported with the exporters (on the
    export thread) and the metric reader: one not imported has counted nothing, and is not
    imported for the final status of a process that never exported (exporter none)."""
    wire = sys.modules.get(f"{__package__}.otlp_wire")
    values = sys.modules.get(f"{__package__}.metric_values")
    counts: dict[str, int] = wire.unencodable_counts() if wire is not None \
        else dict.fromkeys(_WIRE_COUNTS, 0)
    counts["metric_values_sent_as_double"] = \
        values.values_sent_as_double() if values is not None else 0
    return counts


_WIRE_COUNTS = ("attributes_left_out", "values_sent_as_text")  # (otlp_wire's counts)
