"""``telemetryflow-run [OPTIONS] COMMAND [ARGS]...``: run a program with auto-instrumentation.

The launcher only prepares the environment, reports configuration problems once and then
*becomes* the program (exec), so the program keeps the PID, the terminal, the signals and
its exit code. The options are shortcuts that set environment variables for the program;
the configuration itself lives in the environment only, so a child process the program
starts is configured the same way.

The console script enters at ``_fast_launch``, which execs the program of a plain
invocation without importing click and hands everything else, unchanged, to ``main`` here:
this module is the reference behaviour, and the only one that prints. The options are
declared once, in ``_fast_launch``, for both.

Kept cheap to import (click, the stdlib-only domain layer, the stdlib): the process is
about to be replaced, and OpenTelemetry is loaded by the hook inside the program. The
diagnostics (``--info``, ``doctor``, ``init``) are imported only on their own paths.

``doctor`` and ``init`` are recognised as the first word only when no ``--`` comes before
it, so a program of that name still runs: ``telemetryflow-run -- doctor`` (or ``./doctor``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from . import _launch
from ._fast_launch import DISABLE_VAR as _DISABLE_VAR
from ._fast_launch import FLAG_OPTIONS as _FLAG_OPTIONS
from ._fast_launch import VALUE_OPTIONS as _VALUE_OPTIONS
from ._fast_launch import overrides as _overrides
from ._fast_launch import param_name as _param_name
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

# ctx.meta key: the program came after `--`, so a first word `doctor`/`init` is a program.
_AFTER_DOUBLE_DASH = "telemetryflow.program_after_double_dash"


class _LauncherCommand(click.Command):
    """Appends the variable table to ``--help``, generated from the one table in the domain
    layer so the help can never miss or misdescribe a variable."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The parser swallows the `--` before the program; remember whether there was one,
        # since it is what makes `telemetryflow-run -- doctor` run a program named doctor.
        given = list(args)
        rest = super().parse_args(ctx, args)
        program = ctx.params.get("program") or ()
        before = len(given) - len(program) - 1
        ctx.meta[_AFTER_DOUBLE_DASH] = bool(program) and before >= 0 and given[before] == "--"
        return rest

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
        click.option(option, _param_name(option), metavar=metavar or None,
                     type=click.Choice(list(choices), case_sensitive=False) if choices else None,
                     help=f"Sets {var}.")
        for option, var, metavar, choices in _VALUE_OPTIONS
    ]
    decorators.extend(
        click.option(option, _param_name(option), is_flag=True, help=f"Sets {var}=true.")
        for option, var in _FLAG_OPTIONS
    )
    decorators.append(click.option(
        "--disable", "disable", multiple=True, metavar="NAME[,NAME...]",
        help=f"Adds instrumentations to {_DISABLE_VAR} (repeatable)."))
    decorators.append(click.option(
        "--info", "info", is_flag=True,
        help="Show versions, the resolved configuration (each value with its source), "
             "warnings and the instrumentations, and exit; no program needed."))
    decorators.append(click.option(
        "--json", "as_json", is_flag=True, help="With --info: print it as JSON."))
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
    "  telemetryflow-run --service-name shop python -m http.server --bind 127.0.0.1\n"
    "\n\b\nDiagnostics (no program needed):\n"
    "  telemetryflow-run --info [--json]     versions, configuration, instrumentations\n"
    "  telemetryflow-run doctor [-- PYTHON]  live checks; exit 1 when one fails\n"
    "  telemetryflow-run init                write .env.telemetryflow and a Dockerfile\n"
    "  telemetryflow-run -- doctor           runs a program named doctor\n"
    "\n\b\nShell completion (bash; zsh_source, fish_source likewise):\n"
    '  eval "$(_TELEMETRYFLOW_RUN_COMPLETE=bash_source telemetryflow-run)"',
)
@_with_options
@click.argument("program", nargs=-1, type=click.UNPROCESSED, metavar="COMMAND [ARGS]...",
                shell_complete=lambda ctx, param, incomplete: _complete_program(ctx, incomplete))
