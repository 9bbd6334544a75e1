"""The service name when none is configured: the program's own name, never
``unknown_service``. Stdlib only; runs in every instrumented process at start-up."""

from __future__ import annotations

import os
import sys

# Carries the name derived in the first process to its children, so a program and the
# Python processes it starts report as one service unless configured otherwise.
DERIVED_ENV = "_TELEMETRYFLOW_DERIVED_SERVICE_NAME"

_FLAGS_WITH_VALUE = frozenset({"-X", "-W", "--check-hash-based-pycs"})


def derive_service_name(argv: list[str] | None = None) -> str:
    """``python app.py`` → app, ``python -m pkg.mod`` → pkg.mod, ``gunicorn app:app`` →
    gunicorn (its console script), ``python -c …``/the REPL → python."""
    args = list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv))
    rest = iter(args[1:])
    for arg in rest:
        if arg == "-m":
            return next(rest, "python") or "python"
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:]
        if arg == "-c" or arg.startswith("-c"):
            return "python"
        if arg in _FLAGS_WITH_VALUE:
            next(rest, None)
            continue
        if arg == "-":
            return "python"
        if arg.startswith("-"):
            continue
        return _script_name(arg)
    return "python"


def _script_name(path: str) -> str:
    if os.path.isdir(path):  # python some_dir/ runs some_dir/__main__.py
        return os.path.basename(os.path.abspath(path)) or "python"
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    if ext not in (".py", ".pyw", ".pyz"):
        stem = base
    if stem == "__main__":
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or "python"
    return stem or "python"
