"""Running the installed ``telemetryflow-run`` the way a user does, for the e2e tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
VENV_BIN = Path(sys.executable).parent
LAUNCHER = shutil.which("telemetryflow-run", path=str(VENV_BIN)) or "telemetryflow-run"


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment minus any telemetry settings, venv first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_")) and k != "PYTHONPATH"
    }
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)])
    env.update(overrides)
    return env


def receiver_env(receiver: Any, protocol: str = "grpc", **overrides: str) -> dict[str, str]:
    """Export everything to the test's OTLP receiver, quickly."""
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT=endpoint,
        TELEMETRYFLOW_PROTOCOL=protocol,
        TELEMETRYFLOW_INSECURE="true",
        TELEMETRYFLOW_BATCH_TIMEOUT="200",
        TELEMETRYFLOW_TIMEOUT="5",
    )
    env.update(overrides)
    return env


def run(
    args: Sequence[str],
    env: dict[str, str],
    *,
    timeout: float = 60,
    input: str | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAUNCHER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        cwd=cwd or REPO,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def python(*args: str) -> list[str]:
    return [sys.executable, *args]


def app(name: str) -> str:
    return str(APPS / name)


def wait_listening(proc: subprocess.Popen[Any], port: int, timeout: float = 30) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (the server ``proc``
    started); fails if ``proc`` exits first or nothing listens within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port}")