@click.pass_context
def _cli(ctx: click.Context, program: tuple[str, ...], disable: tuple[str, ...], info: bool,
         as_json: bool, **options: Any) -> None:
    # Handled before a program is required, and never when `--` precedes the first word, so
    # `telemetryflow-run doctor` never execs a program of that name by accident and
    # `telemetryflow-run -- doctor` still can.
    if info or as_json:
        _show_info(ctx, program, as_json=as_json,
                   overrides=_overrides(os.environ, disable, options))
        return
    if program and program[0] in _SUBCOMMANDS and not ctx.meta.get(_AFTER_DOUBLE_DASH):
        _run_subcommand(ctx, program, _overrides(os.environ, disable, options))
        return
    if not program:
        raise click.UsageError("missing the program to run, e.g. telemetryflow-run python app.py "
                               "(or --info, doctor, init)", ctx)
    if program[0].startswith("-") and program[0] != "-":
        # ignore_unknown_options hands a mistyped launcher option to the program slot; no
        # program is named like an option, so say what is wrong instead of "not found".
        raise click.NoSuchOption(program[0], ctx=ctx)
    environ = dict(os.environ)
    env = _launch.child_environment(environ, _overrides(environ, disable, options))
    config, reading = load_config(env)
    if config.enabled:
        _check_hook()
        if config.strict:
            _refuse_if_invalid(ctx, reading)
        _check_bypass(ctx, program, strict=config.strict)
    try:
        _launch.exec_program(program, env)
    except _launch.LaunchError as exc:
        click.echo(exc.message, err=True)
        ctx.exit(exc.exit_code)


def _complete_program(ctx: click.Context, incomplete: str) -> list[Any]:
    """A subcommand for a first word that starts like one, else files: the shell knows the
    program's own arguments better than we do. (Not both: click's bash script drops the
    plain items once it sees a file item.)"""
    from click.shell_completion import CompletionItem

    if not ctx.params.get("program"):
        items = [CompletionItem(name, help=help_text)
                 for name, (_command, help_text) in _SUBCOMMANDS.items()
                 if name.startswith(incomplete)]
        if items and incomplete:
            return items
    return [CompletionItem(incomplete, type="file")]


def _show_info(ctx: click.Context, program: Sequence[str], *, as_json: bool,
               overrides: Mapping[str, str]) -> None:
    if not ctx.params.get("info"):
        raise click.UsageError("--json goes with --info (or doctor --json)", ctx)
    if program:
        raise click.UsageError("--info shows the configuration and exits; it runs no program "
                               f"(got {program[0]!r})", ctx)
    from .diagnostics import info

    report = info.collect(_launch.child_environment(os.environ, overrides))
    click.echo(info.render_json(report) if as_json else info.render_text(report))


def _run_subcommand(ctx: click.Context, program: Sequence[str],
                    overrides: Mapping[str, str]) -> None:
    """Run ``doctor``/``init`` as a command of their own, so usage errors and ``--help`` say
    ``telemetryflow-run doctor``; the launcher's options reach it through ``obj``.

    Not a child context: click would put the launcher's ``COMMAND [ARGS]...`` into the
    usage line. Errors and exits still propagate to the launcher's ``main``.
    """
    name = program[0]
    command = _SUBCOMMANDS[name][0]
    with command.make_context(f"{ctx.info_name} {name}", list(program[1:]),
                              obj=dict(overrides)) as sub:
        command.invoke(sub)


@click.command(
    "doctor",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Everything --info shows, plus live checks of the path telemetry takes: the hook "
    "in the program's Python, DNS, TCP and TLS to the endpoint, and an empty OTLP export per "
    "signal. Each check is PASS, WARN, FAIL or SKIP with a fix; each is bounded by "
    "TELEMETRYFLOW_TIMEOUT (default 5 s here).\n\n"
    "Exits 0 when nothing FAILs (usable as a container health check), else 1.\n\n"
    "PYTHON is the interpreter the program runs with (default: python on PATH).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True,
              help="Print only the checks that did not pass, and the result.")
@click.argument("python", nargs=-1, type=click.UNPROCESSED, metavar="[-- PYTHON]")
@click.pass_context
def _doctor(ctx: click.Context, as_json: bool, quiet: bool, python: tuple[str, ...]) -> None:
    if len(python) > 1:
        raise click.UsageError("doctor checks one interpreter, e.g. "
                               "telemetryflow-run doctor -- /usr/bin/python3.12", ctx)
    from .diagnostics import doctor

    env = _launch.child_environment(os.environ, ctx.obj or {})
    report = doctor.run(env, target=python[0] if python else None)
    click.echo(doctor.render_json(report) if as_json else doctor.render_text(report, quiet=quiet))
    ctx.exit(0 if report.ok else 1)


