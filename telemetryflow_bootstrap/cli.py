"""``telemetryflow-run [OPTIONS] COMMAND [ARGS]...``: run a program with auto-instrumentation.

The launcher only prepares the environment, reports configuration problems once and then
*becomes* the program (exec), so the program keeps the PID, the terminal, the signals and
its exit code. The options are shortcuts that set environment variables for the program;
the configuration itself lives in the environment only, so a child process the program
starts is configured the same way.

Kept cheap to import (click, the stdlib-only domain layer, the stdlib): the process is
about to be replaced, and OpenTelemetry is loaded by the hook inside the program.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from . import _launch
from ._version import __version__
from .domain.config import load_config
from .domain.environment import OTEL_SPECIAL, VARIABLES, EnvironmentReading

_PROG = "telemetryflow-run"

_CONTEXT_SETTINGS: dict[str, Any] = {
    # Everything from the program's name on belongs to the program, options included
    # (`telemetryflow-run python -m http.server --bind 127.0.0.1`).
    "ignore_unknown_options": True,
    "allow_interspersed_args": False,
    "help_option_names": ["-h", "--help"],
    "max_content_width": 100,
}

# option, environment variable it sets, metavar, click type (None: free text)
_VALUE_OPTIONS: tuple[tuple[str, str, str, click.ParamType | None], ...] = (
    ("--service-name", "TELEMETRYFLOW_SERVICE_NAME", "NAME", None),
    ("--endpoint", "TELEMETRYFLOW_ENDPOINT", "URL", None),
    ("--protocol", "TELEMETRYFLOW_PROTOCOL", "",
     click.Choice(["grpc", "http"], case_sensitive=False)),
    ("--exporter", "TELEMETRYFLOW_EXPORTER", "",
     click.Choice(["otlp", "console", "none"], case_sensitive=False)),
    ("--environment", "TELEMETRYFLOW_ENVIRONMENT", "NAME", None),
    ("--log-level", "TELEMETRYFLOW_LOG_LEVEL", "",
     click.Choice(["debug", "info", "warn", "error", "off"], case_sensitive=False)),
)
_FLAG_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--insecure", "TELEMETRYFLOW_INSECURE"),
    ("--strict", "TELEMETRYFLOW_STRICT"),
)
_DISABLE_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"


def _param_name(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


class _LauncherCommand(click.Command):
    """Appends the variable table to ``--help``, generated from the one table in the domain
    layer so the help can never miss or misdescribe a variable."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Environment variables (the configuration; options only set them)"):
            for var in VARIABLES:
                also = f"  (or {', '.join(var.fallbacks)})" if var.fallbacks else ""
                # Written unwrapped: a variable name must stay whole to be copied.
                formatter.write(f"{'':>{formatter.current_indent}}{var.name}{also}\n")
                with formatter.indentation():
                    formatter.write_text(f"{var.help} [default: {var.default}]")
        with formatter.section("Standard OpenTelemetry variables also read"):
            formatter.write_dl(list(OTEL_SPECIAL))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    python = sys.version.split()[0]
    click.echo(f"{_PROG} {__version__} (Python {python}, {sys.executable})")
    ctx.exit(0)


