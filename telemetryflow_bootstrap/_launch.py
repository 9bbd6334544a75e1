"""What ``telemetryflow-run`` does before it becomes the program: pure, testable steps.

The launcher computes the program's environment (``child_environment``), finds the program
the way ``env`` does (``resolve_command``) and replaces itself with it (``exec_program``), so
the program keeps the launcher's PID, stdin/stdout/stderr and signals, and its exit code is
the one the caller sees.

The launcher does not print configuration problems: the hook in the program reads the same
environment and reports each one (``problem_messages()``), then sets ``REPORTED_ENV``
(``_TELEMETRYFLOW_REPORTED``) to ``problems_digest()`` of what it printed, so the Python
processes the program starts (same environment, same digest) stay silent. A changed
environment gives a different digest, so new problems are never hidden. Only a strict
launch (``TELEMETRYFLOW_STRICT=true``) reads the configuration before exec, to refuse to
start the program when it has problems.

Only the standard library and the domain layer are imported here: the launcher must stay
cheap to start and must not load OpenTelemetry into a process that is about to be replaced.
A plain launch (``_fast_launch``) does not even import the domain's parser, which with
``dataclasses``, ``typing``, ``re`` and ``urllib.parse`` was most of what the launcher
process cost before exec (~20 of 24 ms): ``switches`` reads the two settings a launch
needs, and the variables' OpenTelemetry fallbacks (all ``OTEL_*``) are looked up only when
such a variable is set.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Mapping, Sequence

from .domain.errors import TelemetryFlowError

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing: see the module doc)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from .domain.environment import EnvironmentReading

REPORTED_ENV = "_TELEMETRYFLOW_REPORTED"

_HOOK_FILE = "sitecustomize.py"
_PROG = "telemetryflow-run"
_DISABLED_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
# Where a variable's OpenTelemetry fallback spells a value differently.
_OTEL_SPELLING = {("TELEMETRYFLOW_PROTOCOL", "http"): "http/protobuf"}
# The words the domain's boolean parser accepts (domain.parsers, compared in a test).
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class LaunchError(TelemetryFlowError):
    """The program cannot be started; carries the exit code a shell (or ``env``) would use."""

    def __init__(self, command: str, error_number: int) -> None:
        self.command = command
        self.error_number = error_number
        self.exit_code = 127 if error_number in (errno.ENOENT, errno.ENOTDIR) else 126
        self.message = f"{_PROG}: '{command}': {os.strerror(error_number)}"
        super().__init__(self.message)


def hook_directory() -> Path:
    """The folder to put first on ``PYTHONPATH`` so the program imports our sitecustomize.

    A wheel ships the hook inside the package (``_hook``); a checkout or editable install
    keeps it in the top-level ``sitecustomize/`` folder next to the package.
    """
    from pathlib import Path

    return Path(_hook_directory())


def hook_directory_path() -> str:
    """``hook_directory()`` as a string, without importing pathlib."""
    return _hook_directory()


def _hook_directory() -> str:
    # os.path, not pathlib: importing pathlib is a noticeable part of what the launcher's
    # fast path (_fast_launch) costs, and this is all it would be imported for.
    package = os.path.dirname(os.path.realpath(__file__))
    shipped = os.path.join(package, "_hook")
    if os.path.isfile(os.path.join(shipped, _HOOK_FILE)):
        return shipped
    return os.path.join(os.path.dirname(package), "sitecustomize")


def hook_file() -> Path:
    return hook_directory() / _HOOK_FILE


def hook_installed() -> bool:
    """Whether the hook file is there; the launcher warns (``cli``) when it is not."""
    return os.path.isfile(os.path.join(_hook_directory(), _HOOK_FILE))


def child_environment(environ: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The program's environment: the hook first on ``PYTHONPATH``, the options applied.

    When telemetry is disabled the environment is returned exactly as given (options
    included are ignored), so a disabled launcher is indistinguishable from running the
    program directly.
    """
    quick = switches(environ)
    if not (quick[0] if quick is not None else _load_config(environ)[0].enabled):
        return dict(environ)
    env = dict(environ)
    for name, value in overrides.items():
        _apply_override(env, name, value)
    env["PYTHONPATH"] = _prepend_path(_hook_directory(), environ.get("PYTHONPATH", ""))
    # uWSGI forks its workers in C and, unless told to, never runs Python's after-fork hooks:
    # workers would report the master's pid and wait at exit for the master's threads. uWSGI
    # reads any option from UWSGI_<OPTION>; other programs ignore it. The user's word wins.
    env.setdefault("UWSGI_PY_CALL_OSAFTERFORK", "1")
    return env


