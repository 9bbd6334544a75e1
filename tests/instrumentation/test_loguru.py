"""loguru's messages as OpenTelemetry log records, against the real loguru and the real SDK
with in-memory exporters (and, for the registry hook, a fresh interpreter)."""

from __future__ import annotations

import inspect
import json
import logging
import subprocess
import sys
import textwrap
import threading
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import loguru
import pytest
from loguru import logger
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.infrastructure.batching import BatchLogProcessor, BatchQueue
from telemetryflow_bootstrap.instrumentation import loguru as ours
from telemetryflow_bootstrap.instrumentation import registry, stdlib_logging
from telemetryflow_bootstrap.instrumentation.registry import Instrumentation, PatchContext

REPO = Path(__file__).resolve().parents[2]
LINE_FORMAT = "{level}|{name}:{function}:{line}|{message}|{extra}\n{exception}"
ORIGINAL_LOG = type(logger)._log


class PaymentError(Exception):
    """A program's own exception type (fully qualified in exception.type)."""


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
def clean() -> Iterator[None]:
    """loguru without sinks, and loguru and logging as they were after the test."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.Logger.callHandlers)
    logger.remove()
    try:
        yield
    finally:
        ours._uninstall()
        stdlib_logging._uninstall()
        logger.remove()
        logger.enable("")
        logger.configure(extra={}, patcher=None)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.Logger.callHandlers = saved[2]
        _diagnostics.set_level("warn")
        _diagnostics.reset_for_tests()


@pytest.fixture
def exported(log_provider, clean) -> InMemoryLogRecordExporter:
    """Our export installed at level DEBUG; the exporter that receives its records."""
    provider, exporter = log_provider
    ours.install(loguru, provider, "debug")
    return exporter


def _lines(level: str | int = "TRACE", fmt: str = LINE_FORMAT) -> list[str]:
    """A sink of the program's: the lines loguru writes to it."""
    lines: list[str] = []
    logger.add(lines.append, level=level, format=fmt)
    return lines


def _records(exporter: InMemoryLogRecordExporter):
    return [r.log_record for r in exporter.get_finished_logs()]


def _bodies(exporter: InMemoryLogRecordExporter) -> list[object]:
    return [r.body for r in _records(exporter)]


def _level(name: str, no: int) -> None:
    """A custom level (loguru cannot remove one, so each name is made once per process)."""
    try:
        logger.level(name)
    except ValueError:
        logger.level(name, no=no)


# ----- conversion ----------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "number", "text"), [
    ("TRACE", SeverityNumber.TRACE3, "TRACE"),
    ("DEBUG", SeverityNumber.DEBUG, "DEBUG"),
    ("INFO", SeverityNumber.INFO, "INFO"),
    ("SUCCESS", SeverityNumber.INFO3, "SUCCESS"),
    ("WARNING", SeverityNumber.WARN, "WARNING"),
    ("ERROR", SeverityNumber.ERROR, "ERROR"),
    ("CRITICAL", SeverityNumber.FATAL, "CRITICAL"),
    ("AUDIT", SeverityNumber.ERROR3, "AUDIT"),
    (33, SeverityNumber.WARN2, "Level 33"),
    (70, SeverityNumber.FATAL4, "Level 70"),
])
def test_severity_from_loguru_levels_and_custom_levels(log_provider, clean, level, number,
                                                       text):
    """loguru's levels map to OpenTelemetry severities by their number (SUCCESS inside the
    INFO band, TRACE inside TRACE's), custom levels and bare numbers too, keeping their name
    as severity text."""
    _level("AUDIT", 45)
    provider, exporter = log_provider
    ours.install(loguru, provider, 1)
    logger.log(level, "at some level")
    (record,) = _records(exporter)
    assert (record.severity_number, record.severity_text) == (number, text)


def test_body_is_the_formatted_message_only(exported):
    """The body is the message with its arguments applied and colour markup stripped, not
    the line the program's sink writes with level and location."""
    lines = _lines(fmt="{time} {level} {name} {message}")
    logger.info("order {} for {shop}", 42, shop="eu")
    logger.opt(colors=True).warning("<red>declined</red> {}", "card")
    logger.opt(raw=True).info("raw text\n")
    assert _bodies(exported) == ["order 42 for eu", "declined card", "raw text\n"]
    assert lines[0].endswith(" INFO tests.instrumentation.test_loguru order 42 for eu\n")


def _log_from_helper() -> None:
    logger.opt(depth=1).info("from the helper's caller")