@click.command(
    "init",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Write .env.telemetryflow (every variable, commented with its help and default; the "
    "ones given here active) and Dockerfile.telemetryflow, and print how to run with them. "
    "Existing files are never replaced without --force.",
)
@click.option("--service-name", metavar="NAME", help="Sets TELEMETRYFLOW_SERVICE_NAME.")
@click.option("--endpoint", metavar="URL", help="Sets TELEMETRYFLOW_ENDPOINT.")
@click.option("--protocol", type=click.Choice(["grpc", "http"], case_sensitive=False),
              help="Sets TELEMETRYFLOW_PROTOCOL.")
@click.option("--force", is_flag=True, help="Replace existing files.")
@click.option("--dir", "directory", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Where to write the files.")
@click.pass_context
def _init(ctx: click.Context, service_name: str | None, endpoint: str | None,
          protocol: str | None, force: bool, directory: str) -> None:
    from pathlib import Path

    from .diagnostics import init

    settings = dict(ctx.obj or {})
    for var, value in (("TELEMETRYFLOW_SERVICE_NAME", service_name),
                       ("TELEMETRYFLOW_ENDPOINT", endpoint),
                       ("TELEMETRYFLOW_PROTOCOL", protocol.lower() if protocol else None)):
        if value is not None:
            settings[var] = value
    problems = init.problems(settings)
    if problems:
        raise click.UsageError("; ".join(problems), ctx)
    try:
        written = init.write(Path(directory), settings, force=force)
    except init.InitRefused as exc:
        click.echo(f"{_PROG} init: {exc}", err=True)
        ctx.exit(1)
    except OSError as exc:
        click.echo(f"{_PROG} init: cannot write {exc.filename or directory}: "
                   f"{exc.strerror or exc}", err=True)
        ctx.exit(1)
    for path in written:
        click.echo(f"wrote {path}")
    for note in init.notes(settings):
        click.echo(f"note: {note}")
    click.echo("")
    click.echo(init.run_instructions(Path(directory)))


_SUBCOMMANDS: dict[str, tuple[click.Command, str]] = {
    "doctor": (_doctor, "check the setup live; exit 1 on failure"),
    "init": (_init, "write .env.telemetryflow and Dockerfile.telemetryflow"),
}


def _check_hook() -> None:
    if not _launch.hook_installed():
        click.echo(f"telemetryflow: warning: {_launch.hook_file()} is missing (broken install?); "
                   "the program runs uninstrumented", err=True)


def _check_bypass(ctx: click.Context, program: Sequence[str], *, strict: bool) -> None:
    """One line when the program's interpreter options keep the hook out (``python -I``);
    strict mode refuses to start it uninstrumented."""
    why = _launch.hook_bypassed(program)
    if why is None:
        return
    if strict:
        click.echo(f"telemetryflow: error: {why}, so the hook cannot load", err=True)
        click.echo(f"{_PROG}: not starting the program: strict mode (TELEMETRYFLOW_STRICT) "
                   "refuses to run it without telemetry", err=True)
        ctx.exit(2)
    click.echo(f"telemetryflow: warning: {why}, so the hook cannot load: the program runs "
               "without telemetry (drop that option to instrument it)", err=True)


def _refuse_if_invalid(ctx: click.Context, reading: EnvironmentReading) -> None:
    """Strict mode: a configuration problem stops the launch before the program runs.

    Otherwise the launcher prints nothing about the configuration: the hook in the program
    reads the same environment and reports each problem once for the whole process tree
    (see ``_launch``), so a launch does not pay for the parser twice.
    """
    if not reading.problems:
        return
    for problem in reading.problems:
        click.echo(f"telemetryflow: error: {problem}", err=True)
    for warning in reading.warnings:
        click.echo(f"telemetryflow: warning: {warning}", err=True)
    click.echo(f"{_PROG}: not starting the program: strict mode "
               "(TELEMETRYFLOW_STRICT) makes configuration problems fatal", err=True)
    ctx.exit(2)


def main(args: Sequence[str] | None = None, prog_name: str | None = _PROG) -> None:
    """Console-script entry point; exits with the program's status (it never returns when
    the program starts, since the program replaces this process)."""
    _cli.main(args=list(args) if args is not None else None, prog_name=prog_name)