def _apply_override(env: dict[str, str], name: str, value: str) -> None:
    """An option is the user's last word: an OpenTelemetry fallback already set for the same
    setting gets the same value, so the two never disagree (no "both set and differ" warning)
    and OpenTelemetry's own components see what the option said."""
    variable = _variable(name) if _any_otel(env) else None  # (fallbacks are OTEL_*)
    fallbacks = [f for f in variable.fallbacks if env.get(f, "").strip()] if variable else []
    if fallbacks:
        value = _OTEL_SPELLING.get((name, value), value)
    env[name] = value
    for fallback in fallbacks:
        env[fallback] = value


def _prepend_path(entry: str, current: str) -> str:
    # Dropping the entry from further down (rather than only checking the first one) keeps
    # nested launchers and re-runs from stacking it, whatever the user's PYTHONPATH did.
    if not current:
        return entry
    norm = os.path.normpath(entry)
    kept = [part for part in current.split(os.pathsep)
            if not part or os.path.normpath(part) != norm]
    if not any(kept):
        return entry
    return os.pathsep.join([entry, *kept])


def disabled_instrumentations(environ: Mapping[str, str], names: Iterable[str]) -> str | None:
    """``--disable`` names added to those the environment already disables, or ``None``.

    The existing list is read from the variable that is in effect (ours, else the
    OpenTelemetry fallback), so an option never re-enables what the environment disabled.
    """
    added = [part.strip() for name in names for part in name.split(",") if part.strip()]
    if not added:
        return None
    existing = environ.get(_DISABLED_VAR, "")
    if not existing.strip() and _any_otel(environ):
        for var in _variable(_DISABLED_VAR).fallbacks:
            existing = environ.get(var, "")
            if existing.strip():
                break
    merged: dict[str, None] = {}
    for name in [*existing.split(","), *added]:
        if name.strip():
            merged.setdefault(name.strip(), None)
    return ",".join(merged)


def switches(environ: Mapping[str, str]) -> tuple[bool, bool] | None:
    """``(enabled, strict)`` as ``load_config(environ)`` reads them, without the domain's
    parser, when each variable deciding them (``TELEMETRYFLOW_ENABLED``,
    ``OTEL_SDK_DISABLED``, ``TELEMETRYFLOW_STRICT``) is unset, blank or a boolean word;
    ``None`` otherwise: a malformed value is a problem only the parser reports."""
    words: dict[str, bool | None] = {}
    for name in ("TELEMETRYFLOW_ENABLED", "OTEL_SDK_DISABLED", "TELEMETRYFLOW_STRICT"):
        word = environ.get(name, "").strip().lower()
        if not word:
            words[name] = None
        elif word in _TRUE_WORDS:
            words[name] = True
        elif word in _FALSE_WORDS:
            words[name] = False
        else:
            return None
    enabled = words["TELEMETRYFLOW_ENABLED"]
    if enabled is None:
        enabled = not words["OTEL_SDK_DISABLED"]
    return enabled, bool(words["TELEMETRYFLOW_STRICT"])


def _load_config(environ: Mapping[str, str]) -> tuple[Any, Any]:
    from .domain.config import load_config

    return load_config(environ)


def _variable(name: str) -> Any:
    from .domain.environment import BY_NAME

    return BY_NAME.get(name)


def _any_otel(environ: Mapping[str, str]) -> bool:
    return any(name.startswith("OTEL_") for name in environ)


def problem_messages(reading: EnvironmentReading) -> list[str]:
    """What a reading's problems and warnings say, one message per line, unprefixed.

    The launcher prints each after ``telemetryflow: warning:`` and the hook through its own
    logger; both digest these messages, so they agree on what was reported.
    """
    messages = [f"{problem} ({reading.outcome(problem)})" for problem in reading.problems]
    messages.extend(reading.warnings)
    return messages


