"""The one line the hook prints at start-up (at info level): where each signal goes, never
a password, and per-signal destinations named with their signals."""

from __future__ import annotations

import pytest

from telemetryflow_bootstrap._bootstrap import _startup_line
from telemetryflow_bootstrap.domain.config import load_config


def _line(env: dict[str, str]) -> str:
    config, reading = load_config(env)
    assert reading.problems == []
    return _startup_line(config, 3)


def test_one_destination_for_every_signal() -> None:
    line = _line({"TELEMETRYFLOW_ENDPOINT": "http://user:hunter2@collector:4317",
                  "TELEMETRYFLOW_SERVICE_NAME": "shop"})
    assert line.startswith("shop → grpc+http://collector:4317, traces metrics logs, "
                           "3 instrumentations armed (pid ")
    assert "hunter2" not in line


def test_no_endpoint_is_the_console() -> None:
    assert ", traces metrics logs, 3 instrumentations armed" in _line({})
    assert " → console, " in _line({})


def test_per_signal_destinations_are_named_with_their_signals() -> None:
    """Only the logs have their own (OTLP/HTTP, full URL) endpoint: the line says where the
    traces and metrics go and, apart, where the logs go, instead of one endpoint for all."""
    line = _line({"TELEMETRYFLOW_ENDPOINT": "http://collector:4317",
                  "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://u:secret@loki:3100/otlp/v1/logs",
                  "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf"})
    assert " → traces metrics → grpc+http://collector:4317; " \
           "logs → http+http://loki:3100/otlp/v1/logs, 3 instrumentations" in line
    assert "secret" not in line


@pytest.mark.parametrize("signal", ["TRACES", "METRICS", "LOGS"])
def test_a_per_signal_endpoint_alone(signal: str) -> None:
    line = _line({f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT": "http://tempo:4317"})
    others = " ".join(s for s in ("traces", "metrics", "logs") if s != signal.lower())
    assert f"{signal.lower()} → grpc+http://tempo:4317" in line
    assert f"{others} → console" in line


def test_no_signal_at_all() -> None:
    assert " → nowhere, no signals, " in _line({"TELEMETRYFLOW_EXPORTER": "none"})
