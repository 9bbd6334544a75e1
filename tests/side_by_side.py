"""Run one test program under several scenarios at once, one interpreter each.

The entry contract tests of the instrumentations (patch once whatever the import order,
disabled by name leaves the library alone) each need fresh interpreters; running them
side by side keeps the suite quick. Each scenario's program prints its outcome as JSON on
its last line of stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_scenarios(program: str, scenarios: dict[str, tuple[str, ...]],
                  timeout: float = 90) -> dict[str, Any]:
    """``python -c program *args`` for every scenario's args, run concurrently: the parsed
    last stdout line of each, by scenario name; a scenario that fails fails the caller with
    its stderr."""
    processes = {name: subprocess.Popen([sys.executable, "-c", program, *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, args in scenarios.items()}
    outcomes = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=timeout)
            assert process.returncode == 0, f"{name}: {stderr}"
            outcomes[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return outcomes
