"""OpenTelemetry contrib instrumentors (``opentelemetry-instrumentation-*`` packages, or any
distribution with an ``opentelemetry_instrumentor`` entry point), used next to ours.

Which one instruments a library
    Ours, when we have one (a name in our catalogs, or ``logging``/``runtime_metrics`` which
    bootstrap installs); the contrib instrumentor is then skipped. Listing the name in
    ``TELEMETRYFLOW_PREFER_CONTRIB`` turns that around: ``registry.arm`` leaves ours out
    (``preferred``) and the contrib instrumentor runs. A library is never instrumented twice.
    ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS`` (alias ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``)
    disables a contrib instrumentor by its entry point name, as ``opentelemetry-instrument``
    does, and also by the name of ours it stands in for.
When
    Lazily, like ours: a post-import hook on the modules of the library the package
    declares in its ``instruments`` extra (a distribution's modules come from its
    ``top_level.txt`` or its file list), or, when it declares none (stdlib targets such as
    ``urllib``, ``sqlite3``), on the module named like the entry point. The instrumentor's
    own module is imported only then: most of them import their library at the top.
Cost
    Every start-up asks; most have no contrib package. So a pre-check first reads only the
    ``entry_points.txt`` files of the ``*.dist-info``/``*.egg-info`` directories on
    ``sys.path`` for the group name (~2 ms for 60 packages); only when it is there does the
    ``importlib.metadata.entry_points(group=...)`` scan run (~9 ms for the same 60, and it
    grows with every installed package). Once per process, in memory: nothing is cached on
    disk, so installing or removing a package takes effect at the next start.

Produces whatever the contrib instrumentor produces (with our tracer and meter providers).
Environment: ``TELEMETRYFLOW_PREFER_CONTRIB``, ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS``.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

from .. import _diagnostics
from . import registry

_GROUP = "opentelemetry_instrumentor"
# Contrib entry point name → the name of ours that covers the same library.
_COVERED_BY = {"urllib": "http_client", "system_metrics": "runtime_metrics",
               "mysql": "mysql_connector", "mysqlclient": "mysqldb"}
# Ours, installed by bootstrap for the whole process rather than through the catalogs.
_PROCESS_LEVEL = frozenset({"logging", "runtime_metrics"})
_INSTRUMENTS_EXTRA = re.compile(r"""extra\s*==\s*["']instruments(?:-any)?["']""")
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

_lock = threading.Lock()
_found: tuple[Any, ...] | None = None
_armed = False


def ours_for(contrib_name: str) -> str:
    """The name of our instrumentation that a contrib entry point stands in for."""
    return _COVERED_BY.get(contrib_name, contrib_name)


def installed() -> tuple[Any, ...]:
    """The ``opentelemetry_instrumentor`` entry points, one per name (the first on
    ``sys.path`` wins, as for imports); scanned once per process."""
    global _found
    with _lock:
        if _found is None:
            unique: dict[str, Any] = {}
            if _may_have_instrumentors():
                from importlib.metadata import entry_points

                for entry_point in entry_points(group=_GROUP):
                    unique.setdefault(entry_point.name, entry_point)
            _found = tuple(unique.values())
        return _found


def _may_have_instrumentors() -> bool:
    """False only when no distribution on ``sys.path`` can declare an instrumentor entry
    point; anything this cheap look cannot rule out (a zip on the path, a custom
    distribution finder) answers True and gets the full scan."""
    from importlib.machinery import PathFinder

    if any(hasattr(finder, "find_distributions") and finder is not PathFinder
           for finder in sys.meta_path):
        return True
    marker = _GROUP.encode()
    for entry in sys.path:
        if not isinstance(entry, str):
            return True
        try:
            children = os.scandir(entry or ".")
        except NotADirectoryError:
            return True  # a zip (zipapp, egg): importlib.metadata reads inside it
        except OSError:
            continue  # missing directories are common (python3XX.zip)
        with children:
            for child in children:
                name = child.name.lower()
                if name.endswith((".dist-info", ".egg-info")) or (
                        name == "egg-info" and entry.endswith(".egg")):
                    try:
                        with open(os.path.join(child.path, "entry_points.txt"), "rb") as file:
                            if marker in file.read():
                                return True
                    except OSError:
                        continue
    return False


def preferred(config: Any) -> frozenset[str]:
    """Our names to leave to an installed contrib instrumentor (``TELEMETRYFLOW_PREFER_CONTRIB``
    names it and one is installed). No scan when nothing is preferred."""
    wanted = {ours_for(name) for name in config.prefer_contrib}
    if not wanted:
        return frozenset()
    try:
        return frozenset(wanted & {ours_for(ep.name) for ep in installed()})
    except Exception as exc:  # unreadable package metadata: keep ours
        _diagnostics.warn(f"cannot list contrib instrumentors ({type(exc).__name__}: {exc})")
        return frozenset()


def arm_contrib(context: Any, our_names: Iterable[str]) -> list[str]:
    """Arm the installed contrib instrumentors that do not compete with ours; returns the
    entry point names armed. Once per process; never raises."""
    global _armed
    with _lock:
        if _armed:
            return []
        _armed = True
    try:
        return _arm(context, set(our_names) | _PROCESS_LEVEL)
    except Exception as exc:
        _diagnostics.warn(f"contrib instrumentors not activated ({type(exc).__name__}: {exc})")
        return []


def _arm(context: Any, ours: set[str]) -> list[str]:
    config = context.config
    found = installed()
    prefer = {ours_for(name) for name in config.prefer_contrib}
    for name in sorted(prefer - {ours_for(ep.name) for ep in found}):
        _diagnostics.warn(f"TELEMETRYFLOW_PREFER_CONTRIB names {name!r} but no contrib "
                          "instrumentor for it is installed; telemetryflow's own is used")
    disabled = set(config.disabled_instrumentations)
    armed = []
    for entry_point in found:
        name = entry_point.name
        key = f"contrib:{name}"
        mine = ours_for(name)
        if name in disabled or mine in disabled:
            registry._set(key, "disabled", "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS")
            continue
        if mine in ours and mine not in prefer:
            registry._set(key, "skipped", f"telemetryflow instruments {mine} itself "
                                          f"(TELEMETRYFLOW_PREFER_CONTRIB={mine} uses this one)")
            continue
        modules = _target_modules(entry_point)
        if not modules:
            registry._set(key, "skipped", "the library it instruments is not installed")
            continue
        from ._import_hooks import when_imported

        hook = _ContribHook(entry_point, key, context)
        for module_name in modules:
            when_imported(module_name, hook)
        registry._set(key, "armed", ",".join(modules))
        armed.append(name)
    return armed


def _target_modules(entry_point: Any) -> tuple[str, ...]:
    """The modules whose import should activate the instrumentor, from package metadata
    (importing the instrumentor to ask it would import its library)."""
    from importlib.metadata import PackageNotFoundError, distribution

    dist = getattr(entry_point, "dist", None)
    requires = (dist.requires or []) if dist is not None else []
    targets = [r for r in requires if _INSTRUMENTS_EXTRA.search(r)]
    if not targets:
        return (entry_point.name,)
    modules: dict[str, None] = {}
    for requirement in targets:
        match = _REQUIREMENT_NAME.match(requirement)
        if match is None:
            continue
        try:
            target = distribution(match.group(1))
        except PackageNotFoundError:
            continue
        modules.update(dict.fromkeys(_top_level_modules(target)))
    return tuple(modules)


def _top_level_modules(dist: Any) -> tuple[str, ...]:
    text = dist.read_text("top_level.txt")
    if text:
        return tuple(line.strip().replace("/", ".") for line in text.splitlines()
                     if line.strip())
    names: dict[str, None] = {}
    for path in dist.files or ():
        parts = path.parts
        head = parts[0] if parts else ""
        if not head or head in ("..", "__pycache__") or head.endswith(
                (".dist-info", ".egg-info", ".data")):
            continue
        if len(parts) > 1:
            names[head] = None
        elif head.endswith(".py"):
            names[head[:-3]] = None
        elif head.endswith((".so", ".pyd")):
            names[head.split(".", 1)[0]] = None
    if names:
        return tuple(names)
    return (dist.metadata["Name"].lower().replace("-", "_"),)


class _ContribHook:
    """Loads and runs one contrib instrumentor when the first of its modules is imported.
    Like our own hooks it must never raise: that would fail the program's import."""

    def __init__(self, entry_point: Any, key: str, context: Any) -> None:
        self._entry_point = entry_point
        self._key = key
        self._context = context
        self._done = False
        self._lock = threading.Lock()

    def __call__(self, module: Any) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            instrumentor = self._entry_point.load()()
            # Older opentelemetry-instrumentation passes the flag on to _instrument(), which
            # ignores it; newer raises instead of logging a version conflict.
            instrumentor.instrument(raise_exception_on_conflict=True,
                                    **_providers(self._context))
        except Exception as exc:
            if type(exc).__name__ == "DependencyConflictError":  # a supported-versions miss
                registry._set(self._key, "skipped", str(exc))
                _diagnostics.debug(f"contrib instrumentor {self._entry_point.name!r} "
                                   f"skipped: {exc}")
                return
            registry._set(self._key, "failed", f"{type(exc).__name__}: {exc}")
            _diagnostics.warn(f"contrib instrumentor {self._entry_point.name!r} failed "
                              f"({type(exc).__name__}: {exc}); its library runs uninstrumented")
            return
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", True):
            registry._set(self._key, "applied", f"on import of {module.__name__}")
        else:  # BaseInstrumentor declines on a version conflict and logs why
            registry._set(self._key, "skipped", "the instrumentor declined (version conflict?)")


def _providers(context: Any) -> dict[str, Any]:
    """Our providers, so contrib spans go where ours go even if the globals were not set."""
    handler = context.handler
    found = {}
    for name in ("tracer_provider", "meter_provider"):
        provider = getattr(handler, name, None)
        if provider is not None:
            found[name] = provider
    return found
