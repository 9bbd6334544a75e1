"""Post-import hooks without importing wrapt at start-up.

``when_imported(name, hook)`` calls ``hook(module)`` once, right after ``name`` is imported
(or at once if it already is). wrapt offers the same, but importing wrapt costs a Python
start-up some 50 ms and ~50 modules (it pulls in asyncio); every instrumented process pays
for what runs here, while wrapt is needed only once a library is actually patched.

The finder sits first on ``sys.meta_path`` and answers only for names with pending hooks:
it asks the other finders for the real spec and wraps its loader so the hooks run after the
module executed. ``__loader__``/``__spec__.loader`` are put back to the real loader before the
module runs, so resources and introspection see exactly what they would without us.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

Hook = Callable[[Any], None]

_lock = threading.RLock()
_pending: dict[str, list[Hook]] = {}
_finder_installed = False


def when_imported(name: str, hook: Hook) -> None:
    global _finder_installed
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _pending.setdefault(name, []).append(hook)
            if not _finder_installed:
                sys.meta_path.insert(0, _Finder())
                _finder_installed = True
            return
    hook(module)


def _fire(name: str, module: Any) -> None:
    with _lock:
        hooks = _pending.pop(name, [])
    for hook in hooks:
        hook(module)


class _Finder:
    """Finds nothing itself; wraps the loader of modules that have hooks waiting."""

    _busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _pending or getattr(self._busy, fullname, False):
            return None
        setattr(self._busy, fullname, True)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            setattr(self._busy, fullname, False)
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _HookedLoader(spec.loader, fullname)
        return spec

    def invalidate_caches(self) -> None:
        pass


class _HookedLoader:
    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _fire(self._name, sys.modules.get(self._name, module))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
