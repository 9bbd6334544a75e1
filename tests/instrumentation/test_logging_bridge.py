"""The stdlib logging bridge, the correlation record factory and the process-level install,
against the real SDK with in-memory exporters (and, for what only a fresh interpreter can
show, subprocesses)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits, LogRecordProcessor
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.infrastructure.batching import BatchLogProcessor, BatchQueue
from telemetryflow_bootstrap.instrumentation import (
    _log_records,
    _process_level,
    contrib,
    registry,
    stdlib_logging,
)
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

REPO = Path(__file__).resolve().parents[2]


class PaymentError(Exception):
    """A program's own exception type (fully qualified in exception.type)."""


class _Collect(logging.Handler):
    """A program's handler: remembers what it was given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_provider() -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


@pytest.fixture
def tracer() -> object:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return provider.get_tracer("test")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Whatever a test installs or configures, the logging module is as it was after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogRecordFactory(), logging.basicConfig,
             logging.Logger.callHandlers)
    try:
        yield
    finally:
        stdlib_logging._uninstall()
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                root.removeHandler(handler)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.setLogRecordFactory(saved[2])
        logging.basicConfig = saved[3]
        logging.Logger.callHandlers = saved[4]
        _diagnostics.set_level("warn")
        _diagnostics.reset_for_tests()


@pytest.fixture
def exported(log_provider, restore_logging) -> InMemoryLogRecordExporter:
    """The bridge installed at level DEBUG; the exporter that receives its records."""
    provider, exporter = log_provider
    stdlib_logging.install_bridge(provider, "debug")
    return exporter


def _logger(name: str, level: int = logging.DEBUG) -> logging.Logger:
    logger = logging.getLogger(f"tfbridge.{name}")
    logger.setLevel(level)
    logger.propagate = True
    return logger


def _only(exporter: InMemoryLogRecordExporter):
    records = exporter.get_finished_logs()
    assert len(records) == 1, [r.log_record.body for r in records]
    return records[0]


# ----- conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(("levelno", "number", "text"), [
    (logging.DEBUG, SeverityNumber.DEBUG, "DEBUG"),
    (logging.INFO, SeverityNumber.INFO, "INFO"),
    (logging.WARNING, SeverityNumber.WARN, "WARNING"),
    (logging.ERROR, SeverityNumber.ERROR, "ERROR"),
    (logging.CRITICAL, SeverityNumber.FATAL, "CRITICAL"),
    (25, SeverityNumber.INFO3, "NOTICE"),
    (5, SeverityNumber.TRACE3, "TRACE"),
    (70, SeverityNumber.FATAL4, "Level 70"),
])
def test_severity_from_standard_and_custom_levels(log_provider, restore_logging, monkeypatch,
                                                  levelno, number, text):
    """Standard levels map to their OpenTelemetry severities; custom levels land inside the
    nearest band and keep their own name as severity text."""
    monkeypatch.setattr(logging, "_levelToName", dict(logging._levelToName))
    monkeypatch.setattr(logging, "_nameToLevel", dict(logging._nameToLevel))
    if text in ("NOTICE", "TRACE"):
        logging.addLevelName(levelno, text)
    provider, exporter = log_provider
    stdlib_logging.install_bridge(provider, 1)
    _logger("severity", 1).log(levelno, "at some level")
    record = _only(exporter).log_record
    assert record.severity_number == number
    assert record.severity_text == text


def test_body_is_the_formatted_message_and_mappings_stay_structured(exported):
    """The body is the %-formatted message; a dict logged without arguments stays a map and
    another object logged as the message becomes its text."""
    logger = _logger("body")
    logger.info("order %s for %s", 42, "eu")
    logger.info({"order": 42, "items": [1, 2], "when": object})
    logger.warning(PaymentError("card declined"))
    bodies = [r.log_record.body for r in exported.get_finished_logs()]
    assert bodies[0] == "order 42 for eu"
    assert bodies[1] == {"order": 42, "items": [1, 2], "when": str(object)}
    assert bodies[2] == "card declined"


def test_code_location_thread_and_scope(exported):
    """Function, file and line of the logging call, the thread, a nanosecond timestamp, and
    the Python logger's name as the OpenTelemetry logger (scope) name."""
    line = sys._getframe().f_lineno + 1
    _logger("location").info("here")
    record = _only(exported)
    attributes = record.log_record.attributes
    assert attributes["code.function.name"] == "test_code_location_thread_and_scope"
    assert attributes["code.file.path"] == __file__
    assert attributes["code.line.number"] == line
    assert attributes["thread.id"] == threading.get_ident()
    assert attributes["thread.name"] == threading.current_thread().name
    assert record.instrumentation_scope.name == "tfbridge.location"
    assert record.log_record.timestamp > 1_600_000_000 * 10**9


