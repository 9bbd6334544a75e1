"""What every doctor check is made of: its outcome, and the bounded, scrubbed ways the
checks run and quote what they saw (shared by ``doctor`` and its ``_doctor_*`` parts)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain.redaction import redact_text
from . import info

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"

MAX_DETAIL = 160


@dataclass(frozen=True)
class Check:
    """One live check: PASS, WARN, FAIL or SKIP, what was seen, and how to fix it."""

    name: str
    outcome: str
    detail: str
    hint: str = ""


def quoted(text: str) -> str:
    return info.printable(text, MAX_DETAIL)


def scrub(text: str, secrets: list[str]) -> str:
    """A server (or gRPC, quoting its target) may echo what it got; never print a
    credential we sent, nor a URL's password."""
    return redact_text(text, secrets)


def elapsed_ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


def bounded(call: Callable[[], Any], timeout: float) -> Any:
    result = parallel([call], timeout)[0]
    if isinstance(result, BaseException):
        raise result
    return result


def parallel(calls: list[Callable[[], Any]], timeout: float) -> list[Any]:
    """Run ``calls`` at once in daemon threads; a call still running after ``timeout`` gives
    ``TimeoutError`` and is abandoned (a daemon thread never delays the exit)."""
    results: list[Any] = [TimeoutError()] * len(calls)

    def runner(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except BaseException as exc:
            results[index] = exc

    threads = [
        threading.Thread(
            target=runner, args=(index, call), daemon=True, name="telemetryflow-doctor"
        )
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results
