"""``python -m telemetryflow_bootstrap`` is ``telemetryflow-run``, for environments where
the console script is not on PATH (e.g. a venv that is not activated)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name=None)
