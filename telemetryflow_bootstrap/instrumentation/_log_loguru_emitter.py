"""The loguru export's emitter: what loguru's ``_log`` takes for one more handler, and how a
finished loguru record reads as an OpenTelemetry log record (body, code location, ``extra``).
``loguru`` wires it in and says what it produces; the rules shared with the stdlib bridge
are in ``_log_records``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from ._log_records import ExportGuard, RecordExport, exception_attributes, severity, text

_MAX_TEXT = 1024  # characters of a non-primitive extra value's text
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

# Set while we export (see ``ExportGuard``): messages logged meanwhile are not exported.
guard = ExportGuard()


class LoguruExport(RecordExport):
    """What ``_log`` sees as one more loguru handler: ``emit`` turns the finished record
    into an OpenTelemetry log record on ``logger_provider``."""

    _RECORD = "loguru record"
    _NAMES = "loguru module names"
    _OVERFLOW_SCOPE = "telemetryflow.loguru.overflow"
    _UNNAMED_SCOPE = "loguru"  # a record of code whose module has no __name__

    def __init__(self, logger_provider: Any, levelno: int, sdk: Any = None) -> None:
        self._init_export(logger_provider, sdk)
        self.levelno = levelno
        self.stopped = False

    def live(self) -> bool:
        sdk = self._sdk
        return not self.stopped and (sdk is None or getattr(sdk, "initialized", True))

    def emit(self, record: dict[str, Any], level_id: Any, from_decorator: bool, is_raw: bool,
             colored_message: Any) -> None:
        guard.active = True
        try:
            self._export(record)
        except Exception as exc:
            self._report(exc)
        finally:
            guard.active = False

    def _export(self, record: dict[str, Any]) -> None:
        file, thread, level = record["file"], record["thread"], record["level"]
        attributes: dict[str, Any] = {
            "code.function.name": record["function"], "code.file.path": file.path,
            "code.line.number": record["line"], "thread.id": thread.id,
            "thread.name": thread.name}
        exception = record["exception"]
        if exception and exception[0] is not None:
            exception_attributes(exception, attributes)
        extra = record["extra"]
        dropped = _add_extra(attributes, extra, self._max_attributes) if extra else 0
        message = record["message"]
        self._emit(record["name"], (record["time"] - _EPOCH) // _MICROSECOND * 1000,
                   severity(level.no), level.name,
                   message if type(message) is str else text(message), attributes, dropped)


def _add_extra(attributes: dict[str, Any], extra: dict[Any, Any], limit: int | None) -> int:
    """Add the record's ``extra`` after ``attributes``, up to ``limit`` attributes in all;
    return how many did not fit. Ours win a name clash; any value that is not
    str/bool/int/float is sent as its (bounded) text, never dropped for its type."""
    room = len(extra) if limit is None else limit - len(attributes)
    dropped = 0
    for key, value in extra.items():
        name = key if type(key) is str else text(key)
        if not name or name in attributes:
            continue
        if room <= 0:
            dropped += 1
            continue
        if not isinstance(value, (str, bool, int, float)):
            value = text(value)[:_MAX_TEXT]
        attributes[name] = value
        room -= 1
    return dropped
