"""Benchmarks of telemetryflow-run against bare Python and ``opentelemetry-instrument``.

Each module runs by hand (``.venv/bin/python scripts/bench/startup.py``); see README.md.
"""
