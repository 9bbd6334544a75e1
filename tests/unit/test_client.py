"""``TelemetryFlowClient`` against the SDK's in-memory exporters: the public API's behaviour,
including the defects of the upstream SDK this one must not have."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import _logs as logs_api
from opentelemetry import metrics as metrics_api
from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as logs_internal
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import telemetryflow_bootstrap
from telemetryflow_bootstrap import _bootstrap, _launch, _runtime
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import NoOpClient, TelemetryFlowClient, get_client
from telemetryflow_bootstrap.domain import errors
from telemetryflow_bootstrap.domain.errors import NotInitializedError, TelemetryFlowError
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Sinks:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    @property
    def overrides(self) -> ExporterOverrides:
        return ExporterOverrides(self.spans, self.reader, self.logs)


def _new_sinks() -> Sinks:
    return Sinks(InMemorySpanExporter(), InMemoryMetricReader(), InMemoryLogRecordExporter())


@pytest.fixture
def sinks() -> Sinks:
    return _new_sinks()


@pytest.fixture
def make_client(sinks: Sinks) -> Iterator[Callable[..., TelemetryFlowClient]]:
    """Builds clients exporting to ``sinks`` (or given sinks); all are shut down after."""
    made: list[TelemetryFlowClient] = []

    def make(builder: TelemetryFlowBuilder | None = None, *, set_global: bool = False,
             to: Sinks | None = None) -> TelemetryFlowClient:
        builder = builder or TelemetryFlowBuilder().with_service("unit-svc")
        config = builder.with_batch_settings(timeout_ms=20).build_config()
        client = TelemetryFlowClient(config, exporters=(to or sinks).overrides,
                                     set_global=set_global)
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown(2.0)


@pytest.fixture
def otel_globals() -> Iterator[None]:
    """Restore the global providers, propagator and running client a test may replace."""
    saved = {
        (trace, "_TRACER_PROVIDER"): trace._TRACER_PROVIDER,
        (metrics_internal, "_METER_PROVIDER"): metrics_internal._METER_PROVIDER,
        (logs_internal, "_LOGGER_PROVIDER"): logs_internal._LOGGER_PROVIDER,
    }
    onces = [trace._TRACER_PROVIDER_SET_ONCE, metrics_internal._METER_PROVIDER_SET_ONCE,
             logs_internal._LOGGER_PROVIDER_SET_ONCE]
    done = [once._done for once in onces]
    textmap = propagate.get_global_textmap()
    yield
    running = _runtime.current_client()
    if running is not None:
        running.shutdown(2.0)
    _runtime.clear_current(running)
    for (module, name), value in saved.items():
        setattr(module, name, value)
    for once, was_done in zip(onces, done, strict=True):
        once._done = was_done
    propagate.set_global_textmap(textmap)


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [point for rm in data.resource_metrics for sm in rm.scope_metrics
            for metric in sm.metrics if metric.name == name for point in metric.data.data_points]


def _metric(reader: InMemoryMetricReader, name: str) -> Any:
    data = reader.get_metrics_data()
    assert data is not None, "no metrics collected"
    found = [metric for rm in data.resource_metrics for sm in rm.scope_metrics
             for metric in sm.metrics if metric.name == name]
    assert len(found) == 1, f"metric {name!r}: {found}"
    return found[0]


def _span_hex(span: Any) -> str:
    return format(span.context.span_id, "016x")


def _by_name(sinks: Sinks) -> dict[str, Any]:
    return {span.name: span for span in sinks.spans.get_finished_spans()}


# ----- before initialize() --------------------------------------------------------------

_NEEDS_INIT: dict[str, Callable[[TelemetryFlowClient], Any]] = {
    "flush": lambda c: c.flush(),
    "increment_counter": lambda c: c.increment_counter("n"),
    "record_gauge": lambda c: c.record_gauge("g", 1),
    "record_histogram": lambda c: c.record_histogram("h", 1),
    "log": lambda c: c.log("m"),
    "log_debug": lambda c: c.log_debug("m"),
    "log_info": lambda c: c.log_info("m"),
    "log_warn": lambda c: c.log_warn("m"),
    "log_error": lambda c: c.log_error("m"),
    "start_span": lambda c: c.start_span("s"),
    "end_span": lambda c: c.end_span("0" * 16),
    "add_span_event": lambda c: c.add_span_event("0" * 16, "e"),
    "span": lambda c: c.span("s").__enter__(),
    "tracer": lambda c: c.tracer,
    "meter": lambda c: c.meter,
    "handler": lambda c: c.handler,
}


@pytest.mark.parametrize("call", list(_NEEDS_INIT.values()), ids=list(_NEEDS_INIT))
def test_methods_before_initialize_raise_not_initialized(
        make_client: Callable[..., TelemetryFlowClient],
        call: Callable[[TelemetryFlowClient], Any]) -> None:
    """Every telemetry method called before initialize() raises NotInitializedError."""
    client = make_client()
    with pytest.raises(NotInitializedError, match="initialize"):
        call(client)
    assert issubclass(NotInitializedError, TelemetryFlowError)


def test_every_public_client_method_is_covered_by_the_not_initialized_check() -> None:
    """The table above names every public method and property of the client, apart from
    the lifecycle and read-only ones that are safe before initialize()."""
    safe = {"initialize", "shutdown", "get_status", "get_health", "config", "is_initialized"}
    public = {name for name, _ in inspect.getmembers(TelemetryFlowClient)
              if not name.startswith("_")}
    assert public - safe == set(_NEEDS_INIT)


def test_lifecycle_and_queries_are_safe_before_initialize(
        make_client: Callable[..., TelemetryFlowClient]) -> None:
    """shutdown() before initialize() is a no-op returning True; status says not initialised."""
    client = make_client()
    assert client.shutdown() is True
    assert client.get_status()["initialized"] is False
    assert client.get_health() == {"healthy": False, "initialized": False}


# ----- get_client() / NoOpClient --------------------------------------------------------

def test_get_client_is_a_noop_client_when_nothing_runs() -> None:
    """With no SDK running, get_client() returns a NoOpClient that accepts every call."""
    client = get_client()
    assert isinstance(client, NoOpClient)
    assert client.initialize() is client
    client.increment_counter("n", 1, {"a": 1})
    client.record_gauge("g", 2)
    client.record_histogram("h", 3)
    client.log_info("hello")
    span_id = client.start_span("s")
    client.add_span_event(span_id, "e")
    client.end_span(span_id, error=ValueError("x"))
    with client.span("s") as inner:
        assert inner == "0" * 16
    assert client.flush() is True
    assert client.shutdown() is True
    assert client.get_status() == {"initialized": False}


def test_noop_client_offers_the_client_api() -> None:
    """Every public member of the real client (bar its config and handler) exists on the
    NoOpClient, so code written against get_client() runs uninstrumented too."""
    def public(cls: type) -> set[str]:
        return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}

    assert public(TelemetryFlowClient) - {"config", "handler"} <= public(NoOpClient)


def test_noop_client_tracer_and_meter_are_harmless() -> None:
    """The NoOpClient's tracer and meter accept the plain OpenTelemetry API and record nothing."""
    client = NoOpClient()
    with client.tracer.start_as_current_span("ignored") as span:
        assert not span.is_recording()
    client.meter.create_counter("ignored").add(1)
    client.meter.create_histogram("ignored").record(2.0)