def test_code_location_thread_timestamp_and_scope(exported):
    """Function, file and line of the logging call (opt(depth=) honoured), the thread, the
    record's own time to the microsecond, and the logging module's name as scope."""
    seen: list[dict] = []
    logger.add(lambda message: seen.append(message.record))
    line = sys._getframe().f_lineno + 1
    logger.info("here")
    _log_from_helper()
    first, second = exported.get_finished_logs()
    attributes = first.log_record.attributes
    assert attributes["code.function.name"] == "test_code_location_thread_timestamp_and_scope"
    assert attributes["code.file.path"] == __file__
    assert attributes["code.line.number"] == line
    assert second.log_record.attributes["code.line.number"] == line + 1
    assert attributes["thread.id"] == threading.get_ident()
    assert attributes["thread.name"] == threading.current_thread().name
    assert first.instrumentation_scope.name == __name__
    time = seen[0]["time"]
    assert first.log_record.timestamp == (int(time.timestamp()) * 10**6 + time.microsecond) * 1000


def test_exceptions_become_exception_attributes(exported):
    """logger.exception, opt(exception=...) and logger.catch record exception.type
    (qualified for the program's own types), exception.message and a plain Python stack
    trace; logger.exception outside an except adds none."""
    try:
        raise PaymentError("card declined")
    except PaymentError:
        logger.exception("payment failed")
    logger.opt(exception=KeyError("missing")).error("lookup")
    logger.exception("no exception being handled")

    @logger.catch
    def job() -> None:
        raise ValueError("bad input")

    job()
    payment, lookup, nothing, caught = _records(exported)
    assert payment.body == "payment failed"
    assert payment.severity_number == SeverityNumber.ERROR
    assert payment.attributes["exception.type"] == f"{__name__}.PaymentError"
    assert payment.attributes["exception.message"] == "card declined"
    stacktrace = payment.attributes["exception.stacktrace"]
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert 'raise PaymentError("card declined")' in stacktrace
    assert lookup.attributes["exception.type"] == "KeyError"
    assert lookup.attributes["exception.message"] == "'missing'"
    assert not [key for key in nothing.attributes if key.startswith("exception.")]
    assert caught.attributes["exception.type"] == "ValueError"
    assert caught.attributes["code.function.name"] == "test_exceptions_become_exception_attributes"


def test_extra_values_become_attributes_and_other_types_their_text(exported):
    """bind, contextualize, configure(extra=) and the call's keyword arguments become
    attributes in order; values that are not str/bool/int/float are sent as their bounded
    text; our own attributes win a name clash."""
    logger.configure(extra={"service": "shop"})
    with logger.contextualize(request="r-1"):
        logger.bind(order_id=42, vip=True, ratio=0.5, user={"id": 1}, tags=[1, 2],
                    nothing=None, blob="x" * 5000, big=["y" * 3000],
                    **{"code.line.number": "not ours"}).info("paid {amount}", amount=12)
    attributes = dict(_records(exported)[0].attributes)
    assert attributes["code.line.number"] != "not ours"
    extras = {key: value for key, value in attributes.items()
              if not key.startswith(("code.", "thread."))}
    assert list(extras) == ["service", "request", "order_id", "vip", "ratio", "user", "tags",
                            "nothing", "blob", "big", "amount"]
    assert extras["order_id"] == 42 and extras["vip"] is True and extras["ratio"] == 0.5
    assert (extras["user"], extras["tags"], extras["nothing"]) == ("{'id': 1}", "[1, 2]", "None")
    assert len(extras["blob"]) == 5000  # the program's own text is kept whole
    assert extras["big"] == str(["y" * 3000])[:1024]
    assert extras["amount"] == 12


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("nope")

    __repr__ = __str__


def test_an_unprintable_extra_value_is_a_placeholder(exported, capsys):
    """A bound value whose text cannot be had is exported as a placeholder, quietly."""
    logger.bind(user=_Unprintable()).info("hi")
    assert _records(exported)[0].attributes["user"] == "<unprintable _Unprintable>"
    assert _diagnostics.recorded() == []


