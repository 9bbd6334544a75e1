"""The stdlib ``logging`` bridge: every record the program logs also becomes an OpenTelemetry
log record, and every record carries the active trace ids for text formatters.

Produces
    One OpenTelemetry log record per stdlib record that reaches the top of its logger
    hierarchy (the records a root handler would see) at or above the export level. The
    OpenTelemetry logger (instrumentation scope) is named after the Python logger.

    - severity number from ``levelno`` (custom levels land inside the nearest band, e.g. 25 →
      INFO3), severity text = ``levelname``; timestamp = ``record.created``
    - body: ``record.getMessage()``; a mapping logged without arguments stays structured;
      with bad %-arguments the template, and for a message whose ``__str__`` raises
      ``<unprintable TYPE>`` (the program's handlers report that record as a logging error)
    - ``code.function.name``, ``code.file.path``, ``code.line.number``, ``code.stacktrace``
      (``stack_info=True``), ``thread.id``, ``thread.name``
    - ``exception.type``, ``exception.message``, ``exception.stacktrace`` from ``exc_info``
    - ``extra=`` fields whose values are str/bool/int/float, under their own names, in the
      order the record got them; past the SDK's attribute count limit
      (``OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT``, default 128) our own attributes above are
      kept, then the first extras, and the rest are counted in the record's
      ``dropped_attributes_count`` (one warning per process, never one per record)
    - trace id, span id and flags of the span current where the record was logged

    Every ``LogRecord`` also gets ``otelTraceID``, ``otelSpanID``, ``otelServiceName`` and
    ``otelTraceSampled`` ("0", "0", the service name, False outside a span), so
    ``%(otelTraceID)s`` works in any formatter.

Reads
    TELEMETRYFLOW_LOG_EXPORT_LEVEL (lowest level exported), TELEMETRYFLOW_LOG_CORRELATION
    (``logging.basicConfig()`` without a format gets one with the trace ids),
    TELEMETRYFLOW_SERVICE_NAME (``otelServiceName``), TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS
    (``logging`` leaves the logging module untouched). All through the config object.

How it attaches, and why not as a root handler
    A handler in ``logging.root.handlers`` is visible to the program: ``basicConfig()`` does
    nothing when the root has a handler, ``basicConfig(force=True)`` and ``dictConfig`` close
    and remove it, ``logging.lastResort`` stops printing warnings for programs that configured
    nothing, and code that reads ``root.handlers[0]`` gets ours. Instead we wrap
    ``logging.Logger.callHandlers`` (the step after the logger's level, ``disabled`` flag and
    filters let a record through): the program's handlers run exactly as before, then our
    ``_BridgeHandler`` sees the record if it would have reached a root handler (every logger
    below the top propagates). ``root.handlers``, ``hasHandlers()``, ``lastResort`` and
    ``basicConfig`` cannot tell we are there. The export level is a floor on top of the
    program's own levels: we never lower a logger's level (that would change what the
    program's own handlers print).

Hazards handled
    - Feedback loops: records logged while instrumentation is suppressed (our exports run
      so), records from the SDK's/exporter's loggers on our export threads, and records
      logged from inside our own export (a thread-local flag) are never exported.
    - The SDK's/exporter's records emitted by an export (on our export threads, or while
      instrumentation is suppressed) are not shown to the program's handlers either, even
      when logs are not exported: with the backend down the OTLP exporter warns on every
      retry, which would flood the program's stderr and log files, and our own diagnostics
      already report the failure once a minute. With ``TELEMETRYFLOW_LOG_LEVEL=debug`` they
      are shown.
    - Another library may wrap ``callHandlers`` after us (Sentry does): ours is never
      wrapped in twice, and stays in their chain, inert, if we are uninstalled.
    - ``logging.shutdown()`` and ``logging.config.dictConfig``/``fileConfig`` (Django's
      ``setup()``, uvicorn) close every handler the logging module knows of, ours included,
      while the program goes on logging: ``close`` therefore does not stop the export; only
      our own lifecycle does (a new bridge installed, the SDK shut down at exit). At
      interpreter exit our flush (an ``atexit`` function registered after the SDK imported
      ``logging``) runs before the logging module's own ``atexit`` shutdown, which has
      nothing of ours to flush; records logged by the program's ``atexit`` functions (run
      before ours) are exported.
    - Nothing here raises into the program: a record we cannot convert is reported once and
      skipped; the program's handlers have already seen it.
    - Not handled: when one of the program's handlers fails, the stdlib's
      ``--- Logging error ---`` report shows the call stack from the first frame outside the
      logging package's directory, which is our ``callHandlers`` wrapper; so the report also
      lists our frame and the logging frames above it (four more, for ``logger.warning``).
      Only a wrapper that lies about its file name, or a handler in ``root.handlers`` (see
      above), would hide them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from .. import _diagnostics
from ..infrastructure.current_context import get_current
from ..infrastructure.direct_logs import DirectLogs

# The top-level names of the loggers that our export machinery writes to.
_EXPORT_LOGGERS = ("opentelemetry", "telemetryflow", "grpc", "urllib3.connectionpool")
# Threads that only ever run exports: our batch workers and the SDK's metric reader.
_EXPORT_THREADS = ("telemetryflow-", "OtelPeriodicExportingMetricReader")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
_MAX_LOGGERS = 1024  # distinct OpenTelemetry loggers; past it records share one
_OVERFLOW_SCOPE = "telemetryflow.logging.overflow"
_MAX_BODY_DEPTH = 4

_NO_TRACE_ID = "0"
_NO_SPAN_ID = "0"
_CORRELATION_FIELDS = ("otelTraceID", "otelSpanID", "otelServiceName", "otelTraceSampled")
# The text logging.basicConfig() uses when no format is given, plus the correlation fields.
_CORRELATED_FORMATS = {
    "%": "%(levelname)s:%(name)s:%(message)s trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
         "service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s",
    "{": "{levelname}:{name}:{message} trace_id={otelTraceID} span_id={otelSpanID} "
         "service.name={otelServiceName} trace_sampled={otelTraceSampled}",
    "$": "${levelname}:${name}:${message} trace_id=${otelTraceID} span_id=${otelSpanID} "
         "service.name=${otelServiceName} trace_sampled=${otelTraceSampled}",
}

# Everything a bare LogRecord carries, plus what formatters and our factory add: the rest of
# ``record.__dict__`` came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
).union({"message", "asctime", "taskName", *_CORRELATION_FIELDS})

# Severity bands: python levels [10*k, 10*k+10) map to the four OpenTelemetry numbers of band k.
_BAND_START = (SeverityNumber.TRACE, SeverityNumber.DEBUG, SeverityNumber.INFO,
               SeverityNumber.WARN, SeverityNumber.ERROR, SeverityNumber.FATAL)


class _Guard(threading.local):
    """Per-thread "we are exporting" flag: a record logged from inside our own export (an SDK
    warning, ``logging.captureWarnings``) must not be exported again."""

    active = False


_guard = _Guard()


def _compute_severity(levelno: int) -> SeverityNumber:
    if levelno <= 0:
        return SeverityNumber.UNSPECIFIED
    if levelno >= 60:
        return SeverityNumber.FATAL4
    band, offset = divmod(levelno, 10)
    # Python levels inside a band (e.g. 25 = NOTICE) spread over the band's four numbers.
    return SeverityNumber(_BAND_START[band].value + offset * 4 // 10)


_SEVERITIES = tuple(_compute_severity(levelno) for levelno in range(60))


def _severity(levelno: int) -> SeverityNumber:
    if 0 <= levelno < 60:
        return _SEVERITIES[levelno]
    return _compute_severity(levelno)


def _on_export_thread() -> bool:
    return threading.current_thread().name.startswith(_EXPORT_THREADS)


def _suppressed() -> bool:
    current = get_current()  # (one lookup for both keys: this runs for every record)
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation"))


def _is_export_noise(record: logging.LogRecord) -> bool:
    """A record of the SDK/exporter emitted by our export machinery (not by the program)."""
    return record.name.startswith(_EXPORT_LOGGERS) and (_on_export_thread() or _suppressed())


def _text(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` raises: the program's handlers
    report such a record as a logging error; the export keeps it, with everything else the
    record says, instead of adding a complaint of ours to the program's stderr."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def _any_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (str, bool, int, float, bytes)):
        return value
    if depth < _MAX_BODY_DEPTH:
        if isinstance(value, Mapping):
            return {_text(k): _any_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_any_value(v, depth + 1) for v in value]
    return _text(value)


def _body(record: logging.LogRecord) -> Any:
    msg = record.msg
    if isinstance(msg, Mapping) and not record.args:
        return _any_value(msg)
    try:
        return record.getMessage()
    except Exception:  # bad %-args: the program's handlers report it; we keep the template
        return _text(msg)


def _in_record_order(fields: dict[str, Any], names: set[str]) -> list[str] | set[str]:
    """``names`` in the order ``fields`` got them. From the end, stopping once all are found:
    extras come after the standard fields (only a formatter's ``message``/``asctime`` or a
    filter's own fields come later), so this looks at a few keys, not all ~30."""
    if len(names) < 2:
        return names
    ordered: list[str] = []
    for key in reversed(fields):
        if key in names:
            ordered.append(key)
            if len(ordered) == len(names):
                break
    ordered.reverse()
    return ordered


def _add_extras(attributes: dict[str, Any], fields: dict[str, Any], names: set[str],
                limit: int | None) -> int:
    """Add the record's ``extra=`` fields (``names``, a subset of ``fields``) of simple types
    after ``attributes``, up to ``limit`` attributes in all; return how many did not fit.

    In the record's own order, so that which extras a limit keeps does not depend on set
    iteration order (string hashes differ per process). Bounding here rather than in the
    SDK: its ``BoundedAttributes`` logs a warning per attribute past the limit and its
    record a ``warnings.warn``, both on the program's thread and stderr, and it drops the
    oldest, i.e. our code and exception attributes and the first extras."""
    room = len(fields) if limit is None else limit - len(attributes)
    dropped = 0
    for key in _in_record_order(fields, names):
        if not key or key[0] == "_" or key in attributes:
            continue  # (private and empty names; ours win a clash)
        value = fields[key]
        if not isinstance(value, (str, bool, int, float)):
            continue
        if room <= 0:
            dropped += 1
            continue
        attributes[key] = value
        room -= 1
    return dropped


def _exception_attributes(exc_info: Any, attributes: dict[str, Any]) -> None:
    exc_type, exc_value, exc_tb = exc_info
    module = getattr(exc_type, "__module__", "")
    qualname = getattr(exc_type, "__qualname__", str(exc_type))
    attributes["exception.type"] = (qualname if module in ("builtins", "", None)
                                    else f"{module}.{qualname}")
    # (an exception whose __str__ fails still has a type and a trace)
    attributes["exception.message"] = _text(exc_value) if exc_value is not None else ""
    attributes["exception.stacktrace"] = "".join(
        traceback.format_exception(exc_type, exc_value, exc_tb))


class _BridgeHandler(logging.Handler):
    """Turns stdlib records into OpenTelemetry log records on ``logger_provider``.

    A real ``logging.Handler`` (level, filters, and it can be added to any logger by hand),
    but installed through ``callHandlers`` rather than ``root.handlers`` (see the module
    docstring). ``handle`` takes no lock: the SDK's emit is thread-safe, and a lock here
    would serialise every thread that logs. Being a ``Handler`` it is in the logging
    module's list of handlers, which ``logging.shutdown()`` and ``dictConfig`` close: see
    ``close``.
    """

    def __init__(self, logger_provider: Any, level: int = logging.NOTSET,
                 sdk: Any = None) -> None:
        super().__init__(level)
        self._provider = logger_provider
        self._sdk = sdk  # the TelemetryCommandHandler: after its shutdown we stop exporting
        self._loggers: dict[str, Any] = {}
        self._emitters: dict[str, Callable[[int, Any, str, Any, dict[str, Any], int], None]] = {}
        # The SDK's attribute count limit (None: unlimited, or not an SDK provider).
        self._max_attributes: int | None = getattr(
            getattr(logger_provider, "_log_record_limits", None), "max_log_record_attributes",
            None)
        # Set by our lifecycle only (never by ``close``: see there). Not ``_closed``, which
        # ``logging.Handler.close`` sets.
        self._stopped = False
        self._failure_reported = False
        self._limit_reported = False

    def handle(self, record: logging.LogRecord) -> Any:
        checked = self.filter(record)
        if checked:
            self.emit(checked if isinstance(checked, logging.LogRecord) else record)
        return checked

    def emit(self, record: logging.LogRecord) -> None:
        if _guard.active or self._stopped:
            return
        if _suppressed() or (record.name.startswith(_EXPORT_LOGGERS) and _on_export_thread()):
            return
        sdk = self._sdk
        if sdk is not None and not getattr(sdk, "initialized", True):
            return  # shut down (interpreter exit): the queue would only count drops
        _guard.active = True
        try:
            self._export(record)
        except Exception as exc:
            self._report(exc)
        finally:
            _guard.active = False

    def _export(self, record: logging.LogRecord) -> None:
        attributes: dict[str, Any] = {
            "code.function.name": record.funcName, "code.file.path": record.pathname,
            "code.line.number": record.lineno, "thread.id": record.thread,
            "thread.name": record.threadName}
        if record.stack_info:
            attributes["code.stacktrace"] = record.stack_info
        if None in attributes.values():  # logging.logThreads = False, hand-made records
            attributes = {key: value for key, value in attributes.items() if value is not None}
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            _exception_attributes(exc_info, attributes)
        fields = record.__dict__
        extras = fields.keys() - _STANDARD_ATTRIBUTES
        limit = self._max_attributes
        dropped = _add_extras(attributes, fields, extras, limit) if extras else 0
        if limit is not None and len(attributes) > limit:  # a limit under our own count
            dropped += len(attributes) - limit
            attributes = dict(itertools.islice(attributes.items(), limit))
        if dropped and not self._limit_reported:
            self._limit_reported = True
            _diagnostics.warn(
                f"a log record had more than {limit} attributes; the rest are dropped and "
                "counted on each such record (OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT)")
        self._emitter_for(record.name)(int(record.created * 1e9), _severity(record.levelno),
                                       record.levelname, _body(record), attributes, dropped)

    def _emitter_for(self, name: str
                     ) -> Callable[[int, Any, str, Any, dict[str, Any], int], None]:
        """What emits a record of logger ``name``: straight into our queue where the SDK
        logger's chain is ours alone (``DirectLogs``), else its ``emit``."""
        emitter = self._emitters.get(name)
        if emitter is None:
            logger = self._logger_for(name)
            direct = DirectLogs.for_logger(logger)
            if direct is not None:
                emitter = direct.emit
            else:
                def emitter(timestamp: int, severity_number: Any, severity_text: str,
                            body: Any, attributes: dict[str, Any], dropped: int,
                            _emit: Any = logger.emit) -> None:
                    # (``Logger.emit`` cannot take ``dropped``: on this path it is lost)
                    _emit(timestamp=timestamp, severity_number=severity_number,
                          severity_text=severity_text, body=body, attributes=attributes)
            if len(self._emitters) < _MAX_LOGGERS:
                self._emitters[name] = emitter
        return emitter

    def _logger_for(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            if len(self._loggers) >= _MAX_LOGGERS:
                # Programs that make a logger per request/user would grow this (and the
                # SDK's own cache) without end; past the bound they share one scope.
                name = _OVERFLOW_SCOPE
                logger = self._loggers.get(name)
                if logger is not None:
                    return logger
                _diagnostics.warn(f"more than {_MAX_LOGGERS} distinct logger names; further "
                                  f"ones are exported under the scope {_OVERFLOW_SCOPE}")
            logger = self._provider.get_logger(name)
            self._loggers[name] = logger
        return logger

    def _report(self, exc: Exception) -> None:
        if not self._failure_reported:
            self._failure_reported = True
            _diagnostics.warn(f"could not export a log record ({type(exc).__name__}: {exc}); "
                              "such records are skipped")

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # emit reports its own failures once; never the stdlib's traceback per record

    def flush(self) -> None:
        pass  # the lifecycle flushes the SDK (bounded); logging.shutdown() must not block

    def close(self) -> None:
        """The logging module's close, which must not stop the export: ``logging.shutdown()``
        and ``dictConfig``/``fileConfig`` call it on every handler it knows of, then the
        program logs on. Our lifecycle calls ``_stop``."""
        super().close()

    def _stop(self) -> None:
        self._stopped = True
        self.close()


# ----- installing -------------------------------------------------------------------------

_lock = threading.Lock()
_bridge: _BridgeHandler | None = None
_original_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None
# Our wrapper, while it is in the chain. It stays there (inert without a bridge) when code
# that wrapped it after us keeps a reference, so it is never wrapped in twice.
_our_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None
_original_basic_config: Callable[..., None] | None = None


def _reaches_top(logger: logging.Logger) -> bool:
    """Would a record handled by ``logger`` reach the top (root) logger's handlers?"""
    while logger.propagate:
        parent = logger.parent
        if parent is None:
            return True
        logger = parent
    return logger.parent is None


def _make_call_handlers(original: Callable[[logging.Logger, logging.LogRecord], None]
                        ) -> Callable[[logging.Logger, logging.LogRecord], None]:
    @functools.wraps(original)
    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if _is_export_noise(record) and not _diagnostics.enabled_for("debug"):
            return
        original(self, record)
        bridge = _bridge
        if bridge is not None and record.levelno >= bridge.level and _reaches_top(self):
            bridge.handle(record)

    # Handlers run under this frame. Code that walks up the stack past logging's own frames
    # to find who logged (loguru's documented InterceptHandler, which feeds `logging`
    # records to loguru) stops at the first frame from another file: ours, so every
    # intercepted line printed our location instead of the program's. Naming logging's file
    # as this function's lets such walks pass it, as they pass logging's (a traceback
    # through it then shows logging's file name with this function's line numbers).
    with contextlib.suppress(AttributeError, ValueError):
        callHandlers.__code__ = callHandlers.__code__.replace(co_filename=logging.__file__)
    return callHandlers


def _ensure_call_handlers_wrapped() -> None:
    global _original_call_handlers, _our_call_handlers
    if _our_call_handlers is None:
        _original_call_handlers = logging.Logger.callHandlers
        _our_call_handlers = _make_call_handlers(_original_call_handlers)
        logging.Logger.callHandlers = _our_call_handlers  # type: ignore[method-assign]


def install_noise_filter() -> None:
    """Keep the SDK's/exporter's records on our export threads out of the program's
    handlers (see the module docstring), whether or not logs are exported."""
    with _lock:
        _ensure_call_handlers_wrapped()


def install_bridge(logger_provider: Any, level: str | int = "info",
                   sdk: Any = None) -> _BridgeHandler:
    """Export every record that reaches the root logger to ``logger_provider`` from now on.

    Installing again replaces the provider and level (one bridge per process)."""
    global _bridge
    levelno = _LEVELS.get(level, logging.INFO) if isinstance(level, str) else int(level)
    handler = _BridgeHandler(logger_provider, levelno, sdk)
    with _lock:
        _ensure_call_handlers_wrapped()
        previous, _bridge = _bridge, handler
    if previous is not None:
        previous._stop()
    return handler


def install_record_factory(service_name: str) -> None:
    """Give every ``LogRecord`` the correlation fields, chaining to the current factory."""
    with _lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, "_telemetryflow_previous", None) is not None:
            previous = previous._telemetryflow_previous  # type: ignore[attr-defined]
        logging.setLogRecordFactory(_make_record_factory(previous, service_name))


def _make_record_factory(previous: Callable[..., logging.LogRecord],
                         service_name: str) -> Callable[..., logging.LogRecord]:
    get_current_span = trace.get_current_span
    # The last span seen, with its ids as text: consecutive records usually share a span, and
    # formatting two hex numbers is most of this factory's cost. The cell holds an immutable
    # tuple that is replaced whole, so racing threads at worst recompute.
    last: list[tuple[int, int, bool, str, str]] = [(0, 0, False, _NO_TRACE_ID, _NO_SPAN_ID)]

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            context = get_current_span().get_span_context()
            if context.is_valid:
                cached = last[0]
                sampled = context.trace_flags.sampled
                if (cached[1] != context.span_id or cached[0] != context.trace_id
                        or cached[2] != sampled):
                    cached = (context.trace_id, context.span_id, sampled,
                              format(context.trace_id, "032x"), format(context.span_id, "016x"))
                    last[0] = cached
                record.otelTraceID, record.otelSpanID = cached[3], cached[4]
                record.otelTraceSampled = sampled
            else:
                record.otelTraceID, record.otelSpanID = _NO_TRACE_ID, _NO_SPAN_ID
                record.otelTraceSampled = False
            record.otelServiceName = service_name
        except Exception:  # never let correlation break a log call
            pass
        return record

    record_factory._telemetryflow_previous = previous  # type: ignore[attr-defined]
    return record_factory


def install_correlated_basic_config() -> None:
    """``logging.basicConfig()`` without a format uses one that shows the trace ids."""
    global _original_basic_config
    with _lock:
        if _original_basic_config is not None:
            return
        original = logging.basicConfig
        _original_basic_config = original

        @functools.wraps(original)
        def basicConfig(**kwargs: Any) -> None:
            if "format" not in kwargs:
                fmt = _CORRELATED_FORMATS.get(kwargs.get("style", "%"))
                if fmt is not None:  # an invalid style: let basicConfig say so
                    kwargs["format"] = fmt
            original(**kwargs)

        logging.basicConfig = basicConfig


def _uninstall() -> None:
    """Undo every install (tests): the stdlib functions back, our handler stopped."""
    global _bridge, _original_call_handlers, _our_call_handlers, _original_basic_config
    with _lock:
        if _our_call_handlers is not None and logging.Logger.callHandlers is _our_call_handlers:
            logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign]
            _original_call_handlers = _our_call_handlers = None
        factory = logging.getLogRecordFactory()
        previous = getattr(factory, "_telemetryflow_previous", None)
        if previous is not None:
            logging.setLogRecordFactory(previous)
        if _original_basic_config is not None:
            logging.basicConfig = _original_basic_config
        _original_basic_config = None
        bridge, _bridge = _bridge, None
    if bridge is not None:
        bridge._stop()