def test_exception_info_becomes_exception_attributes(exported):
    """logging.exception records exception.type (qualified for the program's own types),
    exception.message and the full stack trace; the body stays the message."""
    try:
        raise PaymentError("card declined")
    except PaymentError:
        _logger("exception").exception("payment failed")
    record = _only(exported).log_record
    assert record.body == "payment failed"
    assert record.severity_number == SeverityNumber.ERROR
    assert record.attributes["exception.type"] == f"{__name__}.PaymentError"
    assert record.attributes["exception.message"] == "card declined"
    stacktrace = record.attributes["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert 'raise PaymentError("card declined")' in stacktrace


def test_builtin_exception_type_is_unqualified_and_stack_info_is_kept(exported):
    """A builtin exception is named without 'builtins.'; stack_info=True becomes
    code.stacktrace; logging.exception outside an except adds no exception attributes."""
    logger = _logger("builtin")
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup", stack_info=True)
    logger.exception("no exception being handled")
    first, second = (r.log_record.attributes for r in exported.get_finished_logs())
    assert first["exception.type"] == "KeyError"
    assert first["exception.message"] == "'missing'"
    assert first["code.stacktrace"].startswith("Stack (most recent call last):")
    assert "exception.type" not in second


def test_extra_fields_of_simple_types_become_attributes(exported):
    """extra= values that are str/bool/int/float become attributes under their own names;
    other values, private names and the standard LogRecord fields do not."""
    _logger("extra").info("paid", extra={"order.id": 42, "amount": 12.5, "vip": True,
                                         "shop": "eu", "items": [1, 2], "_private": "x",
                                         "customer": object()})
    attributes = _only(exported).log_record.attributes
    assert attributes["order.id"] == 42
    assert attributes["amount"] == 12.5
    assert attributes["vip"] is True
    assert attributes["shop"] == "eu"
    for absent in ("items", "_private", "customer", "msg", "args", "levelname", "otelTraceID",
                   "process", "created"):
        assert absent not in attributes


def test_trace_and_span_ids_of_the_current_span(exported, tracer):
    """A record logged inside a span carries that span's trace and span ids; one logged
    outside carries none."""
    logger = _logger("trace")
    with tracer.start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = (r.log_record for r in exported.get_finished_logs())
    context = span.get_span_context()
    assert (inside.trace_id, inside.span_id) == (context.trace_id, context.span_id)
    assert inside.trace_flags.sampled
    assert (outside.trace_id, outside.span_id) == (0, 0)


def test_non_formattable_message_is_exported_as_its_template(exported, capsys):
    """Bad %-arguments do not break the program or the export: the program's handlers report
    the error as usual and the record is exported with its template as body."""
    logging.getLogger().handlers[:] = [logging.StreamHandler(sys.stderr)]
    _logger("badargs").warning("%d items", "many")
    assert _only(exported).log_record.body == "%d items"
    assert "--- Logging error ---" in capsys.readouterr().err


class _Unprintable:
    """A message object whose text cannot be had."""

    def __str__(self) -> str:
        raise RuntimeError("nope")


def test_an_unprintable_message_is_exported_with_a_placeholder_and_nothing_said(exported,
                                                                                capsys):
    """A message (or a value inside a mapping message) whose __str__ raises is exported with
    a placeholder, adding nothing to stderr but the program's own handler's report."""
    logging.getLogger().handlers[:] = [logging.StreamHandler(sys.stderr)]
    _logger("unprintable").warning(_Unprintable())
    _logger("unprintable").warning({"user": _Unprintable(), _Unprintable(): 1})
    bodies = [r.log_record.body for r in exported.get_finished_logs()]
    assert bodies == ["<unprintable _Unprintable>",
                      {"user": "<unprintable _Unprintable>", "<unprintable _Unprintable>": 1}]
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1
    assert not [line for line in err.splitlines() if line.startswith("telemetryflow")]
    assert _diagnostics.recorded() == []


def _limited(max_attributes: int, ours_alone: bool):
    """A provider with an attribute limit whose chain is ours alone (the direct path) or
    ours plus an in-memory exporter (the SDK's emit), and what our queue holds."""
    queue = BatchQueue(lambda batch: True, signal="logs", max_queue_size=100,
                       max_batch_size=100, schedule_delay_ms=600_000)
    provider = LoggerProvider(shutdown_on_exit=False,
                              log_record_limits=LogRecordLimits(max_attributes=max_attributes))
    provider.add_log_record_processor(BatchLogProcessor(queue))
    if not ours_alone:
        provider.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
    return provider, queue._queue


@pytest.mark.parametrize("ours_alone", [True, False], ids=["direct", "sdk-emit"])
def test_extras_past_the_limit_keep_ours_and_the_first_ones_quietly(restore_logging,
                                                                   ours_alone):
    """Past the attribute limit our code/thread/exception attributes and the record's first
    extras (in the order given) are kept, the rest counted as dropped on the direct path;
    neither the SDK's warnings nor its per-attribute log records appear, and one
    telemetryflow warning covers every such record."""
    provider, queued = _limited(10, ours_alone)
    stdlib_logging.install_bridge(provider, "debug")
    sdk_logs = _Collect()
    logging.getLogger("opentelemetry").addHandler(sdk_logs)
    extra = {f"k{i}": i for i in (7, 3, 11, 0, 5, 9, 1)}  # not sorted: the given order counts
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                try:
                    raise PaymentError("declined")
                except PaymentError:
                    _logger("limits").exception("many", extra=extra)
    finally:
        logging.getLogger("opentelemetry").removeHandler(sdk_logs)
    assert caught == [] and sdk_logs.records == []
    assert sum("more than 10 attributes" in m for _, m in _diagnostics.recorded()) == 1
    assert len(queued) == 2
    for record in queued:
        attributes = record.log_record.attributes
        assert list(attributes)[:8] == [
            "code.function.name", "code.file.path", "code.line.number", "thread.id",
            "thread.name", "exception.type", "exception.message", "exception.stacktrace"]
        assert list(attributes)[8:] == ["k7", "k3"]
        assert record.dropped_attributes == (5 if ours_alone else 0)


def test_a_limit_under_our_own_attributes_keeps_the_first_of_ours(restore_logging):
    """Even a limit smaller than our own attributes is applied here, quietly and counted,
    never left to the SDK."""
    provider, queued = _limited(2, ours_alone=True)
    stdlib_logging.install_bridge(provider, "debug")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _logger("tiny").info("few", extra={"shop": "eu"})
    (record,) = queued
    assert list(record.log_record.attributes) == ["code.function.name", "code.file.path"]
    assert record.dropped_attributes == 4


# ----- what is exported ------------------------------------------------------------------------


def test_export_level_is_a_floor_on_top_of_the_program_levels(log_provider, restore_logging):
    """Records under the export level are not exported, and neither are records the
    program's own logger levels filter out (we never lower a level)."""
    provider, exporter = log_provider
    stdlib_logging.install_bridge(provider, "warning")
    _logger("threshold").info("below the export level")
    _logger("threshold").warning("at the export level")
    _logger("quiet", logging.ERROR).warning("below the program's level")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["at the export level"]


def test_only_records_that_reach_the_root_are_exported(exported):
    """A logger with propagate=False keeps its records to its own handlers, exactly as with
    a root handler; its children's records stop there too."""
    logger = _logger("private")
    own = _Collect()
    logger.addHandler(own)
    logger.propagate = False
    try:
        logger.info("kept private")
        logging.getLogger("tfbridge.private.child").info("child kept private")
    finally:
        logger.removeHandler(own)
        logger.propagate = True
    assert [r.getMessage() for r in own.records] == ["kept private", "child kept private"]
    assert exported.get_finished_logs() == ()


def test_each_logger_name_gets_one_cached_logger_and_the_cache_is_bounded(
        log_provider, restore_logging, monkeypatch):
    """One OpenTelemetry logger per Python logger name, reused; past the bound further names
    share one overflow scope, announced once."""
    monkeypatch.setattr(_log_records, "MAX_LOGGERS", 2)
    provider, exporter = log_provider
    bridge = stdlib_logging.install_bridge(provider, "debug")
    for name in ("a", "b", "a", "c", "d"):
        _logger(f"bound.{name}").info(name)
    scopes = [r.instrumentation_scope.name for r in exporter.get_finished_logs()]
    overflow = stdlib_logging._OVERFLOW_SCOPE
    assert scopes == ["tfbridge.bound.a", "tfbridge.bound.b", "tfbridge.bound.a", overflow,
                      overflow]
    assert len(bridge._loggers) == 3
    assert sum("distinct logger names" in m for _, m in _diagnostics.recorded()) == 1


def test_sdk_records_on_the_export_thread_are_neither_exported_nor_shown(exported):
    """The exporter's own warnings on our export thread go nowhere (no feedback loop, no flood
    in the program's output); the program's records on that thread are still exported."""
    program = _Collect()
    logging.getLogger().addHandler(program)

    def export_thread_work() -> None:
        logging.getLogger("opentelemetry.exporter.otlp").warning("Transient error, retrying")
        logging.getLogger("grpc._channel").warning("channel trouble")
        _logger("worker").warning("a program record on that thread")

    worker = threading.Thread(target=export_thread_work, name="telemetryflow-logs")
    worker.start()
    worker.join()
    assert [r.log_record.body for r in exported.get_finished_logs()] == [
        "a program record on that thread"]
    assert [r.getMessage() for r in program.records] == ["a program record on that thread"]


def test_sdk_records_on_the_export_thread_are_shown_with_debug_diagnostics(exported):
    """With TELEMETRYFLOW_LOG_LEVEL=debug the exporter's own records reach the program's
    handlers (to debug an export), but are still not exported."""
    _diagnostics.set_level("debug")
    program = _Collect()
    logging.getLogger().addHandler(program)
    worker = threading.Thread(name="telemetryflow-spans", target=lambda: logging.getLogger(
        "opentelemetry.exporter.otlp").warning("Transient error, retrying"))
    worker.start()
    worker.join()
    assert [r.getMessage() for r in program.records] == ["Transient error, retrying"]
    assert exported.get_finished_logs() == ()


def test_sdk_records_on_program_threads_are_exported(exported):
    """An OpenTelemetry warning the program's own code triggers (on its thread) is the
    program's business: shown and exported like any record."""
    logging.getLogger("opentelemetry.trace").warning("Overriding of current TracerProvider")
    assert _only(exported).instrumentation_scope.name == "opentelemetry.trace"


def test_nothing_is_exported_while_instrumentation_is_suppressed(exported):
    """Records logged while instrumentation is suppressed (our exports run so) are not
    exported; the program's handlers still get them."""
    program = _Collect()
    logging.getLogger().addHandler(program)
    with suppress_instrumentation():
        _logger("suppressed").warning("during an export")
    assert exported.get_finished_logs() == ()
    assert [r.getMessage() for r in program.records] == ["during an export"]


def test_a_record_logged_during_our_export_is_not_exported_again(log_provider, restore_logging):
    """Re-entrancy: a record logged from inside the export (an SDK warning) reaches the
    program's handlers but is not exported, so one record never turns into a loop."""
    provider, exporter = log_provider

    class LoggingProcessor(LogRecordProcessor):
        def on_emit(self, log_record):
            logging.getLogger("tfbridge.inner").warning("from inside the export")

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    provider.add_log_record_processor(LoggingProcessor())
    stdlib_logging.install_bridge(provider, "debug")
    program = _Collect()
    logging.getLogger().addHandler(program)
    _logger("outer").warning("outer")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["outer"]
    assert [r.getMessage() for r in program.records] == ["outer", "from inside the export"]


def test_no_export_after_the_sdk_shut_down(log_provider, restore_logging):
    """Once the SDK has shut down (interpreter exit), records are no longer handed to it."""
    provider, exporter = log_provider
    sdk = types.SimpleNamespace(initialized=True)
    stdlib_logging.install_bridge(provider, "debug", sdk=sdk)
    _logger("late").info("before")
    sdk.initialized = False
    _logger("late").info("after")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["before"]


def test_a_failing_provider_never_raises_into_the_program(restore_logging):
    """An export that raises is reported once and the logging call returns normally."""

    class BrokenProvider:
        def get_logger(self, name):
            raise RuntimeError("provider broken")

    stdlib_logging.install_bridge(BrokenProvider(), "debug")
    _logger("broken").info("one")
    _logger("broken").info("two")
    messages = [m for _, m in _diagnostics.recorded() if "could not export a log record" in m]
    assert len(messages) == 1 and "provider broken" in messages[0]


# ----- transparency to the program ------------------------------------------------------------


def test_a_library_wrapping_call_handlers_after_us_gets_no_double_export(log_provider,
                                                                        restore_logging):
    """When another library (Sentry does this) wraps Logger.callHandlers after us, installing
    again does not stack a second wrapper, and uninstalling leaves theirs working."""
    provider, exporter = log_provider
    stdlib_logging.install_bridge(provider, "debug")
    ours = logging.Logger.callHandlers
    seen = []

    def theirs(self, record):
        seen.append(record.getMessage())
        ours(self, record)

    logging.Logger.callHandlers = theirs
    stdlib_logging.install_bridge(provider, "debug")
    _logger("sentry").info("once")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["once"]
    stdlib_logging._uninstall()
    assert logging.Logger.callHandlers is theirs
    _logger("sentry").info("after uninstall")
    assert seen == ["once", "after uninstall"]
    assert len(exporter.get_finished_logs()) == 1
    logging.Logger.callHandlers = ours  # "they" go away: now ours can be taken out too
    stdlib_logging._uninstall()
    assert stdlib_logging._our_call_handlers is None


def test_root_handlers_and_has_handlers_are_untouched(log_provider, restore_logging):
    """Installing the bridge adds no handler anywhere: root.handlers and hasHandlers() read
    exactly as before."""
    root = logging.getLogger()
    before = root.handlers[:]
    fresh = logging.getLogger("tfbridge.fresh")
    had = fresh.hasHandlers()
    stdlib_logging.install_bridge(log_provider[0], "debug")
    assert root.handlers == before
    assert fresh.hasHandlers() == had


def test_basic_config_works_as_without_us_including_force(exported):
    """basicConfig(level=, format=) configures the root as usual after the bridge is in,
    force=True replaces the handler, and records keep being exported throughout."""
    root = logging.getLogger()
    root.handlers[:] = []
    first, second = io.StringIO(), io.StringIO()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s|%(message)s", stream=first)
    assert len(root.handlers) == 1 and root.level == logging.INFO
    logging.getLogger("tfbridge.basic").info("one")
    logging.basicConfig(format="second:%(message)s", stream=second)  # no-op: root configured
    logging.basicConfig(format="forced:%(message)s", stream=second, force=True)
    logging.getLogger("tfbridge.basic").info("two")
    assert first.getvalue() == "INFO|one\n"
    assert second.getvalue() == "forced:two\n"
    assert [r.log_record.body for r in exported.get_finished_logs()] == ["one", "two"]


_SUBPROCESS_TEMPLATE = """\
import logging, sys
if sys.argv[1] == "bridge":
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (InMemoryLogRecordExporter,
                                                SimpleLogRecordProcessor)
    from telemetryflow_bootstrap.instrumentation import stdlib_logging
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    stdlib_logging.install_bridge(provider, "debug")
    stdlib_logging.install_record_factory("svc")
{program}
if sys.argv[1] == "bridge":
    print("exported:", [r.log_record.body for r in exporter.get_finished_logs()])
"""


def _run_both(program: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    code = _SUBPROCESS_TEMPLATE.format(program=textwrap.dedent(program))
    return tuple(subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                                text=True, timeout=60, cwd=REPO) for mode in ("plain", "bridge"))


@pytest.mark.parametrize(("program", "stderr", "bodies"), [
    ("logging.getLogger('app').warning('x')", "x\n", ["x"]),
    ("logging.getLogger('a').info('hidden'); logging.getLogger('a.b').error('shown')",
     "shown\n", ["shown"]),
    ("logging.warning('x')", "WARNING:root:x\n", ["x"]),  # module functions: basicConfig()
    ("print(logging.getLogger().hasHandlers(), len(logging.getLogger().handlers))\n"
     "logging.getLogger('lib').warning('from a library')", "from a library\n",
     ["from a library"]),
], ids=["warning", "levels", "has-handlers", "module-function"])
def test_last_resort_output_is_unchanged_for_unconfigured_programs(program, stderr, bodies):
    """A program that never configured logging prints its warnings on stderr via
    logging.lastResort (or the implicit basicConfig of logging.warning) exactly as without
    the bridge, and they are exported too."""
    plain, bridged = _run_both(program)
    assert plain.returncode == bridged.returncode == 0, bridged.stderr
    assert plain.stderr == bridged.stderr == stderr
    assert bridged.stdout == plain.stdout + f"exported: {bodies!r}\n"


@pytest.mark.parametrize("program", [
    """\
    logging.basicConfig(level=logging.INFO, format="%(levelname)s|%(name)s|%(message)s")
    logging.getLogger("app").info("configured")
    print(len(logging.root.handlers), logging.root.level)
    """,
    """\
    logging.basicConfig()
    logging.warning("first")
    logging.basicConfig(format="again %(message)s", force=True)
    logging.warning("second")
    print(len(logging.root.handlers))
    """,
    """\
    import logging.config
    logging.config.dictConfig({"version": 1, "root": {"level": "DEBUG", "handlers": ["e"]},
        "handlers": {"e": {"class": "logging.StreamHandler", "formatter": "f"}},
        "formatters": {"f": {"format": "dict %(levelname)s %(message)s"}}})
    logging.debug("from dictConfig")
    print(len(logging.root.handlers))
    """,
], ids=["basicConfig", "force", "dictConfig"])
def test_configured_output_is_unchanged(program):
    """basicConfig (with level and format, twice, with force=True) and dictConfig print and
    report exactly what they do without the bridge."""
    plain, bridged = _run_both(program)
    assert plain.returncode == bridged.returncode == 0, bridged.stderr
    assert plain.stderr == bridged.stderr
    assert plain.stderr.strip()
    assert bridged.stdout.startswith(plain.stdout)


@pytest.mark.parametrize("program", [
    """\
    import logging.config
    logging.basicConfig()
    logging.getLogger("app").warning("before")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": ["e"]},
        "handlers": {"e": {"class": "logging.StreamHandler"}}})
    logging.getLogger("app").warning("after")
    """,
    """\
    import io, logging.config
    logging.basicConfig()
    logging.getLogger("app").warning("before")
    logging.config.fileConfig(io.StringIO(
        "[loggers]\\nkeys=root\\n[handlers]\\nkeys=e\\n[formatters]\\nkeys=\\n"
        "[logger_root]\\nlevel=INFO\\nhandlers=e\\n"
        "[handler_e]\\nclass=StreamHandler\\nargs=(sys.stderr,)\\n"),
        disable_existing_loggers=False)
    logging.getLogger("app").warning("after")
    """,
    """\
    logging.basicConfig()
    logging.getLogger("app").warning("before")
    logging.shutdown()
    logging.getLogger("app").warning("after")
    """,
], ids=["dictConfig", "fileConfig", "shutdown"])
def test_export_goes_on_after_logging_closes_its_handlers(program):
    """dictConfig, fileConfig and logging.shutdown() close every handler the logging
    module knows of, the bridge included: records logged after them are still exported, and
    the output is what it is without the bridge."""
    plain, bridged = _run_both(program)
    assert plain.returncode == bridged.returncode == 0, bridged.stderr
    assert plain.stderr == bridged.stderr
    assert plain.stderr.startswith("WARNING:app:before\n") and plain.stderr.endswith("after\n")
    assert bridged.stdout == plain.stdout + "exported: ['before', 'after']\n"


# ----- correlation fields ----------------------------------------------------------------------


def test_correlation_fields_in_a_real_formatter(restore_logging, tracer):
    """%(otelTraceID)s, %(otelSpanID)s, %(otelServiceName)s and %(otelTraceSampled)s work in
    any formatter: the current span's ids inside a span, "0"/False outside."""
    stdlib_logging.install_record_factory("checkout")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(
        "%(otelTraceID)s %(otelSpanID)s %(otelServiceName)s %(otelTraceSampled)s %(message)s"))
    logger = _logger("formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with tracer.start_as_current_span("work") as span:
            logger.info("in")
            logger.info("in again")
        logger.info("out")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    context = span.get_span_context()
    inside = f"{context.trace_id:032x} {context.span_id:016x} checkout True"
    assert stream.getvalue().splitlines() == [
        f"{inside} in", f"{inside} in again", "0 0 checkout False out"]


def test_record_factory_chains_to_the_existing_one_and_is_not_stacked(restore_logging):
    """Our factory calls the one installed before it (the program's fields survive), and
    installing twice does not wrap ours twice."""
    original = logging.getLogRecordFactory()

    def program_factory(*args, **kwargs):
        record = original(*args, **kwargs)
        record.tenant = "acme"
        return record

    logging.setLogRecordFactory(program_factory)
    stdlib_logging.install_record_factory("svc")
    stdlib_logging.install_record_factory("svc2")
    factory = logging.getLogRecordFactory()
    assert factory._telemetryflow_previous is program_factory
    record = factory("n", logging.INFO, __file__, 1, "m", (), None)
    assert (record.tenant, record.otelServiceName, record.otelTraceID) == ("acme", "svc2", "0")


def test_correlated_basic_config_format(restore_logging, tracer):
    """With TELEMETRYFLOW_LOG_CORRELATION, basicConfig() without a format shows the trace
    ids (in % and { styles); an explicit format is left alone."""
    stdlib_logging.install_record_factory("svc")
    stdlib_logging.install_correlated_basic_config()
    root = logging.getLogger()
    outputs = []
    for kwargs in ({}, {"style": "{"}, {"format": "%(message)s only"}):
        root.handlers[:] = []
        stream = io.StringIO()
        logging.basicConfig(stream=stream, level=logging.INFO, **kwargs)
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("tfbridge.corr").info("hello")
        context = span.get_span_context()
        outputs.append((stream.getvalue(), f"{context.trace_id:032x}", f"{context.span_id:016x}"))
    for output, trace_id, span_id in outputs[:2]:
        assert output == (f"INFO:tfbridge.corr:hello trace_id={trace_id} span_id={span_id} "
                          "service.name=svc trace_sampled=True\n")
    assert outputs[2][0] == "hello only\n"


# ----- process-level install ------------------------------------------------------------------


def _context(provider=None, meter=None, **config) -> PatchContext:
    return PatchContext(tracer=None, meter=meter, logger_provider=provider,
                        config=TelemetryConfig(service_name="svc", **config), handler=None)


def test_process_level_install_names_and_pieces(log_provider, restore_logging):
    """install() puts in the bridge at the configured export level and the record factory,
    and names what it installed."""
    provider, exporter = log_provider
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    names = _process_level.install(_context(provider, meter, log_export_level="warning"))
    assert names == ["logging", "runtime_metrics"]
    assert registry.status()["logging"] == ("applied", "level warning")
    assert registry.status()["runtime_metrics"][0] == "applied"
    _logger("pl").info("below")
    _logger("pl").error("above")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["above"]
    assert logging.getLogRecordFactory()("n", 20, "f", 1, "m", (), None).otelServiceName == "svc"


def test_process_level_without_logs_installs_the_factory_and_noise_filter(restore_logging):
    """With logs disabled (no logger provider) nothing is exported and 'logging' is not
    reported installed, but the correlation fields are there and the exporter's retry
    warnings on our export threads still stay out of the program's output."""
    assert _process_level.install(_context(runtime_metrics=False)) == []
    assert stdlib_logging._bridge is None
    assert logging.getLogRecordFactory()("n", 20, "f", 1, "m", (), None).otelTraceID == "0"
    program = _Collect()
    logging.getLogger().addHandler(program)
    worker = threading.Thread(name="telemetryflow-spans", target=lambda: logging.getLogger(
        "opentelemetry.exporter.otlp").warning("Transient error, retrying"))
    worker.start()
    worker.join()
    assert program.records == []


def test_process_level_respects_disabled_names(log_provider, restore_logging):
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=logging leaves the logging module untouched."""
    factory, call_handlers = logging.getLogRecordFactory(), logging.Logger.callHandlers
    context = _context(log_provider[0], None, disabled_instrumentations=("logging",),
                       log_correlation=True)
    assert _process_level.install(context) == []
    assert logging.getLogRecordFactory() is factory
    assert logging.Logger.callHandlers is call_handlers
    assert registry.status()["logging"][0] == "disabled"


def test_process_level_steps_aside_for_a_preferred_contrib_instrumentor(
        log_provider, restore_logging, monkeypatch):
    """TELEMETRYFLOW_PREFER_CONTRIB=logging with a contrib logging instrumentor installed
    leaves the logging module to it (never two bridges)."""
    monkeypatch.setattr(contrib, "preferred", lambda config: frozenset({"logging"}))
    call_handlers = logging.Logger.callHandlers
    context = _context(log_provider[0], None, prefer_contrib=("logging",))
    assert _process_level.install(context) == []
    assert logging.Logger.callHandlers is call_handlers
    assert registry.status()["logging"][0] == "skipped"


def test_process_level_never_raises(restore_logging):
    """A context it cannot use is reported, not raised."""
    assert _process_level.install(object()) == []
    assert any("process-level instrumentation skipped" in m for _, m in _diagnostics.recorded())