def _with_options(func: Callable[..., Any]) -> Callable[..., Any]:
    # Applied in reverse so --help lists the options in table order.
    decorators = [
        click.option(option, _param_name(option), metavar=metavar or None, type=kind,
                     help=f"Sets {var}.")
        for option, var, metavar, kind in _VALUE_OPTIONS
    ]
    decorators.extend(
        click.option(option, _param_name(option), is_flag=True, help=f"Sets {var}=true.")
        for option, var in _FLAG_OPTIONS
    )
    decorators.append(click.option(
        "--disable", "disable", multiple=True, metavar="NAME[,NAME...]",
        help=f"Adds instrumentations to {_DISABLE_VAR} (repeatable)."))
    decorators.append(click.option(
        "--version", is_flag=True, is_eager=True, expose_value=False, callback=_print_version,
        help="Show the version and the Python running the launcher, and exit."))
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@click.command(
    _PROG,
    cls=_LauncherCommand,
    context_settings=_CONTEXT_SETTINGS,
    help="Run COMMAND with OpenTelemetry auto-instrumentation.\n\n"
    "The program replaces the launcher (same PID, stdin/stdout/stderr, signals and exit "
    "code); everything from COMMAND on is passed to it unchanged.\n\n"
    "\b\nExamples:\n"
    "  telemetryflow-run python app.py\n"
    "  telemetryflow-run --service-name shop python -m http.server --bind 127.0.0.1",
)
@_with_options
@click.argument("program", nargs=-1, type=click.UNPROCESSED, metavar="COMMAND [ARGS]...")
@click.pass_context
def _cli(ctx: click.Context, program: tuple[str, ...], disable: tuple[str, ...],
         **options: Any) -> None:
    # Later: the `--info` flag and the `doctor` / `init` subcommands are handled here, before
    # a program is required (e.g. a first word in a small subcommand table), so that
    # `telemetryflow-run doctor` never execs a program of that name by accident.
    if not program:
        raise click.UsageError("missing the program to run, e.g. telemetryflow-run python app.py",
                               ctx)
    if program[0].startswith("-") and program[0] != "-":
        # ignore_unknown_options hands a mistyped launcher option to the program slot; no
        # program is named like an option, so say what is wrong instead of "not found".
        raise click.NoSuchOption(program[0], ctx=ctx)
    environ = dict(os.environ)
    env = _launch.child_environment(environ, _overrides(environ, disable, options))
    config, reading = load_config(env)
    if config.enabled:
        _check_hook()
        _report(ctx, reading, strict=config.strict, environ=environ, env=env)
    try:
        _launch.exec_program(program, env)
    except _launch.LaunchError as exc:
        click.echo(exc.message, err=True)
        ctx.exit(exc.exit_code)


def _overrides(environ: Mapping[str, str], disable: Sequence[str],
               options: Mapping[str, Any]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for option, var, _metavar, kind in _VALUE_OPTIONS:
        value = options.get(_param_name(option))
        if value is not None:
            overrides[var] = str(value).lower() if kind is not None else str(value)
    for option, var in _FLAG_OPTIONS:
        if options.get(_param_name(option)):
            overrides[var] = "true"
    disabled = _launch.disabled_instrumentations(environ, disable)
    if disabled is not None:
        overrides[_DISABLE_VAR] = disabled
    return overrides


def _check_hook() -> None:
    hook = _launch.hook_file()
    if not hook.is_file():
        click.echo(f"telemetryflow: warning: {hook} is missing (broken install?); "
                   "the program runs uninstrumented", err=True)


def _report(ctx: click.Context, reading: EnvironmentReading, *, strict: bool,
            environ: Mapping[str, str], env: dict[str, str]) -> None:
    """Print each problem once, or refuse to run in strict mode.

    Records what was printed in the program's environment so its hook (and a nested
    launcher) do not print the same lines a second time.
    """
    if strict and reading.problems:
        for problem in reading.problems:
            click.echo(f"telemetryflow: error: {problem}", err=True)
        for warning in reading.warnings:
            click.echo(f"telemetryflow: warning: {warning}", err=True)
        click.echo(f"{_PROG}: not starting the program: strict mode "
                   "(TELEMETRYFLOW_STRICT) makes configuration problems fatal", err=True)
        ctx.exit(2)
    messages = _launch.problem_messages(reading)
    if not messages:
        return
    if not _launch.already_reported(environ, messages):
        for message in messages:
            click.echo(f"telemetryflow: warning: {message}", err=True)
    env[_launch.REPORTED_ENV] = _launch.problems_digest(messages)


def main(args: Sequence[str] | None = None, prog_name: str | None = _PROG) -> None:
    """Console-script entry point; exits with the program's status (it never returns when
    the program starts, since the program replaces this process)."""
    _cli.main(args=list(args) if args is not None else None, prog_name=prog_name)
