"""Spans that have started and not ended, so a terminating process can end and export them
instead of losing them (they are marked ``telemetryflow.process.terminated=true``).

Costs a dict insert and delete per span; bounded, so a program that leaks unended spans
cannot grow it without limit (beyond the bound, new spans are simply not tracked).
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

MAX_TRACKED = 10_000
TERMINATED_ATTRIBUTE = "telemetryflow.process.terminated"


class OpenSpans(SpanProcessor):
    def __init__(self) -> None:
        self.started = 0  # spans started in this process, ours included
        self._open: dict[int, Any] = {}
        self._lock = threading.Lock()

    # Keyed by span id: on_end receives a read-only copy, not the object on_start saw.
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1
        if len(self._open) < MAX_TRACKED:
            self._open[span.get_span_context().span_id] = span

    def on_end(self, span: Any) -> None:
        self._open.pop(span.get_span_context().span_id, None)

    def end_all(self) -> int:
        """End every open span (innermost last started first); returns how many."""
        with self._lock:
            spans = list(self._open.values())
        for span in reversed(spans):
            try:
                span.set_attribute(TERMINATED_ATTRIBUTE, True)
                span.end()
            except Exception:
                pass
        return len(spans)

    def after_fork_in_child(self) -> None:
        self._open = {}
        self.started = 0

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
