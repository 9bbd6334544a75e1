"""The log queue's own batch settings (``OTEL_BLRP_*``) and the batch processors' export
timeouts (``OTEL_BSP_EXPORT_TIMEOUT``, ``OTEL_BLRP_EXPORT_TIMEOUT``): parsing, precedence
over the shared settings, validation and strict mode, the real handler's queues, the
exporters' timeouts, the drop warning and ``--info``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics, _launch, cli
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.diagnostics import info
from telemetryflow_bootstrap.domain import signal_batches
from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.domain.environment import (
    BATCH_VARIABLES,
    OTEL_SPECIAL,
    UNSUPPORTED,
    read_environment,
)
from telemetryflow_bootstrap.domain.errors import ConfigError
from telemetryflow_bootstrap.domain.signals import SignalType
from telemetryflow_bootstrap.infrastructure.batching import BatchQueue
from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

LOGS, TRACES, METRICS = SignalType.LOGS, SignalType.TRACES, SignalType.METRICS

# Each log-only variable: its config field, the shared variable and its OTEL_BSP_ fallback,
# and three distinct good values (log-only, shared, fallback).
_LOG_ONLY: dict[str, tuple[str, str, str, tuple[int, int, int]]] = {
    "OTEL_BLRP_SCHEDULE_DELAY": (
        "schedule_delay_ms", "TELEMETRYFLOW_BATCH_TIMEOUT", "OTEL_BSP_SCHEDULE_DELAY",
        (100, 700, 3000)),
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": (
        "max_batch_size", "TELEMETRYFLOW_BATCH_MAX_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        (16, 64, 128)),
    "OTEL_BLRP_MAX_QUEUE_SIZE": (
        "max_queue_size", "TELEMETRYFLOW_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE",
        (32, 256, 4096)),
}
_DEFAULTS = {"schedule_delay_ms": 5000, "max_batch_size": 512, "max_queue_size": 2048}


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    """Rate-limited warnings start unsaid in every test."""
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _batch(environ: Mapping[str, str], signal: SignalType) -> signal_batches.BatchSettings:
    config, reading = load_config(environ)
    assert reading.problems == []
    return config.batch_for(signal)


# ----- the table -----------------------------------------------------------------------------


def test_batch_variables_feed_config_fields_and_are_documented() -> None:
    """Every batch variable sets a TelemetryConfig field, is listed for --help and the README
    (OTEL_SPECIAL), and none is named as unsupported any more."""
    fields = {f.name for f in dataclasses.fields(TelemetryConfig)}
    names = {var.name for var in BATCH_VARIABLES}
    assert names == {*_LOG_ONLY, "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BLRP_EXPORT_TIMEOUT"}
    assert {var.field for var in BATCH_VARIABLES} <= fields
    assert {var.field for var in BATCH_VARIABLES} == {
        *signal_batches.LOG_SETTINGS, *signal_batches.EXPORT_TIMEOUTS}
    assert names <= {name for name, _help in OTEL_SPECIAL}
    assert not names & {name for group, _instead in UNSUPPORTED for name in group}


# ----- precedence ----------------------------------------------------------------------------


def test_nothing_set_keeps_one_batch_for_spans_and_logs() -> None:
    """With nothing set both queues have today's defaults (5000 ms, 512, 2048), the log queue
    sized by TELEMETRYFLOW_MAX_QUEUE_SIZE as before."""
    for signal in (TRACES, LOGS):
        assert _batch({}, signal) == signal_batches.BatchSettings(
            5000, 512, 2048, "TELEMETRYFLOW_MAX_QUEUE_SIZE")
    config = TelemetryConfig()
    assert (config.span_export_timeout, config.log_export_timeout) == (None, None)
    assert config.for_signal(LOGS).timeout == config.for_signal(TRACES).timeout == 10.0


@pytest.mark.parametrize("name", list(_LOG_ONLY))
def test_log_variable_sets_the_log_queue_only(name: str) -> None:
    """OTEL_BLRP_<X> alone sets the log queue's <X>; the span queue keeps the default."""
    setting, _shared, _fallback, (own, _, _) = _LOG_ONLY[name]
    assert getattr(_batch({name: str(own)}, LOGS), setting) == own
    assert getattr(_batch({name: str(own)}, TRACES), setting) == _DEFAULTS[setting]