def test_extra_past_the_limit_keeps_ours_and_the_first_ones_quietly(clean):
    """Past the SDK's attribute limit our code/thread/exception attributes and the first
    extras are kept, the rest counted as dropped, with no SDK warning and one telemetryflow
    warning for all such records."""
    queue = BatchQueue(lambda batch: True, signal="logs", max_queue_size=100,
                       max_batch_size=100, schedule_delay_ms=600_000)
    provider = LoggerProvider(shutdown_on_exit=False,
                              log_record_limits=LogRecordLimits(max_attributes=10))
    provider.add_log_record_processor(BatchLogProcessor(queue))
    ours.install(loguru, provider, "debug")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            try:
                raise PaymentError("declined")
            except PaymentError:
                logger.bind(k7=7, k3=3, k11=11, k0=0, k5=5).exception("many")
    assert caught == []
    assert sum("more than 10 attributes" in m for _, m in _diagnostics.recorded()) == 1
    assert len(queue._queue) == 2
    for record in queue._queue:
        assert list(record.log_record.attributes)[8:] == ["k7", "k3"]
        assert record.dropped_attributes == 3


def test_trace_and_span_ids_of_the_current_span(exported, tracer):
    """A message logged inside a span carries its trace and span ids; one outside none."""
    with tracer.start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = _records(exported)
    context = span.get_span_context()
    assert (inside.trace_id, inside.span_id) == (context.trace_id, context.span_id)
    assert inside.trace_flags.sampled
    assert (outside.trace_id, outside.span_id) == (0, 0)


# ----- what is exported, whatever the program's sinks -----------------------------------------


def test_remove_and_add_never_remove_the_export(exported):
    """logger.remove() then logger.add(...) (and no sink at all) keep the export; our
    emitter is never among the program's handlers or their ids."""
    logger.remove()
    logger.info("no sink yet")
    lines = _lines()
    handler_id = logger.add(lambda message: None)
    logger.info("with sinks")
    logger.remove()
    logger.info("all removed")
    assert _bodies(exported) == ["no sink yet", "with sinks", "all removed"]
    assert len(lines) == 1 and "with sinks" in lines[0]
    logger.add(lambda message: None)
    assert list(logger._core.handlers) == [handler_id + 1]


def test_export_level_is_a_floor_of_its_own_and_disable_is_honoured(log_provider, clean):
    """Messages under the export level are not exported however verbose the sinks; above
    it they are exported even when no sink wants them, the sinks' output unchanged;
    logger.disable() silences both."""
    provider, exporter = log_provider
    ours.install(loguru, provider, "warning")
    verbose, quiet = _lines("DEBUG"), _lines("ERROR")
    logger.debug("debug")
    logger.info("info")
    logger.warning("warning")
    logger.disable(__name__)
    logger.error("disabled")
    logger.enable(__name__)
    assert _bodies(exporter) == ["warning"]
    assert [line.split("|")[0] for line in verbose] == ["DEBUG", "INFO", "WARNING"]
    assert quiet == []


def _program(lines: list[str]) -> None:
    """Every way of logging we know of, into a sink of the program's."""
    logger.remove()
    # (loguru's diagnose shows object addresses and its backtrace the caller's line: both
    # differ between two runs with or without us)
    logger.add(lines.append, level="DEBUG", format=LINE_FORMAT, backtrace=False,
               diagnose=False)
    logger.add(lines.append, level="WARNING", format="second {function}:{line} {message}",
               filter=lambda record: "skip" not in record["message"], backtrace=False,
               diagnose=False)
    logger.configure(patcher=lambda record: record["extra"].update(patched=True))
    logger.trace("trace")
    logger.debug("debug {}", 1)
    logger.info("info {name}", name="n")
    logger.success("success")
    logger.warning("warning, skip the second sink")
    logger.bind(user="u").error("bound")
    logger.opt(lazy=True).warning("lazy {}", lambda: 7)
    logger.opt(colors=True).critical("<red>colours</red>")
    logger.opt(record=True).warning("record {record[line]}")
    _log_from_helper()
    try:
        raise PaymentError("declined")
    except PaymentError:
        logger.exception("exception")

    @logger.catch(level="WARNING")
    def job() -> None:
        raise ValueError("bad")

    job()
    with logger.catch(message="caught in a block"):
        raise KeyError("k")
    logger.remove()
    logger.configure(patcher=None)


@pytest.mark.parametrize("level", ["debug", "warning"])
def test_the_program_sinks_get_exactly_what_they_got_without_us(log_provider, clean, level):
    """Each sink gets the same lines (locations, extra from a patcher, exceptions, filters)
    with the export installed as without it, below and above the export level."""
    without: list[str] = []
    _program(without)
    ours.install(loguru, log_provider[0], level)
    with_us: list[str] = []
    _program(with_us)
    assert with_us == without
    assert len(without) == 19 and "test_loguru.py" in "".join(without)
    assert len(_bodies(log_provider[1])) == (12 if level == "debug" else 8)


