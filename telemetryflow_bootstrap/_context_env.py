"""Trace context through process boundaries: the OpenTelemetry environment-variable carrier
(``TRACEPARENT``, ``TRACESTATE``, ``BAGGAGE``).

A parent hands its current context to a child in the child's environment; a process that
starts with ``TRACEPARENT`` continues that trace. So a script, the CLI it runs and that CLI's
HTTP calls are one trace.

Also the variables the launcher passes on for children only (``keep_for_children``): they
stay in the process's C environment, which every child inherits whatever starts it
(``subprocess``, ``os.system``, ``os.exec*``, multiprocessing), but leave ``os.environ``:
``requests`` and ``urllib`` read every variable in it on every call (the proxy settings),
about 2-4 µs per variable per ``requests.get`` on this project's machines, and the program
has no use for them. An environment the program builds for a child (``env=dict(os.environ)``)
gets them back when it runs that child under the hook (our folder on its ``PYTHONPATH``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Set once this process handed its context to a child (environment or fork): its process
# span then has descendants elsewhere and must be exported even if it traced nothing itself.
handed_on = False

_ENV_KEYS = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE", "baggage": "BAGGAGE"}
_for_children: dict[str, str] = {}  # what keep_for_children took out of os.environ
_hook_folder: list[str] = []  # (computed once, when first needed)


def keep_for_children(values: Mapping[str, str | None]) -> None:
    """Pass ``values`` on to every child process without keeping them in ``os.environ``
    (see the module's docstring); a None value is taken from ``os.environ``, if there."""
    import os

    for name, value in values.items():
        found = os.environ.pop(name, None)  # (also out of the C environment...)
        value = found if value is None else value
        if value is None:
            continue
        os.putenv(name, value)  # (... so back into it alone)
        _for_children[name] = value


def child_environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """A copy of ``env`` (``os.environ`` when None) carrying the current context and the
    variables kept for children, or None when ``env`` needs neither (then the caller's
    ``env`` is used untouched: None inherits the C environment, which has them).

    Never mutates ``env`` or ``os.environ``.
    """
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    traced = "traceparent" in carrier
    kept = _for_children
    # (None inherits the C environment, which has them; a given env only under the hook)
    gets_kept = bool(kept) and (env is None or _runs_the_hook(env))
    lacks_kept = gets_kept and env is not None and not all(name in env for name in kept)
    if not traced and not lacks_kept:
        return None
    import os

    child = dict(os.environ if env is None else env)
    if gets_kept:
        for name, value in kept.items():
            child.setdefault(name, value)
    if traced:
        global handed_on
        handed_on = True
        for header, name in _ENV_KEYS.items():
            child.pop(name, None)
            if header in carrier:
                child[name] = carrier[header]
    return child


def _runs_the_hook(env: Mapping[str, str]) -> bool:
    """Whether a child started with ``env`` imports our hook (its folder on PYTHONPATH)."""
    path = env.get("PYTHONPATH")
    if not path:
        return False
    if not _hook_folder:
        from ._launch import hook_directory_path

        _hook_folder.append(hook_directory_path())
    import os

    return _hook_folder[0] in path.split(os.pathsep)


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
