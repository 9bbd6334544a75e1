"""What the stdlib ``logging`` bridge and the loguru export share in turning a record of
theirs into an OpenTelemetry log record: the severity mapping, exception attributes, the
bound on attributes, and the per-name cache of what emits a record (an SDK logger each).

Each source reads its own record shape (a ``logging.LogRecord``, a loguru record dict) into
attributes, then hands the result to ``RecordExport._emit``; the rules the two must agree on
(one severity scale, one exception format, one attribute limit, one overflow bound on
logger names) live here once, so a message routed between the two libraries is exported
alike whichever one exports it.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

from .. import _diagnostics
from ..infrastructure.current_context import get_current
from ..infrastructure.direct_logs import DirectLogs

# TELEMETRYFLOW_LOG_EXPORT_LEVEL's names, as ``logging`` numbers (loguru uses the same ones).
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
MAX_LOGGERS = 1024  # distinct OpenTelemetry loggers per source; past it records share one

# Severity bands: python levels [10*k, 10*k+10) map to the four OpenTelemetry numbers of band k.
_BAND_START = (SeverityNumber.TRACE, SeverityNumber.DEBUG, SeverityNumber.INFO,
               SeverityNumber.WARN, SeverityNumber.ERROR, SeverityNumber.FATAL)

Emitter = Callable[[int, Any, str, Any, dict[str, Any], int], None]


def export_levelno(level: str | int) -> int:
    """The number of an export level given by name (unknown names: INFO) or number."""
    return _LEVELS.get(level, 20) if isinstance(level, str) else int(level)


class ExportGuard(threading.local):
    """Per-thread "we are exporting" flag: a record logged from inside an export of ours (an
    SDK warning, ``logging.captureWarnings``, a sink's own logging call) must not be
    exported again. One per source: loguru's export looks at both."""

    active = False


def _compute_severity(levelno: int) -> SeverityNumber:
    if levelno <= 0:
        return SeverityNumber.UNSPECIFIED
    if levelno >= 60:
        return SeverityNumber.FATAL4
    band, offset = divmod(levelno, 10)
    # Python levels inside a band (e.g. 25 = NOTICE) spread over the band's four numbers.
    return SeverityNumber(_BAND_START[band].value + offset * 4 // 10)


_SEVERITIES = tuple(_compute_severity(levelno) for levelno in range(60))


def severity(levelno: int) -> SeverityNumber:
    if 0 <= levelno < 60:
        return _SEVERITIES[levelno]
    return _compute_severity(levelno)


def suppressed() -> bool:
    """Is instrumentation suppressed here (our exports run so)?"""
    current = get_current()  # (one lookup for both keys: this runs for every record)
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation"))


def text(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` raises: the program's handlers
    report such a record as a logging error; the export keeps it, with everything else the
    record says, instead of adding a complaint of ours to the program's stderr."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"


def exception_attributes(exc_info: Any, attributes: dict[str, Any]) -> None:
    """``exception.*`` of an ``(type, value, traceback)`` triple: a plain Python traceback
    (never loguru's ``diagnose`` variable values)."""
    exc_type, exc_value, exc_tb = exc_info
    module = getattr(exc_type, "__module__", "")
    qualname = getattr(exc_type, "__qualname__", str(exc_type))
    attributes["exception.type"] = (qualname if module in ("builtins", "", None)
                                    else f"{module}.{qualname}")
    # (an exception whose __str__ fails still has a type and a trace)
    attributes["exception.message"] = text(exc_value) if exc_value is not None else ""
    attributes["exception.stacktrace"] = "".join(
        traceback.format_exception(exc_type, exc_value, exc_tb))


class RecordExport:
    """The emitting end of a source's export: one SDK logger per record name (bounded),
    the attribute limit, and the once-per-process reports. A mixin (the stdlib bridge is
    also a ``logging.Handler``): subclasses call ``_init_export``, set the class attributes
    that name them in their warnings and scopes, and end their conversion with ``_emit``.

    Each source keeps its own ``emit`` (guard set, ``_export``, ``_report`` on failure):
    one shared here cost the stdlib bridge 0.3k-1.3k more instructions per record
    (callgrind), more than the seven lines it would save."""

    _RECORD = "log record"  # what a record is called in our warnings
    _NAMES = "logger names"  # what record names are called there
    _OVERFLOW_SCOPE = "telemetryflow.logging.overflow"
    _UNNAMED_SCOPE: str | None = None  # the scope of a record with no usable name

    def _init_export(self, logger_provider: Any, sdk: Any) -> None:
        self._provider = logger_provider
        self._sdk = sdk  # the TelemetryCommandHandler: after its shutdown we stop exporting
        self._loggers: dict[str, Any] = {}
        self._emitters: dict[Any, Emitter] = {}
        # The SDK's attribute count limit (None: unlimited, or not an SDK provider).
        self._max_attributes: int | None = getattr(
            getattr(logger_provider, "_log_record_limits", None), "max_log_record_attributes",
            None)
        self._failure_reported = False
        self._limit_reported = False

    def _emit(self, name: Any, timestamp: int, severity_number: Any, severity_text: str,
              body: Any, attributes: dict[str, Any], dropped: int) -> None:
        """Emit one record of ``name``, its ``attributes`` cut to the limit (ours first:
        the SDK's own bounding would warn per attribute, on the program's thread, and drop
        the oldest) and ``dropped`` counting what did not fit."""
        limit = self._max_attributes
        if limit is not None and len(attributes) > limit:  # a limit under our own count
            dropped += len(attributes) - limit
            attributes = dict(itertools.islice(attributes.items(), limit))
        if dropped and not self._limit_reported:
            self._limit_reported = True
            _diagnostics.warn(
                f"a {self._RECORD} had more than {limit} attributes; the rest are dropped "
                "and counted on each such record (OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT)")
        emitter = self._emitters.get(name)
        if emitter is None:
            emitter = self._emitter_for(name)
        emitter(timestamp, severity_number, severity_text, body, attributes, dropped)

    def _emitter_for(self, name: Any) -> Emitter:
        """What emits a record of ``name``: straight into our queue where the SDK logger's
        chain is ours alone (``DirectLogs``), else its ``emit``."""
        unnamed = self._UNNAMED_SCOPE
        logger = self._logger_for(name if unnamed is None or (isinstance(name, str) and name)
                                  else unnamed)
        direct = DirectLogs.for_logger(logger)
        if direct is not None:
            emitter: Emitter = direct.emit
        else:
            def emitter(timestamp: int, severity_number: Any, severity_text: str, body: Any,
                        attributes: dict[str, Any], dropped: int,
                        _emit: Any = logger.emit) -> None:
                # (``Logger.emit`` cannot take ``dropped``: on this path it is lost)
                _emit(timestamp=timestamp, severity_number=severity_number,
                      severity_text=severity_text, body=body, attributes=attributes)
        if len(self._emitters) < MAX_LOGGERS:
            self._emitters[name] = emitter
        return emitter

    def _logger_for(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            if len(self._loggers) >= MAX_LOGGERS:
                # Programs that make a logger per request/user would grow this (and the
                # SDK's own cache) without end; past the bound they share one scope.
                name = self._OVERFLOW_SCOPE
                logger = self._loggers.get(name)
                if logger is not None:
                    return logger
                _diagnostics.warn(f"more than {MAX_LOGGERS} distinct {self._NAMES}; further "
                                  f"ones are exported under the scope {name}")
            logger = self._provider.get_logger(name)
            self._loggers[name] = logger
        return logger

    def _report(self, exc: Exception) -> None:
        """A record we could not convert or emit: said once, then such records skipped."""
        if not self._failure_reported:
            self._failure_reported = True
            _diagnostics.warn(f"could not export a {self._RECORD} ({type(exc).__name__}: "
                              f"{exc}); such records are skipped")