def test_a_message_no_sink_wants_that_cannot_be_built_raises_nothing(exported):
    """A message at the export level that loguru cannot format is not raised when no sink
    wants it (as without us), and raised as loguru raises it when one does."""
    lines = _lines("WARNING")
    logger.info("{missing}", other=1)
    assert _bodies(exported) == [] and lines == []
    with pytest.raises(KeyError):
        logger.warning("{missing}", other=1)


def test_nothing_is_exported_while_instrumentation_is_suppressed(exported):
    """Messages logged while instrumentation is suppressed (our exports run so) still reach
    the program's sinks but are not exported."""
    lines = _lines()
    with suppress_instrumentation():
        logger.warning("while exporting")
    assert _bodies(exported) == [] and len(lines) == 1


class _Failing(LoggerProvider):
    def get_logger(self, *args, **kwargs):
        raise RuntimeError("provider broken")


def test_a_failing_provider_never_raises_into_the_program(clean):
    """When our export fails the program's sinks log as before and one warning says so."""
    ours.install(loguru, _Failing(shutdown_on_exit=False), "debug")
    lines = _lines()
    logger.info("first")
    logger.info("second")
    assert len(lines) == 2
    warned = [m for _, m in _diagnostics.recorded() if "could not export a loguru record" in m]
    assert len(warned) == 1 and "provider broken" in warned[0]


# ----- loguru and logging routed into each other -----------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_loguru_routed_into_logging_is_exported_once(log_provider, clean):
    """A sink that logs each message to logging, or a logging.Handler given to
    logger.add, with the stdlib bridge installed too: each message exported once (ours,
    with loguru's location), and logging's handlers still get it."""
    provider, exporter = log_provider
    ours.install(loguru, provider, "info")
    stdlib_logging.install_bridge(provider, "info")
    program = _Collect()
    logging.getLogger().handlers[:] = [program]
    logging.getLogger().setLevel(logging.DEBUG)
    sink = logger.add(lambda message: logging.getLogger(message.record["name"]).log(
        message.record["level"].no, message.record["message"]))
    line = sys._getframe().f_lineno + 1
    logger.warning("to logging")
    logger.remove(sink)
    handler = _Collect()
    logger.add(handler)
    logger.error("to a handler")
    logging.getLogger("plain").warning("plain logging")
    assert _bodies(exporter) == ["to logging", "to a handler", "plain logging"]
    assert _records(exporter)[0].attributes["code.line.number"] == line
    assert [r.getMessage() for r in program.records] == ["to logging", "plain logging"]
    assert len(handler.records) == 1