def test_get_client_returns_the_running_client(
        make_client: Callable[..., TelemetryFlowClient], otel_globals: None) -> None:
    """get_client() is the initialised global client while it runs, a NoOpClient after."""
    client = make_client(set_global=True).initialize()
    assert get_client() is client
    assert telemetryflow_bootstrap.get_client() is client
    client.shutdown()
    assert isinstance(get_client(), NoOpClient)


def test_client_with_set_global_false_is_not_what_get_client_returns(
        make_client: Callable[..., TelemetryFlowClient]) -> None:
    """A private client (set_global=False) leaves get_client() and the globals alone."""
    before = trace.get_tracer_provider()
    make_client().initialize()
    assert isinstance(get_client(), NoOpClient)
    assert trace.get_tracer_provider() is before


# ----- errors ---------------------------------------------------------------------------

def _error_classes() -> list[type[BaseException]]:
    modules = [errors, _launch, _bootstrap]
    return sorted({obj for module in modules for obj in vars(module).values()
                   if isinstance(obj, type) and issubclass(obj, BaseException)
                   and obj.__module__ == module.__name__}, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("error_class", _error_classes(), ids=lambda cls: cls.__name__)
def test_error_classes_subclass_telemetryflow_error(error_class: type[BaseException]) -> None:
    """Every exception class the package defines (StrictModeError and LaunchError included)
    is a TelemetryFlowError."""
    assert issubclass(error_class, TelemetryFlowError)


def test_error_class_scan_finds_the_launcher_errors() -> None:
    """The scan above really covers the errors outside the domain package."""
    names = {cls.__name__ for cls in _error_classes()}
    assert {"StrictModeError", "LaunchError", "NotInitializedError", "ConfigError"} <= names


def test_public_errors_are_exported_and_share_the_base() -> None:
    """The error names in __all__ all derive from TelemetryFlowError."""
    names = [n for n in telemetryflow_bootstrap.__all__ if n.endswith("Error")]
    assert names
    for name in names:
        assert issubclass(getattr(telemetryflow_bootstrap, name), TelemetryFlowError)


# ----- spans ----------------------------------------------------------------------------

def test_nested_span_calls_are_parent_and_child(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """A span() opened inside another span() is its child, in the same trace."""
    client = make_client().initialize()
    with client.span("parent") as parent_id, client.span("child") as child_id:
        started = client.start_span("grandchild")
        client.end_span(started)
    assert client.flush(2.0)
    spans = _by_name(sinks)
    parent, child, grandchild = spans["parent"], spans["child"], spans["grandchild"]
    assert _span_hex(parent) == parent_id and _span_hex(child) == child_id
    assert parent.parent is None
    assert child.parent.span_id == parent.context.span_id
    assert grandchild.parent.span_id == child.context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1


def test_span_is_current_only_inside_the_block(
        make_client: Callable[..., TelemetryFlowClient]) -> None:
    """Inside span() the plain API sees the span as current; after the block it does not."""
    client = make_client().initialize()
    with client.span("op") as span_id:
        current = trace.get_current_span().get_span_context()
        assert format(current.span_id, "016x") == span_id
    assert not trace.get_current_span().get_span_context().is_valid


def test_span_records_the_exception_and_reraises_the_same_object(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """An exception leaving span() is recorded on the span (ERROR) and re-raised unchanged."""
    client = make_client().initialize()
    error = KeyError("missing")
    with pytest.raises(KeyError) as raised, client.span("failing"):
        raise error
    assert raised.value is error
    assert client.flush(2.0)
    span = _by_name(sinks)["failing"]
    assert span.status.status_code is StatusCode.ERROR
    assert "KeyError" in span.status.description
    assert span.attributes["error.type"] == "KeyError"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "KeyError"


def test_span_kind_and_attributes(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """span() and start_span() pass their kind and attributes to the span."""
    client = make_client().initialize()
    with client.span("srv", kind="server", attributes={"http.route": "/a"}):
        pass
    client.end_span(client.start_span("cli", kind="client", attributes={"peer": "db"}))
    assert client.flush(2.0)
    spans = _by_name(sinks)
    assert spans["srv"].kind is SpanKind.SERVER
    assert dict(spans["srv"].attributes) == {"http.route": "/a"}
    assert spans["cli"].kind is SpanKind.CLIENT
    assert dict(spans["cli"].attributes) == {"peer": "db"}


def test_end_span_with_error_sets_error_status(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """end_span(span_id, error=exc) records the exception and marks the span ERROR."""
    client = make_client().initialize()
    span_id = client.start_span("job")
    client.end_span(span_id, error=TimeoutError("slow"))
    ok_id = client.start_span("fine")
    client.end_span(ok_id)
    assert client.flush(2.0)
    spans = _by_name(sinks)
    assert spans["job"].status.status_code is StatusCode.ERROR
    assert spans["job"].attributes["error.type"] == "TimeoutError"
    assert [e.name for e in spans["job"].events] == ["exception"]
    assert spans["fine"].status.status_code is StatusCode.UNSET


def test_add_span_event(make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """add_span_event() adds a named event with attributes to the started span; an event
    for a span already ended, or for an unknown id, is dropped (said once, never raised)."""
    client = make_client().initialize()
    span_id = client.start_span("job")
    client.add_span_event(span_id, "checkpoint", {"step": 2})
    client.end_span(span_id)
    client.add_span_event(span_id, "too-late")  # ended: dropped, said once
    client.add_span_event("f" * 16, "unknown")  # unknown id: dropped, said once
    assert client.flush(2.0)
    [span] = sinks.spans.get_finished_spans()
    assert [(e.name, dict(e.attributes)) for e in span.events] == [("checkpoint", {"step": 2})]


def test_start_and_end_span_pairs(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """start_span() returns the span's hex id; end_span() ends exactly that span, once (a
    second end_span() of it changes nothing: said once, never raised)."""
    client = make_client().initialize()
    first, second = client.start_span("a"), client.start_span("b")
    assert len(first) == 16 and first != second
    assert client.get_status()["active_spans"] == 2
    client.end_span(second)
    client.end_span(second)  # a second end: ignored, said once
    assert client.get_status()["active_spans"] == 1
    client.end_span(first)
    assert client.flush(2.0)
    assert sorted(_span_hex(s) for s in sinks.spans.get_finished_spans()) == sorted(
        [first, second])
    assert client.get_status()["active_spans"] == 0


def test_traces_disabled_makes_span_calls_harmless_noops(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """With traces disabled, span()/start_span()/end_span()/add_span_event() work and export
    nothing, while the other signals still do."""
    client = make_client(
        TelemetryFlowBuilder().with_service("unit-svc").with_signals(traces=False)).initialize()
    with client.span("ignored") as span_id:
        client.log_info("inside")
    assert isinstance(span_id, str)
    started = client.start_span("ignored-too")
    client.add_span_event(started, "e")
    client.end_span(started, error=ValueError("x"))
    with pytest.raises(ValueError), client.span("raising"):
        raise ValueError("still propagates")
    assert client.flush(2.0)
    assert sinks.spans.get_finished_spans() == ()
    assert [r.log_record.body for r in sinks.logs.get_finished_logs()] == ["inside"]
    assert client.get_status()["enabled_signals"] == ["metrics", "logs"]


# ----- logs -----------------------------------------------------------------------------

def test_logs_inside_a_span_carry_its_trace_and_span_ids(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """A log emitted inside span() is correlated with that span."""
    client = make_client().initialize()
    with client.span("op"):
        client.log_warn("inside", {"k": "v"})
    assert client.flush(2.0)
    [span] = sinks.spans.get_finished_spans()
    [record] = sinks.logs.get_finished_logs()
    assert record.log_record.trace_id == span.context.trace_id
    assert record.log_record.span_id == span.context.span_id
    assert record.log_record.severity_text == "WARN"
    assert dict(record.log_record.attributes) == {"k": "v"}


def test_logs_go_to_the_log_exporter_not_span_events(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """Logs are log records, with or without an active span; never span events."""
    client = make_client().initialize()
    client.log_info("no span here")
    with client.span("op"):
        client.log_error("in span")
    assert client.flush(2.0)
    records = {r.log_record.body: r.log_record for r in sinks.logs.get_finished_logs()}
    assert set(records) == {"no span here", "in span"}
    assert records["no span here"].trace_id == 0
    assert records["in span"].severity_text == "ERROR"
    [span] = sinks.spans.get_finished_spans()
    assert span.events == ()


@pytest.mark.parametrize(("method", "text"), [
    ("log_debug", "DEBUG"), ("log_info", "INFO"), ("log_warn", "WARN"), ("log_error", "ERROR"),
])
def test_log_helpers_set_severity(make_client: Callable[..., TelemetryFlowClient], sinks: Sinks,
                                  method: str, text: str) -> None:
    """Each log_<level>() helper emits its severity."""
    client = make_client().initialize()
    getattr(client, method)("message")
    assert client.flush(2.0)
    [record] = sinks.logs.get_finished_logs()
    assert record.log_record.severity_text == text


# ----- metrics --------------------------------------------------------------------------

def test_gauge_keeps_the_last_value(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """Recording a gauge twice reports the last value, not the sum, per attribute set."""
    client = make_client().initialize()
    client.record_gauge("queue.depth", 7, {"queue": "a"})
    client.record_gauge("queue.depth", 3, {"queue": "a"})
    client.record_gauge("queue.depth", 11, {"queue": "b"})
    values = {p.attributes["queue"]: p.value for p in _points(sinks.reader, "queue.depth")}
    assert values == {"a": 3, "b": 11}


def test_counter_values_and_attributes(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """increment_counter() sums per attribute set and keeps unit and description."""
    client = make_client().initialize()
    client.increment_counter("http.requests", attributes={"route": "/a"}, unit="{request}",
                             description="requests served")
    client.increment_counter("http.requests", 4, {"route": "/a"}, unit="{request}",
                             description="requests served")
    client.increment_counter("http.requests", 2, {"route": "/b"}, unit="{request}",
                             description="requests served")
    metric = _metric(sinks.reader, "http.requests")
    assert (metric.unit, metric.description) == ("{request}", "requests served")
    assert metric.data.is_monotonic
    assert {p.attributes["route"]: p.value for p in metric.data.data_points} == {"/a": 5, "/b": 2}


def test_histogram_values_and_attributes(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """record_histogram() aggregates count, sum, min and max per attribute set."""
    client = make_client().initialize()
    for value in (10, 30, 20):
        client.record_histogram("latency", value, {"op": "read"}, unit="ms")
    client.record_histogram("latency", 5.5, {"op": "write"}, unit="ms")
    metric = _metric(sinks.reader, "latency")
    assert metric.unit == "ms"
    points = {p.attributes["op"]: p for p in metric.data.data_points}
    read = points["read"]
    assert (read.count, read.sum, read.min, read.max) == (3, 60, 10, 30)
    assert (points["write"].count, points["write"].sum) == (1, 5.5)


# ----- lifecycle ------------------------------------------------------------------------

def test_client_as_context_manager_initialises_and_shuts_down(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks) -> None:
    """``with client:`` initialises on entry and shuts down (exporting everything) on exit."""
    client = make_client()
    with client as entered:
        assert entered is client and client.is_initialized
        with client.span("work"):
            pass
    assert not client.is_initialized
    assert [s.name for s in sinks.spans.get_finished_spans()] == ["work"]
    assert client.get_status()["spans_exported"] == 1


def test_initialize_is_idempotent(make_client: Callable[..., TelemetryFlowClient]) -> None:
    """A second initialize() returns the client and keeps the same SDK."""
    client = make_client()
    assert client.initialize() is client
    handler = client.handler
    assert client.initialize() is client
    assert client.handler is handler


def test_reinitialising_after_shutdown_exports_again(
        make_client: Callable[..., TelemetryFlowClient], otel_globals: None) -> None:
    """After the first global client shuts down, a new one becomes the global SDK and exports;
    code using the plain OpenTelemetry API reports to the new one."""
    first_sinks, second_sinks = _new_sinks(), _new_sinks()
    first = make_client(set_global=True, to=first_sinks).initialize()
    first_handler = first.handler
    with first.span("first"):
        pass
    assert first.shutdown(2.0)
    second = make_client(set_global=True, to=second_sinks).initialize()
    assert second.handler is not first_handler
    assert second.get_status()["globals_installed"] == {
        "tracer": True, "meter": True, "logger": True}
    with second.span("second"):
        trace.get_tracer("plain-api").start_span("via-global").end()
    second.log_info("second log")
    assert second.flush(2.0)
    assert [s.name for s in first_sinks.spans.get_finished_spans()] == ["first"]
    assert sorted(s.name for s in second_sinks.spans.get_finished_spans()) == [
        "second", "via-global"]
    assert [r.log_record.body for r in second_sinks.logs.get_finished_logs()] == ["second log"]
    assert trace.get_tracer_provider() is second.handler.tracer_provider
    assert metrics_api.get_meter_provider() is second.handler.meter_provider
    assert logs_api.get_logger_provider() is second.handler.logger_provider


def test_second_client_shares_the_running_sdk(
        make_client: Callable[..., TelemetryFlowClient], sinks: Sinks,
        otel_globals: None) -> None:
    """A client built while a global one runs shares its SDK; shutting it down only flushes."""
    first = make_client(set_global=True).initialize()
    second = TelemetryFlowClient(
        TelemetryFlowBuilder().with_service("other").build_config()).initialize()
    try:
        assert second.handler is first.handler
        with second.span("from-second"):
            pass
        assert second.shutdown(2.0) is True
        assert not second.is_initialized
        assert first.is_initialized and get_client() is first
        with first.span("after-second-shutdown"):
            pass
        assert first.flush(2.0)
    finally:
        second.shutdown()
    assert sorted(s.name for s in sinks.spans.get_finished_spans()) == [
        "after-second-shutdown", "from-second"]


_FOREIGN_PROVIDER_SCRIPT = textwrap.dedent("""
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
    from telemetryflow_bootstrap.client import TelemetryFlowClient
    from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

    theirs = TracerProvider()
    trace.set_tracer_provider(theirs)
    exporter = InMemorySpanExporter()
    config = TelemetryFlowBuilder().with_service("ours").with_signals(
        metrics=False, logs=False).build_config()
    client = TelemetryFlowClient(config, exporters=ExporterOverrides(span_exporter=exporter),
                                 set_global=True).initialize()
    with client.span("client-api-span"):
        pass
    flushed = client.flush(5.0)
    print(json.dumps({
        "flushed": flushed,
        "exported": [s.name for s in exporter.get_finished_spans()],
        "globals_installed": client.get_status()["globals_installed"],
        "global_is_theirs": trace.get_tracer_provider() is theirs,
    }))
    client.shutdown()
""")


def test_foreign_global_provider_is_reported_and_our_spans_still_export() -> None:
    """When another TracerProvider was set globally first, a warning on stderr says so and the
    client API's own spans still reach our exporter (fresh interpreter)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))}
    result = subprocess.run([sys.executable, "-c", _FOREIGN_PROVIDER_SCRIPT], cwd=_ROOT,
                            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"flushed": True, "exported": ["client-api-span"],
                      "globals_installed": {"tracer": False}, "global_is_theirs": True}
    assert "telemetryflow: warning: a global tracer provider" in result.stderr
    assert "was set before telemetryflow started" in result.stderr
