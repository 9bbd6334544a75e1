"""Trace context through process boundaries: the OpenTelemetry environment-variable carrier
(``TRACEPARENT``, ``TRACESTATE``, ``BAGGAGE``).

A parent hands its current context to a child in the child's environment; a process that
starts with ``TRACEPARENT`` continues that trace. So a script, the CLI it runs and that CLI's
HTTP calls are one trace.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Set once this process handed its context to a child (environment or fork): its process
# span then has descendants elsewhere and must be exported even if it traced nothing itself.
handed_on = False

_ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}


def child_environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """A copy of ``env`` (``os.environ`` when None) carrying the current context, or None when
    there is no context to pass (then the caller's ``env`` is used untouched).

    Never mutates ``env`` or ``os.environ``.
    """
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        return None
    global handed_on
    handed_on = True
    import os

    child = dict(os.environ if env is None else env)
    for header, name in _ENV_KEYS.items():
        child.pop(name, None)
        if header in carrier:
            child[name] = carrier[header]
    return child


def context_from_environment(environ: Mapping[str, str]) -> Any:
    """The context a parent passed in our environment, or None."""
    if not environ.get("TRACEPARENT"):
        return None
    from opentelemetry import propagate, trace

    carrier = {header: environ[name] for header, name in _ENV_KEYS.items() if environ.get(name)}
    context = propagate.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context
