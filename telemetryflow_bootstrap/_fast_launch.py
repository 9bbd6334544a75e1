"""The console script's entry: start the program without importing click in the common case.

Importing click is most of the launcher's own start-up cost, and every program run under
``telemetryflow-run`` pays it before it even starts. Nearly every invocation is plain:
``telemetryflow-run [--option VALUE | --flag]... [--] COMMAND [ARGS]...``. Those are parsed
here the way click parses them and the program is exec'd through the same ``_launch`` steps
the click command takes, so it receives the same argv and environment.

Anything else goes to the click command in ``cli``, which starts over from the unchanged
argv: another option (``--help``, ``--info``, ``--version``...), a subcommand, shell
completion, a value that could be read two ways, anything the launcher would print (a
warning, a usage error, "not found"), an exception. Errors, help and completion are then
written by one implementation only, and this module never has to agree with click on them.

The option table lives here, not in ``cli``, so both parsers read the same one: the click
command is built from it, and an option added to the click command alone is unknown here,
which sends its users to click.

Only the standard library and ``_launch`` are imported (checked by
``tests/unit/test_import_budget.py``); the domain's parser only for a launch that must
validate before it execs (strict mode, or a switch whose value only the parser reads).
Otherwise the configuration is validated, and its problems reported once, by the hook in
the program, which reads the same environment: a plain launch does not pay ~20 ms of
imports for that.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from . import _launch

# option, environment variable it sets, metavar, choices (None: free text)
VALUE_OPTIONS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("--service-name", "TELEMETRYFLOW_SERVICE_NAME", "NAME", None),
    ("--endpoint", "TELEMETRYFLOW_ENDPOINT", "URL", None),
    ("--protocol", "TELEMETRYFLOW_PROTOCOL", "", ("grpc", "http")),
    ("--exporter", "TELEMETRYFLOW_EXPORTER", "", ("otlp", "console", "none")),
    ("--environment", "TELEMETRYFLOW_ENVIRONMENT", "NAME", None),
    ("--log-level", "TELEMETRYFLOW_LOG_LEVEL", "", ("debug", "info", "warn", "error", "off")),
)
FLAG_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--insecure", "TELEMETRYFLOW_INSECURE"),
    ("--strict", "TELEMETRYFLOW_STRICT"),
)
DISABLE_OPTION = "--disable"
DISABLE_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
# First words the click command runs as its own commands (cli._SUBCOMMANDS).
SUBCOMMANDS = frozenset({"doctor", "init"})
# What click's main() derives from the program name "telemetryflow-run".
COMPLETE_VAR = "_TELEMETRYFLOW_RUN_COMPLETE"

_CHOICES = {option: choices for option, _var, _metavar, choices in VALUE_OPTIONS}
_FLAGS = frozenset(option for option, _var in FLAG_OPTIONS)

_Parsed = tuple[list[str], list[str], dict[str, str | bool | None]]


def param_name(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def parse(args: Sequence[str]) -> _Parsed | None:
    """``(program, disable, options)`` shaped like the click command's parameters, or
    ``None`` when the click command must read ``args`` itself.

    Accepted: the value options (``--opt VALUE`` or ``--opt=VALUE``; a choice in any ASCII
    case), the flags, ``--disable`` (repeatable), then ``--`` or the first word not starting
    with ``-``, then everything after as the program, given unchanged. Refused (``None``):
    any other word starting with ``-`` before the program (click's own options, typos,
    ``-x`` clusters), a value missing, starting with ``-`` (click would take it; whether it
    meant an option is a doubt) or not among the choices, a value on a flag, no program, a
    program starting with ``-`` (click reports it as an option) and a first word naming a
    subcommand (even after ``--``: click decides that one).
    """
    options: dict[str, str | bool | None] = {param_name(o): None for o in _CHOICES}
    options.update((param_name(o), False) for o in _FLAGS)
    disable: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if arg[:1] != "-" or len(arg) == 1:
            i -= 1
            break
        name, equals, explicit = arg.partition("=")
        if name in _FLAGS:
            if equals:
                return None
            options[param_name(name)] = True
            continue
        if name not in _CHOICES and name != DISABLE_OPTION:
            return None
        if equals:
            value = explicit
        elif i < len(args) and args[i][:1] != "-":
            value = args[i]
            i += 1
        else:
            return None
        if name == DISABLE_OPTION:
            disable.append(value)
            continue
        choices = _CHOICES[name]
        if choices is not None:
            # click compares casefolded; for ASCII that is lower(), and it returns the
            # choice as written in the table.
            if not value.isascii() or value.lower() not in choices:
                return None
            value = value.lower()
        options[param_name(name)] = value
    program = list(args[i:])
    if not program or program[0][:1] in ("", "-") or program[0] in SUBCOMMANDS:
        return None
    return program, disable, options


def overrides(environ: Mapping[str, str], disable: Sequence[str],
              options: Mapping[str, object]) -> dict[str, str]:
    """The variables the options set; shared with the click command so both paths give the
    program the same environment."""
    result: dict[str, str] = {}
    for option, var, _metavar, choices in VALUE_OPTIONS:
        value = options.get(param_name(option))
        if value is not None:
            result[var] = str(value).lower() if choices is not None else str(value)
    for option, var in FLAG_OPTIONS:
        if options.get(param_name(option)):
            result[var] = "true"
    disabled = _launch.disabled_instrumentations(environ, disable)
    if disabled is not None:
        result[DISABLE_VAR] = disabled
    return result


def plan(args: Sequence[str],
         environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]] | None:
    """The program's argv and environment as the click command computes them for ``args``,
    or ``None`` where it would print something first (or ``parse`` refuses): only the
    click command prints.

    Follows ``cli._cli``: the same ``_launch`` calls in the same order, minus the printing.
    Like it, it leaves the configuration's problems to the hook to report, and reads them
    itself only in strict mode (to refuse).
    """
    parsed = parse(args)
    if parsed is None:
        return None
    program, disable, options = parsed
    environ = dict(environ)
    env = _launch.child_environment(environ, overrides(environ, disable, options))
    quick = _launch.switches(env)
    if quick is not None and not quick[1]:
        enabled = quick[0]
    else:  # strict, or a switch only the parser can read: validate as cli does
        from .domain.config import load_config

        config, reading = load_config(env)
        enabled = config.enabled
        if enabled and config.strict and reading.problems:
            return None  # cli refuses to start the program
    if enabled and (not _launch.hook_installed() or _launch.hook_bypassed(program)):
        return None  # cli warns: a broken install, or a program that cannot load the hook
    return program, env


def main(prog_name: str | None = "telemetryflow-run") -> None:
    """Console-script entry point (and ``python -m telemetryflow_bootstrap``'s, with
    ``prog_name=None``: click then names it after the module): exec the program, else run
    the click command (which exits with the program's status or its own)."""
    # On Windows click expands wildcards in argv; completion is click's to answer.
    if os.name != "nt" and COMPLETE_VAR not in os.environ:
        # Any failure, "not found" included, is the click command's to redo and report.
        try:
            launch = plan(sys.argv[1:], os.environ)
            if launch is not None:
                _launch.exec_program(*launch)  # returns only by raising
        except Exception:
            pass
    from .cli import main as click_main

    click_main(prog_name=prog_name)
