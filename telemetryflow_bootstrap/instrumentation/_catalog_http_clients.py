"""Registry entries for the http clients instrumentations (see registry.Instrumentation)."""

from __future__ import annotations

from .registry import Instrumentation

ENTRIES: tuple[Instrumentation, ...] = ()
