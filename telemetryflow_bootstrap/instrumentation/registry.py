"""The instrumentation registry and the lazy, once-only arming of its patches.

Each entry names the modules whose import triggers it and the *string* path of its patch
function, so neither the library nor our module for it is imported until the program
imports the library (post-import hooks, see ``_import_hooks``). A hook that raises would
make the program's ``import`` fail, so every failure is caught here, reported once and
recorded for ``--info``; the library then simply stays unpatched.

A patch function has the signature ``patch(module, context) -> None`` where ``context`` is a
``PatchContext`` (tracer, meter, config, handler: fetched once, at patch time).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from .. import _diagnostics
from ..domain._values import FrozenValue


class Instrumentation(FrozenValue):
    """One library we patch. (Frozen value objects, not dataclasses: ~100 entries are
    built in every instrumented process at start-up, see ``domain._values``.)"""

    _FIELDS = __slots__ = __match_args__ = (
        "name", "modules", "patch", "distribution", "versions")

    def __init__(self, name: str, modules: tuple[str, ...], patch: str,
                 distribution: str | None = None, versions: str = "") -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "modules", modules)
        _set(self, "patch", patch)
        _set(self, "distribution", distribution)
        _set(self, "versions", versions)


class PatchContext(FrozenValue):
    """What a patch needs from the running SDK."""

    _FIELDS = __slots__ = __match_args__ = (
        "tracer", "meter", "logger_provider", "config", "handler")

    def __init__(self, tracer: Any, meter: Any, logger_provider: Any, config: Any,
                 handler: Any) -> None:
        _set = object.__setattr__
        _set(self, "tracer", tracer)
        _set(self, "meter", meter)
        _set(self, "logger_provider", logger_provider)
        _set(self, "config", config)
        _set(self, "handler", handler)


def _catalog() -> tuple[Instrumentation, ...]:
    # One catalog per family of libraries, so each can be extended on its own.
    from . import (
        _catalog_data,
        _catalog_http_clients,
        _catalog_http_servers,
        _catalog_logs,
        _catalog_messaging,
        _catalog_process,
        _catalog_rpc,
    )

    return (*_catalog_http_clients.ENTRIES, *_catalog_http_servers.ENTRIES,
            *_catalog_data.ENTRIES, *_catalog_messaging.ENTRIES, *_catalog_rpc.ENTRIES,
            *_catalog_process.ENTRIES, *_catalog_logs.ENTRIES)


_lock = threading.Lock()
_status: dict[str, tuple[str, str]] = {}


def status() -> dict[str, tuple[str, str]]:
    """name → (state, detail): armed, applied, disabled, failed."""
    with _lock:
        return dict(_status)


def _set(name: str, state: str, detail: str = "") -> None:
    with _lock:
        _status[name] = (state, detail)


def arm(context: PatchContext, registry: tuple[Instrumentation, ...] | None = None) -> int:
    """Register a post-import hook per entry; returns how many entries were armed."""
    from . import contrib
    from ._import_hooks import when_imported

    disabled = set(context.config.disabled_instrumentations)
    # Ours steps aside only where a contrib instrumentor is preferred AND installed.
    preferred = contrib.preferred(context.config) if registry is None else frozenset()
    entries = _catalog() if registry is None else registry
    armed = 0
    for entry in entries:
        if entry.name in disabled:
            _set(entry.name, "disabled", "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS")
            continue
        if entry.name in preferred:
            _set(entry.name, "skipped",
                 "contrib instrumentor preferred (TELEMETRYFLOW_PREFER_CONTRIB)")
            continue
        with _lock:
            if entry.name in _status:
                continue  # armed already (bootstrap ran twice): patch once
            _status[entry.name] = ("armed", "")
        hook = _Hook(entry, context)
        for module_name in entry.modules:
            when_imported(module_name, hook)
        armed += 1
    if registry is None:  # the real catalog: installed contrib instrumentors fill the gaps
        armed += len(contrib.arm_contrib(context, {entry.name for entry in entries}))
    return armed


class _Hook:
    """Applies one entry's patch when the first of its modules is imported."""

    def __init__(self, entry: Instrumentation, context: PatchContext) -> None:
        self._entry = entry
        self._context = context
        self._done = False
        self._lock = threading.Lock()

    def __call__(self, module: Any) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        entry = self._entry
        try:
            module_path, _, function = entry.patch.partition(":")
            patch = getattr(importlib.import_module(module_path), function)
            patch(module, self._context)
        except Exception as exc:  # never let a patch break the program's import
            _set(entry.name, "failed", f"{type(exc).__name__}: {exc}")
            _diagnostics.warn(
                f"could not instrument {entry.name} ({type(exc).__name__}: {exc}); "
                "it runs uninstrumented"
            )
            return
        # Record nothing read from the module itself: attributes like flask.__version__ warn
        # (DeprecationWarning), and under `-W error` that would fail the program's import.
        # --info looks versions up through importlib.metadata when asked.
        _set(entry.name, "applied", "")
        _diagnostics.debug(f"instrumented {entry.name} (on import of {entry.modules[0]})")