class _InterceptHandler(logging.Handler):
    """The recipe of loguru's README: logging's records into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _intercept_into_loguru(provider) -> logging.Logger:
    """Our export and the stdlib bridge installed, logging routed into loguru as loguru's
    README says; returns a logger with its own InterceptHandler that does not propagate
    (so the bridge does not export its records)."""
    ours.install(loguru, provider, "info")
    stdlib_logging.install_bridge(provider, "info")
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    isolated = logging.getLogger("tfloguru.isolated")
    isolated.handlers[:] = [_InterceptHandler()]
    isolated.propagate = False
    return isolated


def test_logging_intercepted_into_loguru_is_exported_once(log_provider, clean):
    """logging's records routed into loguru by the InterceptHandler recipe, with the stdlib
    bridge installed: exported once, by the bridge (the logging logger's name as scope);
    a logger the bridge does not export (not propagating) once, by us; the loguru sink
    prints them all."""
    provider, exporter = log_provider
    lines = _lines()
    isolated = _intercept_into_loguru(provider)
    try:
        logging.getLogger("legacy").warning("from logging")
        isolated.error("from an isolated logger")
        logging.getLogger("legacy").debug("below the export level")
    finally:
        isolated.handlers[:] = []
    exported = exporter.get_finished_logs()
    assert [r.log_record.body for r in exported] == ["from logging", "from an isolated logger"]
    assert exported[0].instrumentation_scope.name == "legacy"
    assert [line.split("|")[2] for line in lines] == [
        "from logging", "from an isolated logger", "below the export level"]


def test_logging_intercepted_into_loguru_keeps_the_callers_location(log_provider, clean):
    """Under the stdlib bridge, the InterceptHandler recipe still finds the code that
    called logging: the program's loguru sink and our export show its location."""
    provider, exporter = log_provider
    lines = _lines()
    isolated = _intercept_into_loguru(provider)
    try:
        line = sys._getframe().f_lineno + 1
        isolated.error("from an isolated logger")
    finally:
        isolated.handlers[:] = []
    name = sys._getframe().f_code.co_name
    assert lines[0].startswith(f"ERROR|{__name__}:{name}:{line}|")
    assert _records(exporter)[0].attributes["code.line.number"] == line


def test_a_logging_record_emitted_during_our_export_is_not_exported_again(clean):
    """The SDK's own logging (here: a processor that logs), intercepted into loguru, is
    shown to the program's sinks but not exported again (no loop)."""
    exporter = InMemoryLogRecordExporter()

    class Noisy(SimpleLogRecordProcessor):
        def on_emit(self, log_record):
            logging.getLogger("opentelemetry.sdk").warning("noise from the export")
            super().on_emit(log_record)

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(Noisy(exporter))
    ours.install(loguru, provider, "info")
    lines = _lines()
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    logger.warning("the program's")
    assert _bodies(exporter) == ["the program's"]
    assert any("noise from the export" in line for line in lines)


# ----- installing ------------------------------------------------------------------------------


def test_install_wraps_once_and_uninstall_restores(log_provider, clean):
    """Installing again replaces the export target without wrapping twice; uninstalling
    puts loguru's own _log back."""
    first = ours.install(loguru, log_provider[0], "info")
    second = ours.install(loguru, log_provider[0], "info")
    assert type(logger)._log.__wrapped__ is ORIGINAL_LOG
    assert first.stopped and not second.stopped
    logger.info("once")
    assert _bodies(log_provider[1]) == ["once"]
    ours._uninstall()
    assert type(logger)._log is ORIGINAL_LOG


def test_an_unknown_loguru_is_left_alone_and_the_registry_says_why(log_provider, clean,
                                                                  monkeypatch):
    """A Logger whose _log has no shape we know is not patched; through the registry's
    hook the import goes on, the entry is recorded as failed with the reason, said once."""
    monkeypatch.setattr(registry, "_status", {})

    class Logger:
        def _log(self, *args):
            return args

    original = Logger._log
    fake = types.SimpleNamespace(logger=Logger())
    entry = Instrumentation("loguru", ("loguru",), "telemetryflow_bootstrap.instrumentation."
                            "loguru:patch")
    context = PatchContext(tracer=None, meter=None, logger_provider=log_provider[0],
                           config=TelemetryConfig(), handler=None)
    registry._Hook(entry, context)(fake)
    assert Logger._log is original
    assert registry.status()["loguru"][0] == "failed"
    assert "no shape we know" in registry.status()["loguru"][1]
    assert sum("could not instrument loguru" in m for _, m in _diagnostics.recorded()) == 1


def test_patch_without_logs_exported_leaves_loguru_alone(clean):
    """With logs not exported (no logger provider) loguru is not touched."""
    ours.patch(loguru, PatchContext(tracer=None, meter=None, logger_provider=None,
                                    config=TelemetryConfig(), handler=None))
    assert type(logger)._log is ORIGINAL_LOG


_CONTRACT = textwrap.dedent("""
    import json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import loguru
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (InMemoryLogRecordExporter,
                                                SimpleLogRecordProcessor)
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_logs, registry

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    context = registry.PatchContext(
        tracer=None, meter=None, logger_provider=provider,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    registry.arm(context, _catalog_logs.ENTRIES)
    from loguru import logger
    logger.remove()
    logger.info("hello")
    print(json.dumps({"bodies": [r.log_record.body for r in exporter.get_finished_logs()],
                      "status": registry.status()["loguru"][0]}))
""")


@pytest.mark.parametrize(("order", "disabled", "expected"), [
    ("import-first", "", {"bodies": ["hello"], "status": "applied"}),
    ("arm-first", "", {"bodies": ["hello"], "status": "applied"}),
    ("arm-first", "loguru", {"bodies": [], "status": "disabled"}),
])
def test_registry_entry_patches_on_import_and_can_be_disabled(order, disabled, expected):
    """The 'loguru' entry patches whether loguru was imported before or after arming, and
    TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=loguru leaves it alone."""
    proc = subprocess.run([sys.executable, "-c", _CONTRACT, order, disabled],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == expected