@pytest.mark.parametrize("name", list(_LOG_ONLY))
def test_log_variable_wins_over_the_shared_variable_and_its_fallback_for_logs(
        name: str) -> None:
    """For logs OTEL_BLRP_<X> > TELEMETRYFLOW_<X> > OTEL_BSP_<X>; spans keep TELEMETRYFLOW_<X>
    > OTEL_BSP_<X>, whatever OTEL_BLRP_<X> says."""
    setting, shared, fallback, (own, ours, theirs) = _LOG_ONLY[name]
    everything = {name: str(own), shared: str(ours), fallback: str(theirs)}
    assert getattr(_batch(everything, LOGS), setting) == own
    assert getattr(_batch(everything, TRACES), setting) == ours
    without_shared = {name: str(own), fallback: str(theirs)}
    assert getattr(_batch(without_shared, LOGS), setting) == own
    assert getattr(_batch(without_shared, TRACES), setting) == theirs


@pytest.mark.parametrize("name", list(_LOG_ONLY))
def test_unset_log_variable_leaves_logs_on_the_shared_value(name: str) -> None:
    """Without OTEL_BLRP_<X>, logs use what spans use: TELEMETRYFLOW_<X>, else OTEL_BSP_<X>."""
    setting, shared, fallback, (_own, ours, theirs) = _LOG_ONLY[name]
    for environ, expected in (({shared: str(ours)}, ours), ({fallback: str(theirs)}, theirs)):
        assert getattr(_batch(environ, LOGS), setting) == expected
        assert getattr(_batch(environ, TRACES), setting) == expected


def test_the_queue_size_variable_is_the_one_that_sized_the_log_queue() -> None:
    """The log queue's drop warning names OTEL_BLRP_MAX_QUEUE_SIZE when that sized it; the
    span queue, and a log queue it did not size, name TELEMETRYFLOW_MAX_QUEUE_SIZE."""
    environ = {"OTEL_BLRP_MAX_QUEUE_SIZE": "10", "OTEL_BLRP_SCHEDULE_DELAY": "10"}
    assert _batch(environ, LOGS).queue_size_variable == "OTEL_BLRP_MAX_QUEUE_SIZE"
    assert _batch(environ, TRACES).queue_size_variable == "TELEMETRYFLOW_MAX_QUEUE_SIZE"
    only_delay = {"OTEL_BLRP_SCHEDULE_DELAY": "10"}
    assert _batch(only_delay, LOGS).queue_size_variable == "TELEMETRYFLOW_MAX_QUEUE_SIZE"


@pytest.mark.parametrize("name", [*_LOG_ONLY, "OTEL_BSP_EXPORT_TIMEOUT",
                                  "OTEL_BLRP_EXPORT_TIMEOUT"])
@pytest.mark.parametrize("raw", ["", "  "], ids=["empty", "blank"])
def test_empty_value_counts_as_unset(name: str, raw: str) -> None:
    """An empty or blank value is neither parsed nor reported."""
    config, reading = load_config({name: raw})
    assert reading.problems == [] and reading.warnings == []
    assert config == load_config({})[0]


# ----- validation ----------------------------------------------------------------------------

# (variable, bad value, what the message must say)
_MALFORMED = [
    ("OTEL_BLRP_SCHEDULE_DELAY", "1000ms", "without a unit suffix"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "-1", "whole number (milliseconds) from 0 to"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "soon", "whole number"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "0", "whole number from 1 to"),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "9" * 5000, "whole number from 1 to"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "1.5", "whole number"),
    ("OTEL_BLRP_MAX_QUEUE_SIZE", "lots", "whole number"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "30s", "without a unit suffix"),
    ("OTEL_BSP_EXPORT_TIMEOUT", "0", "positive number of milliseconds"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "-5", "positive number of milliseconds"),
    ("OTEL_BLRP_EXPORT_TIMEOUT", "1e99", "positive number of milliseconds"),
]


