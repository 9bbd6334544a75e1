"""Installing our providers as the global OpenTelemetry ones.

The OpenTelemetry API lets a global provider be set once per process. We need two things it
does not give: re-initialising after our own shutdown (replace *our* previous provider), and
noticing when somebody else set one first (then the plain API — and contrib instrumentations
— report to theirs, not ours: we say so instead of silently losing data).
"""

from __future__ import annotations

import weakref
from typing import Any

from .. import _diagnostics

_ours: weakref.WeakSet[Any] = weakref.WeakSet()


def _slots(kind: str) -> tuple[Any, str, str, Any]:
    if kind == "tracer":
        from opentelemetry import trace as module

        return module, "_TRACER_PROVIDER", "_TRACER_PROVIDER_SET_ONCE", module.set_tracer_provider
    if kind == "meter":
        from opentelemetry.metrics import _internal as module
        from opentelemetry.metrics import set_meter_provider

        return module, "_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE", set_meter_provider
    from opentelemetry._logs import _internal as module
    from opentelemetry._logs import set_logger_provider

    return module, "_LOGGER_PROVIDER", "_LOGGER_PROVIDER_SET_ONCE", set_logger_provider


def install_global(kind: str, provider: Any) -> bool:
    """Make ``provider`` the global ``kind`` provider; False (and a warning) if another
    library's provider is already installed."""
    module, attr, once_attr, setter = _slots(kind)
    current = getattr(module, attr, None)
    if current is not None and current not in _ours:
        _diagnostics.warn(
            f"a global {kind} provider ({type(current).__module__}.{type(current).__name__}) was "
            "set before telemetryflow started; code using the plain OpenTelemetry API reports to "
            "it, not to telemetryflow (remove the other setup or do not run both)"
        )
        return False
    if current is not None:
        once = getattr(module, once_attr)
        with once._lock:
            once._done = False
    setter(provider)
    _ours.add(provider)
    return getattr(module, attr, None) is provider


def is_ours(provider: Any) -> bool:
    return provider in _ours
