"""doctor's first checks: the configuration as the hook will read it, the hook file, and
whether the program's interpreter can load the hook (a probe run in it)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping

from .. import _launch
from .._version import __version__
from ..domain.config import TelemetryConfig
from ..domain.environment import EnvironmentReading
from . import info
from ._doctor_check import FAIL, PASS, WARN, Check, quoted

_PROBE_MARK = "telemetryflow-probe"

# `-c` puts the working directory first on sys.path, which the hook never sees (it runs
# before that): drop it, or a checkout in the working directory would hide a missing install.
_PROBE = (
    "import sys\n"
    "sys.path = [entry for entry in sys.path if entry != '']\n"
    "import telemetryflow_bootstrap as t\n"
    "try:\n"
    "    from telemetryflow_bootstrap import _runtime\n"
    "    started = _runtime.current_client() is not None\n"
    "except Exception:\n"
    "    started = None\n"
    f"print({_PROBE_MARK!r}, t.__version__, sys.version.split()[0], started)\n"
)



def check_configuration(
    config: TelemetryConfig, reading: EnvironmentReading, report: info.InfoReport
) -> Check:
    # A run only warns about an invalid value and uses the default, but the user meant
    # something else (an ignored endpoint means "no export"): a health check must fail.
    # The messages come from the report, where they are already redacted.
    if report.problems:
        return Check(
            "configuration",
            FAIL,
            f"{len(report.problems)} invalid setting(s): {report.problems[0]}",
            "fix or unset the variables listed under Warnings",
        )
    if not config.enabled:
        source = reading.sources.get("enabled", "TELEMETRYFLOW_ENABLED")
        return Check(
            "configuration",
            WARN,
            f"telemetry is disabled by {source}",
            f"unset {source} to instrument programs",
        )
    if report.warnings:
        return Check(
            "configuration",
            WARN,
            f"{len(report.warnings)} warning(s): {report.warnings[0]}",
            "see Warnings above",
        )
    return Check("configuration", PASS, "no problems")


def check_hook_file() -> Check:
    hook = _launch.hook_file()
    if hook.is_file():
        return Check("hook file", PASS, str(hook))
    return Check(
        "hook file",
        FAIL,
        f"{hook} is missing",
        "reinstall telemetryflow-bootstrap (pip install --force-reinstall telemetryflow-bootstrap)",
    )


def _default_python(environ: Mapping[str, str]) -> str:
    # `telemetryflow-run python app.py` is the documented use: check the interpreter that
    # `python` means there, which is not necessarily the one running the launcher.
    for name in ("python", "python3"):
        try:
            _launch.resolve_command(name, environ.get("PATH"))
        except _launch.LaunchError:
            continue
        return name
    return sys.executable


class InterpreterProbe:
    """Starts the program's interpreter with the program's environment and sees the hook
    start in it (exports switched off, so it sends nothing).

    Started first and collected last: the interpreter and the SDK start in the background
    while the network checks run, which roughly halves the time ``doctor`` takes.
    """

    def __init__(self, target: str | None, environ: Mapping[str, str], timeout: float) -> None:
        self._timeout = timeout
        self._started = time.monotonic()
        self._proc: subprocess.Popen[str] | None = None
        self._early: Check | None = None
        python = target or _default_python(environ)
        try:
            self._path = _launch.resolve_command(python, environ.get("PATH"))
        except _launch.LaunchError as exc:
            self._path = python
            self._early = Check(
                "hook loads",
                FAIL,
                exc.message,
                "name the interpreter the program runs with: "
                "telemetryflow-run doctor -- /path/to/python",
            )
            return
        env = dict(environ)
        env["TELEMETRYFLOW_EXPORTER"] = "none"
        try:
            self._proc = subprocess.Popen(
                [self._path, "-c", _PROBE],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            self._early = Check(
                "hook loads",
                FAIL,
                f"cannot run {self._path}: {exc.strerror or exc}",
                "name a Python interpreter: telemetryflow-run doctor -- /path/to/python",
            )

    def result(self) -> Check:
        if self._early is not None or self._proc is None:
            return self._early or Check("hook loads", FAIL, "not started")
        remaining = max(0.1, self._timeout - (time.monotonic() - self._started))
        try:
            stdout, stderr = self._proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            return Check(
                "hook loads",
                FAIL,
                f"{self._path} did not finish starting within {self._timeout:g}s",
                "check that it is a Python interpreter that starts on its own",
            )
        return _probe_outcome(self._path, self._proc.returncode, stdout, stderr)


def _probe_outcome(path: str, returncode: int, stdout: str, stderr: str) -> Check:
    install = (
        f"install telemetryflow-bootstrap there: {path} -m pip install telemetryflow-bootstrap"
    )
    said = _last_telemetryflow_line(stderr)
    marker = next(
        (line.split() for line in stdout.splitlines() if line.startswith(_PROBE_MARK)), None
    )
    if returncode != 0 or marker is None:
        # Strict mode stops the hook with its own error line; otherwise the traceback's last
        # line names what is missing (the hook's line says the same at greater length).
        strict = said if said.startswith("telemetryflow: error") else ""
        last = strict or _last_line(stderr) or f"exit status {returncode}"
        if strict:
            hint = "strict mode refuses to start with configuration problems: fix them"
        elif _missing_package(stderr):
            hint = install
        else:  # (`doctor -- /bin/sleep`: no `-m pip` to suggest)
            hint = ("is it a Python interpreter? name the one the program runs with: "
                    "telemetryflow-run doctor -- /path/to/python")
        return Check("hook loads", FAIL, f"{path}: {last}", hint)
    _mark, version, python_version, started = [*marker, "", "", ""][:4]
    where = f"{path} (Python {python_version})"
    if started == "False":
        return Check(
            "hook loads",
            FAIL,
            f"{where} imports telemetryflow_bootstrap {version} "
            f"but the hook did not start: {said or 'no message'}",
            install if _missing_package(stderr) else
            "fix what the hook says; `telemetryflow-run --info` shows the configuration",
        )
    if version != __version__:
        return Check(
            "hook loads",
            WARN,
            f"{where} loads the hook with telemetryflow-bootstrap "
            f"{version}, the launcher is {__version__}",
            "install the same version in both environments",
        )
    return Check("hook loads", PASS, f"{where} loads the hook (telemetryflow-bootstrap {version})")


def _missing_package(stderr: str) -> bool:
    """Whether the interpreter ran Python but could not import us (or what we need)."""
    return "No module named" in stderr or "cannot import" in stderr


def _last_telemetryflow_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.startswith("telemetryflow:")]
    return quoted(lines[-1]) if lines else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return quoted(lines[-1]) if lines else ""