@pytest.mark.parametrize(("name", "raw", "expected"), _MALFORMED,
                         ids=[f"{n}={r[:10]}" for n, r, _ in _MALFORMED])
def test_malformed_value_is_one_problem_and_the_default_is_used(
        name: str, raw: str, expected: str) -> None:
    """A malformed value is exactly one problem naming the variable, its value and what is
    accepted, and the shared setting's default is used for logs (no bound of its own for
    an export timeout)."""
    config, reading = load_config({name: raw})
    [problem] = reading.problems
    assert problem.source == name and expected in problem.expected
    assert str(problem).startswith(f"{name}=")
    if len(raw) <= 80:
        assert problem.shown_value == repr(raw)
    assert reading.outcome(problem) == "using the default"
    assert config == load_config({})[0]


@pytest.mark.parametrize("name", list(_LOG_ONLY))
def test_malformed_log_value_falls_back_to_the_shared_variable_and_says_so(name: str) -> None:
    """With the shared variable set, a malformed OTEL_BLRP_<X> leaves logs on its value, and
    the problem's line names it as what is used instead; spans are untouched."""
    setting, shared, fallback, (_own, ours, theirs) = _LOG_ONLY[name]
    for environ_shared, used, source in (({shared: str(ours)}, ours, shared),
                                         ({fallback: str(theirs)}, theirs, fallback)):
        config, reading = load_config({name: "x1", **environ_shared})
        [problem] = reading.problems
        assert reading.outcome(problem) == f"using {source} instead"
        assert getattr(config.batch_for(LOGS), setting) == used
        assert getattr(config.batch_for(TRACES), setting) == used
        assert f"{problem} ({reading.outcome(problem)})" in _launch.problem_messages(reading)


def test_problems_are_reported_with_the_good_values_still_applied() -> None:
    """Several batch variables at once: each bad one is its own problem, the good ones
    still apply (one bad value does not reset the others)."""
    config, reading = load_config({"OTEL_BLRP_MAX_QUEUE_SIZE": "ten",
                                   "OTEL_BLRP_SCHEDULE_DELAY": "250",
                                   "OTEL_BLRP_EXPORT_TIMEOUT": "2s"})
    assert sorted(p.source for p in reading.problems) == [
        "OTEL_BLRP_EXPORT_TIMEOUT", "OTEL_BLRP_MAX_QUEUE_SIZE"]
    assert config.batch_for(LOGS) == signal_batches.BatchSettings(250, 512, 2048)
    assert config.log_export_timeout is None


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("log_batch_timeout_ms", -1, "milliseconds >= 0"),
    ("log_batch_timeout_ms", True, "milliseconds >= 0"),
    ("log_batch_max_size", 0, "whole number >= 1"),
    ("log_batch_max_size", 2.0, "whole number >= 1"),
    ("log_max_queue_size", "10", "whole number >= 1"),
    ("span_export_timeout", 0, "positive number of seconds"),
    ("log_export_timeout", float("nan"), "positive number of seconds"),
    ("log_export_timeout", False, "positive number of seconds"),
])
def test_config_built_in_code_rejects_bad_log_batch_values(
        field: str, value: Any, expected: str) -> None:
    """A TelemetryConfig made in code checks these fields as it checks the shared ones."""
    with pytest.raises(ConfigError) as raised:
        TelemetryConfig(**{field: value})
    [problem] = raised.value.problems
    assert (problem.source, problem.shown_value) == (field, repr(value))
    assert expected in problem.expected


