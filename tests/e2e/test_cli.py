"""The installed ``telemetryflow-run`` console script, run for real in a subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from telemetryflow_bootstrap._launch import REPORTED_ENV, hook_directory
from telemetryflow_bootstrap._version import __version__
from telemetryflow_bootstrap.domain.environment import OTEL_SPECIAL, VARIABLES

pytestmark = pytest.mark.e2e

_VENV_BIN = Path(sys.executable).parent
_LAUNCHER = shutil.which("telemetryflow-run", path=str(_VENV_BIN))
_APPS = Path(__file__).resolve().parent.parent / "apps"
_ECHO = str(_APPS / "cli_echo.py")
_HOOK = str(hook_directory())


def _base_env(**extra: str) -> dict[str, str]:
    """This process's environment without any telemetry configuration, plus ``extra``.

    The exporter is off so the tests do not depend on what the hook does with telemetry.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW", "CLI_ECHO_"))
           and k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(_VENV_BIN), env.get("PATH", os.defpath)])
    env["TELEMETRYFLOW_EXPORTER"] = "none"
    env.update(extra)
    return env


def _run(args: Sequence[str], env: Mapping[str, str] | None = None, *,
         stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert _LAUNCHER is not None, f"telemetryflow-run is not installed in {_VENV_BIN}"
    return subprocess.run(
        [_LAUNCHER, *args], env=_base_env() if env is None else dict(env), input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60, cwd=cwd,
    )


def _report(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, (proc.stdout, proc.stderr)
    return json.loads(lines[0])


def _lines_with(text: str, stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if text in line]


def test_arguments_after_the_program_reach_it_untouched() -> None:
    """Options after the program name, and a later ``--``, belong to the program."""
    proc = _run(["python", _ECHO, "--bind", "x", "--", "y", "--help", "-h"])
    assert proc.returncode == 0, proc.stderr
    assert _report(proc)["argv"][1:] == ["--bind", "x", "--", "y", "--help", "-h"]


def test_double_dash_separates_launcher_options_from_the_program() -> None:
    """``telemetryflow-run --service-name s -- python app`` runs python with its own args."""
    proc = _run(["--service-name", "svc", "--", "python", _ECHO, "--service-name", "other"])
    assert proc.returncode == 0, proc.stderr
    report = _report(proc)
    assert report["argv"][1:] == ["--service-name", "other"]
    assert report["environ"]["TELEMETRYFLOW_SERVICE_NAME"] == "svc"


def test_module_mode_passes_its_arguments() -> None:
    """``python -m module --flag`` runs the module with its flag."""
    proc = _run(["python", "-m", "cli_echo", "--flag", "value"], cwd=_APPS)
    assert proc.returncode == 0, proc.stderr
    assert _report(proc)["argv"][1:] == ["--flag", "value"]


def test_stdin_reaches_the_program() -> None:
    """The program reads the launcher's stdin."""
    proc = _run(["python", _ECHO], _base_env(CLI_ECHO_STDIN="1"), stdin="hello\nworld\n")
    assert proc.returncode == 0, proc.stderr
    assert _report(proc)["stdin"] == "hello\nworld\n"


def test_exit_code_is_the_programs() -> None:
    """The launcher's exit status is the program's own."""
    proc = _run(["python", _ECHO], _base_env(CLI_ECHO_EXIT="3"))
    assert proc.returncode == 3, proc.stderr


def test_program_replaces_the_launcher_with_the_same_pid() -> None:
    """exec keeps the PID, so signals and supervisors reach the program directly."""
    assert _LAUNCHER is not None
    with subprocess.Popen([_LAUNCHER, "python", _ECHO], env=_base_env(), text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as popen:
        stdout, stderr = popen.communicate(timeout=60)
    assert popen.returncode == 0, stderr
    assert json.loads(stdout.splitlines()[-1])["pid"] == popen.pid


def test_program_sees_the_name_it_was_called_by() -> None:
    """argv[0] of a PATH-resolved program stays the typed name, as with ``env``."""
    proc = _run(["python", "-c", "import sys; print(sys.orig_argv[0])"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "python"


def test_unknown_command_exits_127_with_one_line() -> None:
    """A program not on PATH gives exit 127 and a single ``env``-like message."""
    proc = _run(["no-such-program-xyz", "arg"])
    assert proc.returncode == 127
    assert proc.stderr.strip().splitlines() == [
        "telemetryflow-run: 'no-such-program-xyz': No such file or directory"
    ]


def test_non_executable_file_exits_126(tmp_path: Path) -> None:
    """A file without execute permission gives exit 126 and one message."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)
    proc = _run([str(script)])
    assert proc.returncode == 126
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"telemetryflow-run: '{script}': Permission denied"
    ]


def test_unrunnable_file_format_exits_126(tmp_path: Path) -> None:
    """An executable file the kernel cannot run gives 126 and the system's reason."""
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x00\x01not a program\n")
    blob.chmod(0o755)
    proc = _run([str(blob)])
    assert proc.returncode == 126
    assert proc.stderr.strip().splitlines() == [
        f"telemetryflow-run: '{blob}': {os.strerror(errno.ENOEXEC)}"
    ]


def test_missing_script_interpreter_exits_127(tmp_path: Path) -> None:
    """A script whose ``#!`` interpreter does not exist gives 127, as with ``env``."""
    script = tmp_path / "script"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    proc = _run([str(script)])
    assert proc.returncode == 127
    assert proc.stderr.strip().splitlines() == [
        f"telemetryflow-run: '{script}': No such file or directory"
    ]


def test_no_program_prints_usage_and_exits_2() -> None:
    """Without a program the launcher explains its usage and exits 2."""
    proc = _run([])
    assert proc.returncode == 2
    assert "Usage: telemetryflow-run [OPTIONS] COMMAND [ARGS]..." in proc.stderr


def test_unknown_launcher_option_is_a_usage_error() -> None:
    """A mistyped option before the program exits 2 naming it, instead of running anything."""
    proc = _run(["--servce-name", "x", "python", _ECHO])
    assert proc.returncode == 2
    assert "No such option" in proc.stderr
    assert "--servce-name" in proc.stderr
    assert proc.stdout == ""


def test_hook_goes_first_on_pythonpath_and_user_entries_stay(tmp_path: Path) -> None:
    """The hook folder is prepended; the user's PYTHONPATH entries follow in order."""
    user = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")])
    proc = _run(["python", _ECHO], _base_env(PYTHONPATH=user))
    assert proc.returncode == 0, proc.stderr
    report = _report(proc)
    assert report["environ"]["PYTHONPATH"] == os.pathsep.join([_HOOK, user])
    path = report["sys_path"]
    assert path.index(_HOOK) < path.index(str(tmp_path / "a")) < path.index(str(tmp_path / "b"))


def test_nested_launchers_do_not_stack_the_hook() -> None:
    """``telemetryflow-run telemetryflow-run python app`` puts the hook on PYTHONPATH once."""
    proc = _run(["telemetryflow-run", "python", _ECHO], _base_env(PYTHONPATH="/opt/user"))
    assert proc.returncode == 0, proc.stderr
    assert _report(proc)["environ"]["PYTHONPATH"] == os.pathsep.join([_HOOK, "/opt/user"])


def test_options_set_the_environment_variables() -> None:
    """Each option sets its variable; --disable merges with what is already disabled."""
    proc = _run(
        ["--service-name", "shop", "--endpoint", "http://127.0.0.1:4318", "--protocol", "HTTP",
         "--exporter", "none", "--environment", "staging", "--insecure", "--log-level", "error",
         "--strict", "--disable", "requests", "--disable", "flask,urllib3",
         "python", _ECHO],
        _base_env(TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="django,requests"),
    )
    assert proc.returncode == 0, proc.stderr
    env = _report(proc)["environ"]
    assert {k: v for k, v in env.items() if k.startswith("TELEMETRYFLOW_")} == {
        "TELEMETRYFLOW_SERVICE_NAME": "shop",
        "TELEMETRYFLOW_ENDPOINT": "http://127.0.0.1:4318",
        "TELEMETRYFLOW_PROTOCOL": "http",
        "TELEMETRYFLOW_EXPORTER": "none",
        "TELEMETRYFLOW_ENVIRONMENT": "staging",
        "TELEMETRYFLOW_INSECURE": "true",
        "TELEMETRYFLOW_LOG_LEVEL": "error",
        "TELEMETRYFLOW_STRICT": "true",
        "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": "django,requests,flask,urllib3",
    }


def test_option_overrides_a_set_otel_fallback_without_a_conflict_warning() -> None:
    """--service-name also updates a set OTEL_SERVICE_NAME, so the two never disagree."""
    proc = _run(["--service-name", "shop", "python", _ECHO],
                _base_env(OTEL_SERVICE_NAME="old"))
    assert proc.returncode == 0, proc.stderr
    env = _report(proc)["environ"]
    assert env["TELEMETRYFLOW_SERVICE_NAME"] == env["OTEL_SERVICE_NAME"] == "shop"
    assert _lines_with("differ", proc.stderr) == []


def _direct_environ(env: Mapping[str, str]) -> dict[str, str]:
    # Python itself may add variables (PEP 538 locale coercion), so the reference is what the
    # same app sees when started directly with the same environment.
    direct = subprocess.run([sys.executable, _ECHO], env=dict(env), capture_output=True,
                            text=True, stdin=subprocess.DEVNULL, timeout=60, check=True)
    return _report(direct)["environ"]


@pytest.mark.parametrize("switch", [{"TELEMETRYFLOW_ENABLED": "false"},
                                    {"OTEL_SDK_DISABLED": "true"}])
def test_disabled_leaves_the_environment_unchanged(switch: dict[str, str]) -> None:
    """Disabled, the program gets exactly the launcher's environment (no hook, no options)."""
    env = _base_env(PYTHONPATH="/opt/user", **switch)
    proc = _run(["--service-name", "ignored", "python", _ECHO], env)
    assert proc.returncode == 0, proc.stderr
    assert _report(proc)["environ"] == _direct_environ(env)


def test_disabled_without_pythonpath_adds_none() -> None:
    """Disabled, no PYTHONPATH appears when the user had none."""
    proc = _run(["python", _ECHO], _base_env(TELEMETRYFLOW_ENABLED="false"))
    assert proc.returncode == 0, proc.stderr
    assert "PYTHONPATH" not in _report(proc)["environ"]


def test_malformed_variable_warns_once_and_the_program_runs() -> None:
    """A bad value gives one warning line naming variable and value; the program still runs."""
    proc = _run(["python", _ECHO],
                _base_env(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", CLI_ECHO_EXIT="3"))
    assert proc.returncode == 3
    lines = _lines_with("TELEMETRYFLOW_BATCH_MAX_SIZE", proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("telemetryflow: warning: TELEMETRYFLOW_BATCH_MAX_SIZE='lots': ")
    assert lines[0].endswith("(using the default)")
    assert REPORTED_ENV in _report(proc)["environ"]


def test_nested_launchers_report_a_problem_once() -> None:
    """A launcher started by a launcher does not repeat the warnings already printed."""
    proc = _run(["telemetryflow-run", "python", _ECHO],
                _base_env(TELEMETRYFLOW_BATCH_MAX_SIZE="lots"))
    assert proc.returncode == 0, proc.stderr
    assert len(_lines_with("TELEMETRYFLOW_BATCH_MAX_SIZE", proc.stderr)) == 1, proc.stderr


@pytest.mark.parametrize("first", ["python", "shell"])
def test_a_process_tree_reports_a_problem_once(first: str) -> None:
    """The hook of the first Python process reports the problem (the launcher leaves it
    to the hook); the Python processes it starts, same environment, stay silent; so does
    a tree whose first process is not Python."""
    children = ("import subprocess, sys\n"
                "for _ in range(2):\n"
                "    subprocess.run([sys.executable, '-c', 'pass'], check=True)\n")
    args = ["python", "-c", children] if first == "python" else \
        ["sh", "-c", f'python -c "{children}"']
    proc = _run(args, _base_env(TELEMETRYFLOW_BATCH_MAX_SIZE="lots"))
    assert proc.returncode == 0, proc.stderr
    lines = _lines_with("TELEMETRYFLOW_BATCH_MAX_SIZE", proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("telemetryflow: warning: TELEMETRYFLOW_BATCH_MAX_SIZE='lots': ")


def test_log_level_off_silences_configuration_warnings() -> None:
    """The hook reports configuration problems through its diagnostics, so
    ``TELEMETRYFLOW_LOG_LEVEL=off`` keeps them off the program's stderr (strict mode still
    refuses: see below)."""
    proc = _run(["python", _ECHO], _base_env(TELEMETRYFLOW_BATCH_MAX_SIZE="lots",
                                             TELEMETRYFLOW_LOG_LEVEL="off"))
    assert proc.returncode == 0, proc.stderr
    assert "telemetryflow" not in proc.stderr


@pytest.mark.parametrize("how", ["env", "option"])
def test_strict_refuses_to_run_the_program(how: str, tmp_path: Path) -> None:
    """In strict mode a configuration problem exits 2 before the program starts."""
    marker = tmp_path / "ran"
    env = _base_env(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", CLI_ECHO_MARKER=str(marker))
    args = ["python", _ECHO]
    if how == "env":
        env["TELEMETRYFLOW_STRICT"] = "true"
    else:
        args.insert(0, "--strict")
    proc = _run(args, env)
    assert proc.returncode == 2
    assert not marker.exists()
    lines = _lines_with("TELEMETRYFLOW_BATCH_MAX_SIZE", proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("telemetryflow: error: TELEMETRYFLOW_BATCH_MAX_SIZE='lots': ")


@pytest.mark.parametrize("strict", ["false", "true"])
def test_secret_is_never_printed(strict: str) -> None:
    """A credentials problem is reported without a character of the secret."""
    proc = _run(["python", _ECHO], _base_env(
        TELEMETRYFLOW_API_KEY_ID="not-a-key-id", TELEMETRYFLOW_API_KEY_SECRET="tfs_supersecret123",
        TELEMETRYFLOW_STRICT=strict,
    ))
    assert _lines_with("TELEMETRYFLOW_API_KEY_ID", proc.stderr), proc.stderr
    assert "supersecret" not in proc.stderr


def test_help_lists_every_variable() -> None:
    """--help documents every variable of the table, its fallbacks and the OTEL specials."""
    proc = _run(["--help"])
    assert proc.returncode == 0, proc.stderr
    names = [v.name for v in VARIABLES] + [f for v in VARIABLES for f in v.fallbacks]
    names += [name for name, _help in OTEL_SPECIAL]
    missing = [name for name in names if name not in proc.stdout]
    assert missing == []
    for var in VARIABLES:
        assert f"[default: {var.default}]" in " ".join(proc.stdout.split()), var.name


def test_version_names_launcher_and_python() -> None:
    """--version prints the launcher's version and the Python it runs on."""
    proc = _run(["--version"])
    assert proc.returncode == 0, proc.stderr
    python = sys.version.split()[0]
    assert proc.stdout.startswith(f"telemetryflow-run {__version__} (Python {python}")


def test_python_dash_m_runs_the_same_cli() -> None:
    """``python -m telemetryflow_bootstrap`` launches a program like the console script."""
    proc = subprocess.run(
        [sys.executable, "-m", "telemetryflow_bootstrap", "python", _ECHO, "--x"],
        env=_base_env(CLI_ECHO_EXIT="4"), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60,
    )
    assert proc.returncode == 4, proc.stderr
    report = _report(proc)
    assert report["argv"][1:] == ["--x"]
    assert report["environ"]["PYTHONPATH"] == _HOOK


def test_python_dash_m_takes_the_fast_path_and_names_itself_in_help() -> None:
    """A plain launch through ``-m`` imports no click (as the console script); what goes
    to click still names the module, not the console script."""
    true = shutil.which("true")
    assert true is not None
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "telemetryflow_bootstrap",
                           true], env=_base_env(), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")]
    assert "telemetryflow_bootstrap._fast_launch" in imported
    assert "click" not in imported
    helped = subprocess.run([sys.executable, "-m", "telemetryflow_bootstrap", "--help"],
                            env=_base_env(), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("Usage: python -m telemetryflow_bootstrap"), helped.stdout


def test_launcher_does_not_import_opentelemetry() -> None:
    """Importing the CLI loads neither OpenTelemetry, grpc, wrapt nor protobuf."""
    code = ("import telemetryflow_bootstrap.cli, sys; print(sorted(m for m in sys.modules "
            "if m.startswith(('opentelemetry', 'grpc', 'wrapt', 'google'))))")
    proc = subprocess.run([sys.executable, "-c", code], env=_base_env(), capture_output=True,
                          text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("flag", ["-I", "-E", "-S"])
def test_python_option_that_keeps_the_hook_out_is_one_warning(flag: str) -> None:
    """``telemetryflow-run python -I app.py`` runs the program (uninstrumented: isolated
    mode ignores PYTHONPATH) and says so in one line, instead of nothing at all."""
    proc = _run(["python", flag, "-c", "import sys; print('sitecustomize' in sys.modules "
                 "and 'telemetryflow' in str(sys.modules['sitecustomize'].__file__))"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"telemetryflow: warning: python {flag} ")
    assert "the program runs without telemetry" in lines[0]


def test_python_option_that_keeps_the_hook_out_is_refused_in_strict_mode(
        tmp_path: Path) -> None:
    """Strict mode does not start a program that would run without telemetry: exit 2."""
    marker = tmp_path / "ran"
    proc = _run(["--strict", "python", "-I", _ECHO], _base_env(CLI_ECHO_MARKER=str(marker)))
    assert proc.returncode == 2
    assert not marker.exists()
    assert "telemetryflow: error: python -I (isolated mode) ignores PYTHONPATH" in proc.stderr


def test_disabled_launcher_says_nothing_of_a_bypassing_option() -> None:
    """With telemetry switched off there is nothing to lose: no warning."""
    proc = _run(["python", "-I", "-c", "print('ran')"], _base_env(TELEMETRYFLOW_ENABLED="false"))
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ran", "")
