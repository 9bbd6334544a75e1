"""Per-request cost of HTTP instrumentation (Flask hello route, and a route making one outbound
``requests`` call): bare vs telemetryflow-run vs opentelemetry-instrument in one run.

The measurement lives in ``scripts/bench/per_request.py``; this is the name the HTTP
instrumentation issue asked for. Run: ``.venv/bin/python scripts/bench_http.py [--runs N]``.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    runpy.run_module("scripts.bench.per_request", run_name="__main__")