def test_strict_config_raises_for_a_malformed_log_value() -> None:
    """from_environment(strict=True) raises one ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="OTEL_BLRP_MAX_QUEUE_SIZE='-3'"):
        TelemetryConfig.from_environment({"OTEL_BLRP_MAX_QUEUE_SIZE": "-3"}, strict=True)


class _Execed(Exception):
    """Raised where the launcher would exec the program."""


@pytest.mark.parametrize(("name", "raw"), [("OTEL_BLRP_MAX_QUEUE_SIZE", "lots"),
                                           ("OTEL_BLRP_SCHEDULE_DELAY", "1s"),
                                           ("OTEL_BSP_EXPORT_TIMEOUT", "0")])
def test_strict_mode_launcher_exits_2_naming_the_variable(
        name: str, raw: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """In strict mode the launcher refuses to start the program (exit 2), with one line
    naming the variable and its value; without strict mode it starts it."""
    def fake_exec(argv: Sequence[str], env: Mapping[str, str]) -> None:
        raise _Execed()

    monkeypatch.setattr(_launch, "exec_program", fake_exec)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv(name, raw)
    monkeypatch.setenv("TELEMETRYFLOW_STRICT", "true")
    with pytest.raises(SystemExit) as exited:
        cli.main(["python", "app.py"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if name in line] == [
        f"telemetryflow: error: {name}={raw!r}: "
        f"{read_environment({name: raw}).problems[0].expected}"]
    monkeypatch.setenv("TELEMETRYFLOW_STRICT", "false")
    with pytest.raises(_Execed):
        cli.main(["python", "app.py"])


# ----- the export timeouts -------------------------------------------------------------------


def test_export_timeout_shortens_its_own_signal_only() -> None:
    """OTEL_BSP_EXPORT_TIMEOUT shorter than the exporter's timeout bounds span exports;
    logs and metrics keep theirs, and OTEL_BLRP_EXPORT_TIMEOUT does the same for logs."""
    config, _ = load_config({"OTEL_BSP_EXPORT_TIMEOUT": "2500", "TELEMETRYFLOW_TIMEOUT": "8"})
    assert config.span_export_timeout == 2.5
    assert [config.for_signal(s).timeout for s in (TRACES, METRICS, LOGS)] == [2.5, 8.0, 8.0]
    config, _ = load_config({"OTEL_BLRP_EXPORT_TIMEOUT": "1500"})
    assert [config.for_signal(s).timeout for s in (TRACES, METRICS, LOGS)] == [10.0, 10.0, 1.5]


@pytest.mark.parametrize(("environ", "expected"), [
    # longer than the exporter's own timeout: the exporter's is the shorter, it applies
    ({"OTEL_BSP_EXPORT_TIMEOUT": "30000"}, 10.0),
    ({"OTEL_BSP_EXPORT_TIMEOUT": "30000", "OTEL_EXPORTER_OTLP_TIMEOUT": "60000"}, 30.0),
    ({"OTEL_BSP_EXPORT_TIMEOUT": "4000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "3000"}, 3.0),
    ({"OTEL_BSP_EXPORT_TIMEOUT": "2000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "3000"}, 2.0),
    ({"OTEL_BSP_EXPORT_TIMEOUT": "2000", "TELEMETRYFLOW_TIMEOUT": "1"}, 1.0),
])
def test_the_shorter_of_the_two_timeouts_applies(environ: dict[str, str],
                                                 expected: float) -> None:
    """Both the batch processor's and the exporter's timeout bound an export: the shorter
    one is the exporter's timeout, whichever variable set it; never longer than before."""
    config, reading = load_config(environ)
    assert reading.problems == []
    assert config.for_signal(TRACES).timeout == expected


@pytest.mark.parametrize("signal", [TRACES, LOGS])
def test_real_grpc_exporter_gets_the_shorter_timeout(signal: SignalType) -> None:
    """The SDK's gRPC exporter the factory builds is given the shorter timeout, for its own
    signal only."""
    config, _ = load_config({"TELEMETRYFLOW_ENDPOINT": "http://127.0.0.1:9",
                             "OTEL_BSP_EXPORT_TIMEOUT": "1200",
                             "OTEL_BLRP_EXPORT_TIMEOUT": "2400",
                             "TELEMETRYFLOW_TIMEOUT": "6"})
    factory = OTLPExporterFactory(config)
    create = {TRACES: factory.create_span_exporter, LOGS: factory.create_log_exporter}
    exporter = create[signal]()
    metrics = factory.create_metric_exporter()
    try:
        assert exporter._timeout == {TRACES: 1.2, LOGS: 2.4}[signal]
        assert metrics._timeout == 6.0
    finally:
        exporter.shutdown()
        metrics.shutdown()