def problems_digest(lines: Sequence[str]) -> str:
    """A short stable fingerprint of reported messages (``problem_messages``), for
    ``REPORTED_ENV``."""
    # Imported here: hashlib loads OpenSSL, which a launch with nothing to report never needs.
    import hashlib

    return hashlib.sha1("\n".join(lines).encode("utf-8", "backslashreplace")).hexdigest()[:12]


# Python's own options that keep a program from importing the hook: -E and -I ignore
# PYTHONPATH (where the hook folder is), -S skips the ``site`` import that runs
# sitecustomize. Each maps to what the warning says of it.
_HOOK_BYPASSING_FLAGS = {
    "I": "-I (isolated mode) ignores PYTHONPATH",
    "E": "-E ignores PYTHONPATH",
    "S": "-S skips the site import that loads sitecustomize",
}
# Options taking a value as the next word when none is attached (-W default, -X dev).
_VALUE_FLAGS = frozenset("WX")


def hook_bypassed(program: Sequence[str]) -> str | None:
    """Why a Python program cannot load the hook, from its interpreter's options (``python
    -I app.py``: it would run without telemetry and nobody would say so), else ``None``.

    Only a command named like a CPython or PyPy interpreter (``python``, ``python3.11``,
    ``pypy3``) is read, and only its options before the script, ``-c`` or ``-m``."""
    if not program:
        return None
    name = os.path.basename(program[0])
    if name.lower().endswith(".exe"):
        name = name[:-4]
    stem = name[6:] if name.startswith("python") else name[4:] if name.startswith("pypy") \
        else None
    if stem is None or stem.strip("0123456789.") not in ("", "d", "m", "t", "-dbg"):
        return None
    args = iter(program[1:])
    for arg in args:
        if arg[:1] != "-" or arg in ("-", "--"):
            return None  # the script (or stdin) comes before anything that matters
        if arg.startswith("--"):
            if arg == "--check-hash-based-pycs":
                next(args, None)
            continue
        for index, flag in enumerate(arg[1:], 1):
            if flag in _HOOK_BYPASSING_FLAGS:
                return f"{name} {_HOOK_BYPASSING_FLAGS[flag]}"
            if flag in "cm":
                return None  # the rest is the command or module: no options follow
            if flag in _VALUE_FLAGS:
                if index == len(arg) - 1:
                    next(args, None)
                break
    return None


def resolve_command(name: str, path_env: str | None) -> str:
    """The file ``execve`` should run for ``name``, searched on ``path_env`` like ``env`` does.

    A name containing ``/`` is used as is. Raises ``LaunchError`` with 127 when nothing is
    found and 126 when what is found cannot be executed (including a directory).
    """
    if not name:
        raise LaunchError(name, errno.ENOENT)
    if os.sep in name or (os.altsep and os.altsep in name):
        _check_runnable(name)
        return name
    search = os.defpath if path_env is None else path_env
    denied: int | None = None
    for directory in search.split(os.pathsep):
        candidate = os.path.join(directory, name)
        if not os.path.exists(candidate):
            continue
        try:
            _check_runnable(candidate)
        except LaunchError as exc:
            # Keep looking, as execvp does; report "cannot execute" only if nothing runs.
            denied = denied or exc.error_number
            continue
        return candidate
    raise LaunchError(name, denied or errno.ENOENT)


def _check_runnable(path: str) -> None:
    if not os.path.exists(path):
        raise LaunchError(path, errno.ENOENT)
    if os.path.isdir(path):
        raise LaunchError(path, errno.EISDIR)
    if not os.access(path, os.X_OK):
        raise LaunchError(path, errno.EACCES)


def exec_program(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Replace this process with ``argv`` (resolved on ``env``'s PATH); returns only by raising.

    ``argv[0]`` is passed on as typed, so the program sees the name the user used.
    """
    path = resolve_command(argv[0], env.get("PATH"))
    # Buffered output written before exec would be lost with the old process image.
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib would cost the launcher ~3 ms of imports)
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        os.execve(path, list(argv), dict(env))
    except OSError as exc:  # e.g. no such interpreter in the shebang, or exec format error
        raise LaunchError(argv[0], exc.errno or errno.EACCES) from exc
