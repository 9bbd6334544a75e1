"""The global text-map propagator from ``OTEL_PROPAGATORS``-style names."""

from __future__ import annotations

from typing import Any

from opentelemetry.propagators.composite import CompositePropagator

from .. import _diagnostics


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
