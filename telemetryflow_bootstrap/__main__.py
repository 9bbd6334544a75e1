"""``python -m telemetryflow_bootstrap`` is ``telemetryflow-run``, for environments where
the console script is not on PATH (e.g. a venv that is not activated): the same fast path
for a plain launch (no click imported), the same click command for everything else."""

from __future__ import annotations

from ._fast_launch import main

if __name__ == "__main__":
    main(prog_name=None)
