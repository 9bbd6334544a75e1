"""The global text-map propagator from ``OTEL_PROPAGATORS``-style names."""

from __future__ import annotations

import os
import sys
from typing import Any

from opentelemetry.propagators.composite import CompositePropagator

from .. import _diagnostics


def import_propagate() -> Any:
    """``opentelemetry.propagate``, imported without letting it act on OTEL_PROPAGATORS.

    At import that module builds its own propagator from the variable and raises
    ``ValueError`` for a name it cannot find (``b3`` without its package, ``TraceContext``
    spelled in capitals): that would stop all instrumentation, although our reader already
    reported the name and the global propagator is replaced from the config right after.
    So the variable reads ``none`` while it imports (nothing to look up) and is put back at
    once, for the program and its children. Called at the start of the SDK's start-up,
    before any of our threads exists, since ``os.environ`` is process-wide.
    """
    module = sys.modules.get("opentelemetry.propagate")
    if module is not None:
        return module
    saved = os.environ.get("OTEL_PROPAGATORS")
    if saved is not None:
        os.environ["OTEL_PROPAGATORS"] = "none"
    try:
        from opentelemetry import propagate
    finally:
        if saved is not None:
            os.environ["OTEL_PROPAGATORS"] = saved
    return propagate


def build_propagator(names: tuple[str, ...]) -> Any:
    propagators = []
    for name in names:
        if name == "none":
            return CompositePropagator([])
        if name == "tracecontext":
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )

            propagators.append(TraceContextTextMapPropagator())
        elif name == "baggage":
            from opentelemetry.baggage.propagation import W3CBaggagePropagator

            propagators.append(W3CBaggagePropagator())
        else:
            found = _from_entry_point(name)
            if found is None:
                _diagnostics.warn(
                    f"propagator {name!r} (TELEMETRYFLOW_PROPAGATORS/OTEL_PROPAGATORS) is not "
                    "installed; expected tracecontext, baggage or an installed propagator package"
                )
            else:
                propagators.append(found)
    return CompositePropagator(propagators)


def _from_entry_point(name: str) -> Any:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group="opentelemetry_propagator", name=name):
        try:
            return entry_point.load()()
        except Exception as exc:
            _diagnostics.warn(f"cannot load propagator {name!r}: {exc}")
    return None
