"""Registry entries for process-boundary instrumentation (context into child processes)."""

from __future__ import annotations

from .registry import Instrumentation

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation(
        name="subprocess",
        modules=("subprocess",),
        patch="telemetryflow_bootstrap.instrumentation.subprocess:patch",
    ),
)