# ----- the builder ---------------------------------------------------------------------------


def test_explicit_builder_settings_are_every_signals() -> None:
    """with_batch_settings()/with_timeout() in code win over the log-only variables read
    by with_auto_configuration(), as they do over the per-signal OTLP variables; a batch
    setting the code did not give keeps the log-only value."""
    environ = {"OTEL_BLRP_MAX_QUEUE_SIZE": "8", "OTEL_BLRP_SCHEDULE_DELAY": "50",
               "OTEL_BLRP_EXPORT_TIMEOUT": "500", "TELEMETRYFLOW_SERVICE_NAME": "b"}
    config = (TelemetryFlowBuilder().with_auto_configuration(environ)
              .with_batch_settings(max_queue_size=300).with_timeout(4).build_config())
    assert config.batch_for(LOGS) == signal_batches.BatchSettings(50, 512, 300)
    assert config.for_signal(LOGS).timeout == 4.0
    untouched = TelemetryFlowBuilder().with_auto_configuration(environ).build_config()
    assert untouched.batch_for(LOGS).max_queue_size == 8
    assert untouched.for_signal(LOGS).timeout == 0.5


# ----- the real handler's queues -------------------------------------------------------------


class RecordingLogExporter:
    """Keeps each batch of log records it is given, and when."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.arrived = threading.Event()

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.batches.append(list(batch))
        self.arrived.set()
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@pytest.fixture
def clients() -> Iterator[Callable[..., tuple[TelemetryFlowClient, InMemorySpanExporter, Any]]]:
    """Private clients (no global provider) from an environment, with in-memory exporters;
    shut down afterwards."""
    made: list[TelemetryFlowClient] = []

    def make(environ: Mapping[str, str], logs: Any = None
             ) -> tuple[TelemetryFlowClient, InMemorySpanExporter, Any]:
        config, reading = load_config({"TELEMETRYFLOW_SERVICE_NAME": "batches", **environ})
        assert reading.problems == []
        spans, logs = InMemorySpanExporter(), logs or InMemoryLogRecordExporter()
        client = TelemetryFlowClient(
            config, exporters=ExporterOverrides(spans, InMemoryMetricReader(), logs),
            set_global=False)
        made.append(client.initialize())
        return client, spans, logs

    yield make
    for client in made:
        client.shutdown(2.0)


def _spans(client: TelemetryFlowClient, count: int) -> None:
    for _ in range(count):
        with client.span("op"):
            pass


def test_handler_builds_each_queue_with_its_own_settings(
        clients: Callable[..., Any]) -> None:
    """The real handler's log queue gets the OTEL_BLRP_* values, its span queue the shared
    ones."""
    client, _spans_exporter, _logs = clients({
        "TELEMETRYFLOW_BATCH_TIMEOUT": "60000", "TELEMETRYFLOW_BATCH_MAX_SIZE": "100",
        "TELEMETRYFLOW_MAX_QUEUE_SIZE": "1000", "OTEL_BLRP_SCHEDULE_DELAY": "250",
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "3", "OTEL_BLRP_MAX_QUEUE_SIZE": "9"})
    handler = client._handler
    spans, logs = handler._span_queue, handler._log_queue
    assert (spans._max_queue_size, spans._max_batch_size, spans._delay) == (1000, 100, 60.0)
    assert (logs._max_queue_size, logs._max_batch_size, logs._delay) == (9, 3, 0.25)


def test_small_log_queue_drops_logs_and_names_its_variable_while_spans_keep_theirs(
        clients: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    """OTEL_BLRP_MAX_QUEUE_SIZE=2: of 7 log records 5 are dropped and counted, the warning
    names OTEL_BLRP_MAX_QUEUE_SIZE=2; all 7 spans are queued and exported."""
    client, spans, logs = clients({"TELEMETRYFLOW_BATCH_TIMEOUT": "60000",
                                   "OTEL_BLRP_MAX_QUEUE_SIZE": "2"})
    _spans(client, 7)
    for number in range(7):
        client.log_info(f"record {number}")
    status = client.get_status()
    assert (status["logs_queued"], status["logs_dropped"]) == (2, 5)
    assert (status["spans_queued"], status["spans_dropped"]) == (7, 0)
    assert client.flush(2.0)
    assert len(spans.get_finished_spans()) == 7 and len(logs.get_finished_logs()) == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "queue full" in line]
    assert len(warnings) == 1
    assert "dropping logs" in warnings[0] and "(OTEL_BLRP_MAX_QUEUE_SIZE=2)" in warnings[0]


def test_small_span_queue_names_the_shared_variable_while_logs_keep_theirs(
        clients: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The other way round: TELEMETRYFLOW_MAX_QUEUE_SIZE=2 drops spans and is named, while
    OTEL_BLRP_MAX_QUEUE_SIZE=100 keeps every log record."""
    client, _spans_exporter, _logs = clients({"TELEMETRYFLOW_BATCH_TIMEOUT": "60000",
                                              "TELEMETRYFLOW_MAX_QUEUE_SIZE": "2",
                                              "OTEL_BLRP_MAX_QUEUE_SIZE": "100"})
    _spans(client, 6)
    for number in range(6):
        client.log_info(f"record {number}")
    status = client.get_status()
    assert (status["spans_dropped"], status["logs_dropped"]) == (4, 0)
    [warning] = [line for line in capsys.readouterr().err.splitlines() if "queue full" in line]
    assert "dropping spans" in warning and "(TELEMETRYFLOW_MAX_QUEUE_SIZE=2)" in warning


