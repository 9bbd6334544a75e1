"""Registry entries for logging libraries other than the stdlib's ``logging`` (whose bridge
is installed for the whole process at bootstrap, see ``_process_level``): their records
become OpenTelemetry log records like ``logging``'s. The names are the contrib-style ones.
"""

from __future__ import annotations

from .registry import Instrumentation

_BASE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation("loguru", ("loguru",), f"{_BASE}.loguru:patch", "loguru", ">=0.6"),
)
