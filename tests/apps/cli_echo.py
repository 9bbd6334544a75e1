"""Reports what a program launched by telemetryflow-run receives, as one JSON line.

Run by hand: ``telemetryflow-run python tests/apps/cli_echo.py a --b -- c``.
Environment knobs (so the arguments stay free for the test of argument passing):
CLI_ECHO_STDIN=1 reads stdin and reports it, CLI_ECHO_EXIT=<n> exits with n,
CLI_ECHO_MARKER=<path> creates that file (proof the program ran).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    marker = os.environ.get("CLI_ECHO_MARKER")
    if marker:
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write("ran\n")
    report = {
        "argv": sys.argv,
        "pid": os.getpid(),
        "stdin": sys.stdin.read() if os.environ.get("CLI_ECHO_STDIN") == "1" else None,
        "environ": dict(os.environ),
        "sys_path": sys.path,
    }
    print(json.dumps(report), flush=True)
    return int(os.environ.get("CLI_ECHO_EXIT", "0"))


if __name__ == "__main__":
    sys.exit(main())
