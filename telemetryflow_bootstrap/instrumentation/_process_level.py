"""Instrumentation that is not triggered by an import but installed at bootstrap for the
whole process (the stdlib logging bridge, runtime metrics)."""

from __future__ import annotations

from typing import Any


def install(context: Any) -> list[str]:
    """Install process-level instrumentation; returns the names installed."""
    return []