def test_log_schedule_delay_sends_logs_while_spans_wait_for_theirs(
        clients: Callable[..., Any]) -> None:
    """OTEL_BLRP_SCHEDULE_DELAY=20 exports a log record on its own while spans, under a
    60 s TELEMETRYFLOW_BATCH_TIMEOUT, stay queued until a flush."""
    recorder = RecordingLogExporter()
    client, spans, _ = clients({"TELEMETRYFLOW_BATCH_TIMEOUT": "60000",
                                "OTEL_BLRP_SCHEDULE_DELAY": "20"}, recorder)
    _spans(client, 1)
    client.log_info("soon")
    assert recorder.arrived.wait(10.0)
    assert client.get_status()["spans_queued"] == 1 and spans.get_finished_spans() == ()
    assert client.flush(2.0) and len(spans.get_finished_spans()) == 1


def test_log_batch_size_splits_log_exports_only(clients: Callable[..., Any]) -> None:
    """OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=2: seven records go in batches of at most two, while
    seven spans go in one batch (512)."""
    recorder = RecordingLogExporter()
    client, spans, _ = clients({"TELEMETRYFLOW_BATCH_TIMEOUT": "60000",
                                "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "2"}, recorder)
    span_batches: list[int] = []
    original = spans.export
    spans.export = lambda batch: (span_batches.append(len(batch)), original(batch))[1]
    _spans(client, 7)
    for number in range(7):
        client.log_info(f"record {number}")
    assert client.flush(5.0)
    assert sum(len(batch) for batch in recorder.batches) == 7
    assert max(len(batch) for batch in recorder.batches) == 2
    assert span_batches == [7]


# ----- the drop warning of a bare queue ------------------------------------------------------


def test_batch_queue_names_the_variable_it_was_given() -> None:
    """A BatchQueue's full-queue warning names the variable it was built with (the shared
    one by default), and the shutdown's deadline when that is what dropped items."""
    said: list[str] = []
    original = _diagnostics.warn_every_minute
    try:
        _diagnostics.warn_every_minute = lambda key, message: said.append(message) or True
        for setting in ("OTEL_BLRP_MAX_QUEUE_SIZE", None):
            kwargs = {} if setting is None else {"queue_size_setting": setting}
            queue = BatchQueue(lambda batch: True, signal="logs", max_queue_size=1,
                               max_batch_size=10, schedule_delay_ms=60_000, **kwargs)
            queue.emit(1)
            queue.emit(2)
            queue.shutdown(1.0)
    finally:
        _diagnostics.warn_every_minute = original
    assert said == [
        "dropping logs (queue full); 1 dropped so far (OTEL_BLRP_MAX_QUEUE_SIZE=1)",
        "dropping logs (queue full); 1 dropped so far (TELEMETRYFLOW_MAX_QUEUE_SIZE=1)",
    ]


# ----- --info --------------------------------------------------------------------------------


def _rows(environ: Mapping[str, str]) -> dict[str, info.Setting]:
    report = info.collect(environ, catalog=(), contrib=[])
    return {setting.variable: setting for setting in report.settings}


def test_info_shows_log_rows_where_they_differ() -> None:
    """Set OTEL_BLRP_* variables are rows of their own saying what they replace for logs,
    and the shared rows say they no longer apply to logs; with none set there are none."""
    rows = _rows({"OTEL_BLRP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_QUEUE_SIZE": "500",
                  "OTEL_BLRP_SCHEDULE_DELAY": "100"})
    assert rows["OTEL_BLRP_MAX_QUEUE_SIZE"].value == "64"
    assert rows["OTEL_BLRP_MAX_QUEUE_SIZE"].source == "logs only, over TELEMETRYFLOW_MAX_QUEUE_SIZE"
    assert rows["OTEL_BLRP_SCHEDULE_DELAY"].source == "logs only, over TELEMETRYFLOW_BATCH_TIMEOUT"
    assert rows["TELEMETRYFLOW_MAX_QUEUE_SIZE"].value == "500"
    assert rows["TELEMETRYFLOW_MAX_QUEUE_SIZE"].source == (
        "OTEL_BSP_MAX_QUEUE_SIZE (not for logs: see below)")
    assert rows["TELEMETRYFLOW_BATCH_TIMEOUT"].source == "default (not for logs: see below)"
    assert rows["TELEMETRYFLOW_BATCH_MAX_SIZE"].source == "default"
    assert "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" not in rows
    assert not {var.name for var in BATCH_VARIABLES} & set(_rows({}))


def test_info_says_whether_an_export_timeout_is_in_effect() -> None:
    """An export timeout row says whether it or the exporter's timeout is the shorter, and
    the timeout row says which signals it no longer bounds."""
    rows = _rows({"OTEL_BSP_EXPORT_TIMEOUT": "2000", "OTEL_BLRP_EXPORT_TIMEOUT": "60000",
                  "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "3000"})
    assert rows["OTEL_BSP_EXPORT_TIMEOUT"].source == (
        "traces only: in effect, shorter than the traces export timeout (10 s, default)")
    assert rows["OTEL_BLRP_EXPORT_TIMEOUT"].source == (
        "logs only: unused, the logs export timeout (3 s, OTEL_EXPORTER_OTLP_LOGS_TIMEOUT) "
        "is shorter")
    assert rows["TELEMETRYFLOW_TIMEOUT"].source == "default (not for traces, logs: see below)"


def test_info_flags_a_malformed_log_value() -> None:
    """A malformed OTEL_BLRP_* value is a row marked invalid and one line of Warnings."""
    report = info.collect({"OTEL_BLRP_MAX_QUEUE_SIZE": "-1"}, catalog=(), contrib=[])
    row = next(s for s in report.settings if s.variable == "OTEL_BLRP_MAX_QUEUE_SIZE")
    assert row.source == "logs only (invalid: see Warnings)"
    assert [line for line in report.problems if "OTEL_BLRP_MAX_QUEUE_SIZE" in line] == [
        "OTEL_BLRP_MAX_QUEUE_SIZE='-1': expected a whole number from 1 to 2147483647 "
        "(using the default)"]
    assert "OTEL_BLRP_MAX_QUEUE_SIZE" in info.render_text(report)
    assert "not supported" not in info.render_json(report)

