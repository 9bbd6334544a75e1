"""An unknown name in TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS (or ``--disable``), run through
the installed ``telemetryflow-run``: one warning line, the program otherwise untouched."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from .launcher import clean_env, python, run

pytestmark = pytest.mark.e2e

_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
_WARNING = f"telemetryflow: warning: {_VAR} names unknown instrumentation 'reqests'"
# Prints what the hook did about flask, starts a Python child (which inherits the hook and
# the environment, so would print any warning again) and exits with a status of its own.
_PROGRAM = textwrap.dedent("""
    import subprocess, sys
    from telemetryflow_bootstrap.instrumentation import registry
    print(registry.status()["flask"][0])
    subprocess.run([sys.executable, "-c", "print('child')"], check=True)
    sys.exit(3)
    """)


def _env(**extra: str) -> dict[str, str]:
    return clean_env(TELEMETRYFLOW_EXPORTER="none", **extra)


def _launch(*options: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return run([*options, *python("-c", _PROGRAM)], _env(**extra))


def _telemetryflow_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetryflow")]


def _assert_program_untouched(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "disabled\nchild\n"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        ((), {_VAR: "reqests,flask"}),
        (("--disable", "reqests", "--disable", "flask"), {}),
        (("--disable", "reqests"), {_VAR: "flask"}),
    ],
    ids=["variable", "option", "option-and-variable"],
)
def test_unknown_name_warns_once_and_the_rest_still_applies(
    options: tuple[str, ...], extra: dict[str, str]
) -> None:
    """One warning line naming the variable and 'reqests' for the whole process tree; flask
    is still disabled, the program's stdout and exit status are its own."""
    proc = _launch(*options, **extra)
    _assert_program_untouched(proc)
    lines = _telemetryflow_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(_WARNING)
    assert "(did you mean 'requests'?)" in lines[0]


def test_known_names_give_no_warning() -> None:
    """Names of ours (catalog and process-level) are silent."""
    proc = _launch(**{_VAR: "flask,requests,logging,runtime_metrics"})
    _assert_program_untouched(proc)
    assert _telemetryflow_lines(proc.stderr) == []


def test_unknown_name_from_the_opentelemetry_variable_is_not_reported() -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS is often shared with opentelemetry-instrument:
    its names are applied (flask is disabled) but unknown ones are not reported."""
    proc = _launch(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="reqests,flask")
    _assert_program_untouched(proc)
    assert _telemetryflow_lines(proc.stderr) == []


def test_strict_mode_warns_and_runs_the_program() -> None:
    """Like the other warnings, an unknown name is not fatal under TELEMETRYFLOW_STRICT."""
    proc = _launch(TELEMETRYFLOW_STRICT="true", **{_VAR: "reqests,flask"})
    _assert_program_untouched(proc)
    lines = _telemetryflow_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(_WARNING), proc.stderr


def test_with_a_launcher_warning_each_line_is_printed_once() -> None:
    """The launcher prints the malformed value, the hook adds only its own line."""
    proc = _launch(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", **{_VAR: "reqests,flask"})
    _assert_program_untouched(proc)
    lines = _telemetryflow_lines(proc.stderr)
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("telemetryflow: warning: TELEMETRYFLOW_BATCH_MAX_SIZE='lots'")
    assert lines[1].startswith(_WARNING)


def test_nested_launchers_warn_once() -> None:
    """A launcher started by a launcher does not add a second warning."""
    proc = run(["telemetryflow-run", *python("-c", _PROGRAM)], _env(**{_VAR: "reqests,flask"}))
    _assert_program_untouched(proc)
    lines = _telemetryflow_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith(_WARNING), proc.stderr


def test_info_and_doctor_show_the_same_warning() -> None:
    """--info lists the hook's line among its warnings; doctor's configuration check warns."""
    hook_line = _telemetryflow_lines(_launch(**{_VAR: "reqests,flask"}).stderr)[0]
    expected = hook_line.removeprefix("telemetryflow: warning: ")
    info = run(["--info", "--json"], _env(**{_VAR: "reqests,flask"}))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["warnings"] == [expected]
    doctor = run(["doctor", "--json"], _env(**{_VAR: "reqests,flask"}))
    data = json.loads(doctor.stdout)
    assert data["info"]["warnings"] == [expected]
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["configuration"]["outcome"] == "WARN"
