"""Child processes continue the current trace.

``subprocess.Popen`` (and so ``run``/``call``/``check_output``/…) and the ``os.exec*e``,
``os.spawn*e`` and ``os.posix_spawn*`` functions get a copy of the environment carrying
``TRACEPARENT``/``TRACESTATE``/``BAGGAGE`` for the current span; ``os.execv``/``execvp`` are
routed to their ``e`` variants with that copy. The caller's ``env=`` dict and ``os.environ``
are never mutated. ``os.system`` and ``os.popen`` take no environment and are left alone.
No spans, no metrics; reads no variables. Costs nothing when no span is current.

An ``os.exec*`` replaces the process: nothing after it runs, atexit included. Just before
it, the process span is ended and what is buffered exported (within the shutdown timeout),
as at exit; else the spans and records made before the exec were lost, and the new
program's process span had a parent that never arrived. (If the exec then fails, the
program goes on without its process span.)
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

from .._context_env import child_environment


def patch(module: Any, context: Any) -> None:
    parameters = list(inspect.signature(module.Popen.__init__).parameters)
    _wrap_method(
        module, "Popen.__init__", _guarded(_env_argument(parameters.index("env") - 1))
    )
    _patch_os()


# Plain function wrappers rather than wrapt's: ``subprocess`` is imported at every start-up
# (by the OpenTelemetry SDK itself), and importing wrapt there would cost every process.
def _wrap_function(owner: Any, name: str, wrapper: Any) -> None:
    original = getattr(owner, name)
    if getattr(original, "__telemetryflow_wrapped__", False):
        return

    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        return wrapper(original, None, args, kwargs)

    call.__telemetryflow_wrapped__ = True  # type: ignore[attr-defined]
    setattr(owner, name, call)


def _wrap_method(owner: Any, dotted: str, wrapper: Any) -> None:
    class_name, _, name = dotted.partition(".")
    cls = getattr(owner, class_name)
    original = cls.__dict__[name]
    if getattr(original, "__telemetryflow_wrapped__", False):
        return

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return wrapper(functools.partial(original, self), self, args, kwargs)

    method.__telemetryflow_wrapped__ = True  # type: ignore[attr-defined]
    setattr(cls, name, method)


def _guarded(prepare: Callable[[tuple, dict], tuple[tuple, dict]]) -> Any:
    """If preparing the arguments fails, the call proceeds exactly as the program made it."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        with contextlib.suppress(Exception):
            args, kwargs = prepare(args, kwargs)
        return wrapped(*args, **kwargs)

    return wrapper


def _env_argument(index: int) -> Callable[[tuple, dict], tuple[tuple, dict]]:
    """The environment is positional argument ``index`` (negative: from the end) or ``env=``."""

    def prepare(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if "env" in kwargs or not (-len(args) <= index < len(args)):
            env = child_environment(kwargs.get("env"))
            return (args, {**kwargs, "env": env}) if env is not None else (args, kwargs)
        env = child_environment(args[index])
        if env is None:
            return args, kwargs
        new = list(args)
        new[index] = env
        return tuple(new), kwargs

    return prepare


def _patch_os() -> None:
    import os

    # execve(path, args, env), execle(path, *args, env), spawnve(mode, path, args, env)...
    # (the exec*e functions written in Python end in os.execve: it alone exports first)
    _wrap_function(os, "execve", _exporting_first(_env_argument(-1)))
    for name in (
        "execle",
        "execlpe",
        "execvpe",
        "spawnve",
        "spawnle",
        "spawnvpe",
        "spawnlpe",
    ):
        if hasattr(os, name):
            _wrap_function(os, name, _guarded(_env_argument(-1)))
    # posix_spawn(path, argv, env, *, ...)
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            _wrap_function(os, name, _guarded(_env_argument(2)))
    for plain, with_env in (("execv", "execve"), ("execvp", "execvpe")):
        _route_to_env_variant(os, plain, with_env)


def _route_to_env_variant(os_module: Any, plain: str, with_env: str) -> None:
    def call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        env = child_environment(None) if len(args) == 2 and not kwargs else None
        if env is None:
            if plain == "execv":  # (execvp ends in execv or execve: they export first)
                _export_before_exec()
            return wrapped(*args, **kwargs)
        return getattr(os_module, with_env)(args[0], args[1], env)

    _wrap_function(os_module, plain, call)


def _exporting_first(prepare: Callable[[tuple, dict], tuple[tuple, dict]]) -> Any:
    """As ``_guarded``, then export what is buffered: the process is about to be replaced."""

    def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        with contextlib.suppress(Exception):
            args, kwargs = prepare(args, kwargs)
        _export_before_exec()
        return wrapped(*args, **kwargs)

    return wrapper


def _export_before_exec() -> None:
    with contextlib.suppress(Exception):
        from .. import lifecycle

        lifecycle.before_exec()
