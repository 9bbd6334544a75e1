"""The launcher's fast path (``_fast_launch``) against the click command it stands in for.

For the invocations it accepts, the fast path must give the program exactly the argv and
environment the click command gives it; for everything else it must step aside, so that
help, errors, subcommands and completion stay the click command's. Both are checked in
process (what each would pass to ``exec``) and, for the whole console script, in a
subprocess against the click command run directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
import pytest

from telemetryflow_bootstrap import _fast_launch, _launch, cli
from telemetryflow_bootstrap._launch import REPORTED_ENV, hook_directory, problem_messages
from telemetryflow_bootstrap.domain.config import load_config

_HOOK = str(hook_directory())
_BAD_TIMEOUT = {"TELEMETRYFLOW_TIMEOUT": "soon"}


class _Execed(Exception):
    """Raised where the click command would exec, carrying what it would exec."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str]) -> None:
        super().__init__()
        self.argv = list(argv)
        self.env = dict(env)


def _set_environ(monkeypatch: pytest.MonkeyPatch, extra: Mapping[str, str]) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("UWSGI_PY_CALL_OSAFTERFORK", raising=False)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def _click_exec(args: Sequence[str], monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[list[str], dict[str, str], str]:
    """What the click command passes to exec for ``args``, and what it printed."""
    def fake_exec(argv: Sequence[str], env: Mapping[str, str]) -> None:
        raise _Execed(argv, env)

    monkeypatch.setattr(_launch, "exec_program", fake_exec)
    capsys.readouterr()
    with pytest.raises(_Execed) as execed:
        cli.main(list(args))
    return execed.value.argv, execed.value.env, capsys.readouterr().err


def _reported_already() -> dict[str, str]:
    """An environment with a problem a launcher up the process tree already printed."""
    _config, reading = load_config(_BAD_TIMEOUT)
    messages = problem_messages(reading)
    assert messages
    return {**_BAD_TIMEOUT, REPORTED_ENV: _launch.problems_digest(messages)}


_SAME_AS_CLICK: list[tuple[list[str], dict[str, str]]] = [
    (["python", "app.py"], {}),
    (["python", "-m", "http.server", "--bind", "127.0.0.1", "--", "-h", "--info"], {}),
    (["--", "python", "x"], {}),
    (["./doctor", "--quiet"], {}),
    (["doctors"], {}),
    (["--service-name", "shop", "python"], {}),
    (["--service-name=shop", "--endpoint", "http://collector:4317", "python"], {}),
    (["--service-name=a=b", "--endpoint=", "python"], {}),
    (["--service-name", "", "--environment", "prod stage", "python"], {}),
    (["--service-name", "s\u00e9rvice", "python"], {}),
    (["--service-name", "a", "--service-name", "b", "--", "python", "--service-name", "c"], {}),
    (["--protocol", "HTTP", "--exporter=Console", "--log-level", "DEBUG", "python"], {}),
    (["--protocol=grpc", "--exporter", "none", "--log-level=off", "python"], {}),
    (["--insecure", "--strict", "--insecure", "python"], {}),
    (["--disable", "flask,redis", "--disable=requests", "--disable", "", "python"], {}),
    (["--disable", "flask", "python"], {"TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": "django"}),
    (["--disable", "flask", "python"], {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis"}),
    (["--protocol", "http", "python"], {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}),
    (["--endpoint", "h:1", "python"], {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:4317"}),
    (["python"], {"PYTHONPATH": f"/a{os.pathsep}{_HOOK}{os.pathsep}/b"}),
    (["python"], {"PYTHONPATH": _HOOK}),
    (["python"], {"UWSGI_PY_CALL_OSAFTERFORK": "0"}),
    (["--service-name", "x", "python"], {"TELEMETRYFLOW_ENABLED": "false"}),
    (["--strict", "python"], {"OTEL_SDK_DISABLED": "true", **_BAD_TIMEOUT}),
    (["python"], _reported_already()),
    (["python"], {"TELEMETRYFLOW_STRICT": "true", "TELEMETRYFLOW_SERVICE_NAME": "s"}),
    (["python"], {"_TELEMETRYFLOW_RUN_COMPLETE": ""}),
    # Configuration problems: neither launcher prints them (the hook does, once), and the
    # switches only the parser reads send the fast path through it, to the same answer.
    (["python"], _BAD_TIMEOUT),
    (["--service-name", "s\udcff", "python"], {}),  # not printable UTF-8
    (["python"], {**_BAD_TIMEOUT, REPORTED_ENV: "0123456789ab"}),
    (["python"], {"TELEMETRYFLOW_ENABLED": "maybe"}),  # a problem: enabled by default
    (["python"], {"TELEMETRYFLOW_ENABLED": " No "}),
    (["python"], {"OTEL_SDK_DISABLED": "sometimes"}),
    (["python"], {"TELEMETRYFLOW_STRICT": "perhaps", **_BAD_TIMEOUT}),
    (["python"], {"TELEMETRYFLOW_STRICT": "1", "OTEL_SDK_DISABLED": "True", **_BAD_TIMEOUT}),
]


@pytest.mark.parametrize(("args", "extra"), _SAME_AS_CLICK)
def test_fast_path_execs_what_the_click_command_execs(
        args: list[str], extra: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Same argv, same environment, and the click command printed nothing to skip."""
    _set_environ(monkeypatch, extra)
    launch = _fast_launch.plan(args, os.environ)
    assert launch is not None, "the fast path refused a plain invocation"
    argv, env, printed = _click_exec(args, monkeypatch, capsys)
    assert printed == ""
    assert launch == (argv, env)


_LEFT_TO_CLICK: list[tuple[list[str], dict[str, str]]] = [
    ([], {}),
    (["--"], {}),
    (["--help"], {}),
    (["-h"], {}),
    (["--", "--", "x"], {}),
    (["--info"], {}),
    (["--info", "--json"], {}),
    (["--json", "python"], {}),
    (["--version"], {}),
    (["--version", "python"], {}),
    (["doctor"], {}),
    (["doctor", "--", sys.executable], {}),
    (["init", "--force"], {}),
    (["--", "doctor"], {}),
    (["--service-name", "s", "init"], {}),
    (["--protocol", "udp", "python"], {}),
    (["--protocol", "python"], {}),
    (["--protocol=", "python"], {}),
    (["--exporter", "con\u017fole", "python"], {}),  # casefolds to "console"
    (["--service-name"], {}),
    (["--service-name", "--strict", "python"], {}),
    (["--service-name", "--", "doctor"], {}),
    (["--disable", "-x", "python"], {}),
    (["--strict=yes", "python"], {}),
    (["--bogus", "python"], {}),
    (["--service-nam", "x", "python"], {}),
    (["-x", "python"], {}),
    (["-hv", "python"], {}),
    (["--=x", "python"], {}),
    (["--", "-x"], {}),
    (["--", "--help"], {}),
    (["-", "x"], {}),
    (["", "x"], {}),
    (["--strict", "python"], _BAD_TIMEOUT),  # the click command refuses to start
    (["python"], {"TELEMETRYFLOW_STRICT": " ON ", **_BAD_TIMEOUT}),
    (["python"], {"TELEMETRYFLOW_STRICT": "yes", "TELEMETRYFLOW_ENABLED": "bogus"}),
]


@pytest.mark.parametrize(("args", "extra"), _LEFT_TO_CLICK)
def test_anything_unusual_is_left_to_the_click_command(
        args: list[str], extra: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _set_environ(monkeypatch, extra)
    assert _fast_launch.plan(args, os.environ) is None


def test_a_missing_hook_is_left_to_the_click_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """The click command warns that the install is broken; the fast path cannot."""
    _set_environ(monkeypatch, {})
    monkeypatch.setattr(_launch, "hook_installed", lambda: False)
    assert _fast_launch.plan(["python"], os.environ) is None


def test_the_option_tables_agree_with_the_click_command() -> None:
    """Every launcher option is either parsed by the fast path or deliberately left to click,
    and the subcommands and completion variable are the ones click uses."""
    ctx = click.Context(cli._cli, info_name=cli._PROG, **cli._cli.context_settings)
    options = {opt for param in cli._cli.get_params(ctx) if isinstance(param, click.Option)
               for opt in (*param.opts, *param.secondary_opts)}
    fast = {option for option, *_rest in _fast_launch.VALUE_OPTIONS}
    fast |= {option for option, _var in _fast_launch.FLAG_OPTIONS}
    fast.add(_fast_launch.DISABLE_OPTION)
    assert options - fast == {"-h", "--help", "--info", "--json", "--version"}
    assert fast <= options
    assert set(cli._SUBCOMMANDS) == _fast_launch.SUBCOMMANDS
    click_var = f"_{cli._PROG.replace('-', '_')}_COMPLETE".upper()
    assert click_var == _fast_launch.COMPLETE_VAR


# --- the console script, end to end -------------------------------------------------------

_VENV_BIN = Path(sys.executable).parent
_LAUNCHER = shutil.which("telemetryflow-run", path=str(_VENV_BIN))
_ECHO = str(Path(__file__).resolve().parent.parent / "apps" / "cli_echo.py")
# The click command alone, under the console script's program name: the launcher as it was.
_CLICK_ONLY = ("import sys; sys.argv[0] = 'telemetryflow-run'; "
               "from telemetryflow_bootstrap.cli import main; main()")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW", "CLI_ECHO_"))
           and k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(_VENV_BIN), env.get("PATH", os.defpath)])
    env["TELEMETRYFLOW_EXPORTER"] = "none"
    env.update(extra)
    return env


def _outcome(cmd: list[str], env: Mapping[str, str]) -> tuple[int, object, str]:
    done = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    stdout: object = done.stdout
    if done.stdout.startswith("{"):  # cli_echo's report; its pid is the only thing to differ
        stdout = json.loads(done.stdout)
        stdout.pop("pid")  # type: ignore[attr-defined]
    return done.returncode, stdout, done.stderr


@pytest.mark.e2e
@pytest.mark.parametrize(("args", "extra"), [
    (["python", _ECHO, "a", "--b", "--", "-h"], {}),
    (["--service-name", "s", "--disable", "flask", "--", "python", _ECHO], {}),
    (["--protocol", "HTTP", "--insecure", "python", _ECHO],
     {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}),
    (["--service-name", "s\udcff", "python", _ECHO], {}),
    (["python", _ECHO], _reported_already()),
    (["python", _ECHO], _BAD_TIMEOUT),
    (["--strict", "python", _ECHO], _BAD_TIMEOUT),
    (["no-such-program-anywhere"], {}),
    (["./no/such/program"], {}),
    (["/"], {}),
    ([_ECHO], {}),  # not executable
    (["--bogus", "python"], {}),
    (["--protocol", "udp", "python"], {}),
    (["--service-name"], {}),
    ([], {}),
    (["--", "-x"], {}),
    (["--help"], {}),
    (["--version"], {}),
    (["doctor", "--help"], {}),
    (["--info", "python"], {}),
    ([], {"_TELEMETRYFLOW_RUN_COMPLETE": "bash_source"}),
])
def test_console_script_behaves_like_the_click_command(args: list[str],
                                                       extra: dict[str, str]) -> None:
    """Exit code, output and the program's argv and environment, byte for byte."""
    assert _LAUNCHER is not None, f"telemetryflow-run is not installed in {_VENV_BIN}"
    env = _env(**extra)
    fast = _outcome([_LAUNCHER, *args], env)
    # The script's own interpreter: --version names it.
    python = Path(_LAUNCHER).read_text().splitlines()[0].removeprefix("#!")
    reference = _outcome([python, "-c", _CLICK_ONLY, *args], env)
    assert fast == reference


@pytest.mark.e2e
def test_console_script_enters_through_the_fast_path() -> None:
    """The installed script is the click-free entry (a stale install would still pass the
    comparisons above, by running click every time)."""
    assert _LAUNCHER is not None
    assert "telemetryflow_bootstrap._fast_launch import main" in Path(_LAUNCHER).read_text()
