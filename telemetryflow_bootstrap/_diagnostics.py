"""telemetryflow's own messages on stderr (stdlib only).

The program's stderr belongs to the program: we print one line per problem, prefixed
``telemetryflow:``, at the level ``TELEMETRYFLOW_LOG_LEVEL`` allows (default: warnings only),
and never the same recurring complaint more than once a minute. Nothing here may raise.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable

_LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40, "off": 100}
_PREFIX = "telemetryflow: "
_RATE_LIMIT_SECONDS = 60.0

_level = _LEVELS["warn"]
_lock = threading.Lock()
_last_said: dict[str, float] = {}
_recorded: list[tuple[str, str]] = []  # (level, message), for --info / get_status()
_secrets: set[str] = set()


def add_secrets(values: Iterable[str]) -> None:
    """Strings never to print (header values, the API key secret, an endpoint's password):
    every line goes through ``domain.redaction.redact_text`` with them, whoever wrote it
    (the SDK's and the exporters' log records are routed here, quoting what they like)."""
    with _lock:
        _secrets.update(value for value in values if value)


def _redacted(message: str) -> str:
    try:
        from .domain.redaction import redact_text

        return redact_text(message, _secrets)
    except Exception:  # (never raise: see the module doc)
        return message


def set_level(level: str) -> None:
    global _level
    _level = _LEVELS.get(level, _LEVELS["warn"])


def enabled_for(level: str) -> bool:
    return _LEVELS[level] >= _level


def say(level: str, message: str) -> None:
    """Print one line on stderr if the level allows; record warnings and errors."""
    if _secrets or "@" in message or "?" in message:
        message = _redacted(message)
    if _LEVELS[level] >= _LEVELS["warn"]:
        with _lock:
            if len(_recorded) < 100:
                _recorded.append((level, message))
    if _LEVELS[level] < _level:
        return
    label = "" if level == "info" else f"{'warning' if level == 'warn' else level}: "
    line = f"{_PREFIX}{label}{message}\n"
    try:
        stream = sys.stderr or sys.__stderr__
        if stream is not None:
            stream.write(line)
            stream.flush()
    except Exception:  # a closed or broken stderr is the program's business, not ours
        with contextlib.suppress(OSError):
            os.write(2, line.encode("utf-8", "backslashreplace"))


def debug(message: str) -> None:
    if _LEVELS["debug"] >= _level:
        say("debug", message)


def info(message: str) -> None:
    say("info", message)


def warn(message: str) -> None:
    say("warn", message)


def warn_every_minute(key: str, message: str) -> bool:
    """Warn about a recurring condition (export failing, queue full) at most once a minute."""
    now = time.monotonic()
    with _lock:
        last = _last_said.get(key)
        if last is not None and now - last < _RATE_LIMIT_SECONDS:
            return False
        _last_said[key] = now
    say("warn", message)
    return True


def recorded() -> list[tuple[str, str]]:
    with _lock:
        return list(_recorded)


def reset_for_tests() -> None:
    with _lock:
        _last_said.clear()
        _recorded.clear()
        _secrets.clear()
