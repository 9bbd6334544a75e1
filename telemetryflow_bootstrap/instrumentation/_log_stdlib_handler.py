"""The stdlib bridge's handler: which ``logging`` records are exported, and how a
``LogRecord`` reads as an OpenTelemetry log record (body, code location, ``extra=``
fields). ``stdlib_logging`` installs it and says what it produces; the rules shared with
the loguru export are in ``_log_records``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ._log_records import (
    ExportGuard,
    RecordExport,
    exception_attributes,
    severity,
    suppressed,
    text,
)

# The top-level names of the loggers that our export machinery writes to.
_EXPORT_LOGGERS = ("opentelemetry", "telemetryflow", "grpc", "urllib3.connectionpool")
# Threads that only ever run exports: our batch workers and the SDK's metric reader.
_EXPORT_THREADS = ("telemetryflow-", "OtelPeriodicExportingMetricReader")
_MAX_BODY_DEPTH = 4
# What the record factory of ``stdlib_logging`` adds to every record.
CORRELATION_FIELDS = ("otelTraceID", "otelSpanID", "otelServiceName", "otelTraceSampled")

# Everything a bare LogRecord carries, plus what formatters and our factory add: the rest of
# ``record.__dict__`` came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
).union({"message", "asctime", "taskName", *CORRELATION_FIELDS})

# Set while the bridge exports (see ``ExportGuard``); loguru's export reads it too.
guard = ExportGuard()


def _on_export_thread() -> bool:
    return threading.current_thread().name.startswith(_EXPORT_THREADS)


def is_export_noise(record: logging.LogRecord) -> bool:
    """A record of the SDK/exporter emitted by our export machinery (not by the program)."""
    return record.name.startswith(_EXPORT_LOGGERS) and (_on_export_thread() or suppressed())


def _any_value(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (str, bool, int, float, bytes)):
        return value
    if depth < _MAX_BODY_DEPTH:
        if isinstance(value, Mapping):
            return {text(k): _any_value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_any_value(v, depth + 1) for v in value]
    return text(value)


def _body(record: logging.LogRecord) -> Any:
    msg = record.msg
    if isinstance(msg, Mapping) and not record.args:
        return _any_value(msg)
    try:
        return record.getMessage()
    except Exception:  # bad %-args: the program's handlers report it; we keep the template
        return text(msg)


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


class BridgeHandler(RecordExport, logging.Handler):
    """Turns stdlib records into OpenTelemetry log records on ``logger_provider``.

    A real ``logging.Handler`` (level, filters, and it can be added to any logger by hand),
    but installed through ``callHandlers`` rather than ``root.handlers`` (see
    ``stdlib_logging``). ``handle`` takes no lock: the SDK's emit is thread-safe, and a lock
    here would serialise every thread that logs. Being a ``Handler`` it is in the logging
    module's list of handlers, which ``logging.shutdown()`` and ``dictConfig`` close: see
    ``close``.
    """

    _OVERFLOW_SCOPE = "telemetryflow.logging.overflow"

    def __init__(self, logger_provider: Any, level: int = logging.NOTSET,
                 sdk: Any = None) -> None:
        logging.Handler.__init__(self, level)
        self._init_export(logger_provider, sdk)
        # Set by our lifecycle only (never by ``close``: see there). Not ``_closed``, which
        # ``logging.Handler.close`` sets.
        self._stopped = False

    def handle(self, record: logging.LogRecord) -> Any:
        checked = self.filter(record)
        if checked:
            self.emit(checked if isinstance(checked, logging.LogRecord) else record)
        return checked

    def emit(self, record: logging.LogRecord) -> None:
        if guard.active or self._stopped:
            return
        if suppressed() or (record.name.startswith(_EXPORT_LOGGERS) and _on_export_thread()):
            return
        sdk = self._sdk
        if sdk is not None and not getattr(sdk, "initialized", True):
            return  # shut down (interpreter exit): the queue would only count drops
        guard.active = True
        try:
            self._export(record)
        except Exception as exc:
            self._report(exc)
        finally:
            guard.active = False

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
            exception_attributes(exc_info, attributes)
        fields = record.__dict__
        extras = fields.keys() - _STANDARD_ATTRIBUTES
        dropped = _add_extras(attributes, fields, extras, self._max_attributes) if extras else 0
        self._emit(record.name, int(record.created * 1e9), severity(record.levelno),
                   record.levelname, _body(record), attributes, dropped)

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
