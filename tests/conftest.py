"""Shared fixtures: a clean environment for every test, the real OTLP receiver, and the
``service(name)`` marker (skip when the local server is absent, fail under CI=true)."""

from __future__ import annotations

import os
import socket

import pytest

from .otlp_fixtures import otlp_receiver, otlp_self_signed_cert, otlp_tls_receiver

__all__ = ["otlp_receiver", "otlp_self_signed_cert", "otlp_tls_receiver"]

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
    "nats": ("127.0.0.1", 4222),
    "mosquitto": ("127.0.0.1", 1883),
}


def _ours(name: str) -> bool:
    return name.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))


@pytest.fixture(autouse=True)
def _clean_telemetry_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the TELEMETRYFLOW_*/OTEL_* settings of the shell that runs pytest."""
    for name in list(os.environ):
        if _ours(name):
            monkeypatch.delenv(name)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers(name="service"):
        name = marker.args[0]
        host, port = SERVICES[name]
        if not _reachable(host, port):
            message = f"{name} is not reachable on {host}:{port}"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{message} (CI=true: service tests must run)")
            pytest.skip(message)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Captured output and logs go from a pytest-xdist worker to the main process as UTF-8:
    the tests that feed lone surrogates to the encoders capture them (the SDK exporter's
    own error log names the bad key), and one such report stopped the whole run. They are
    kept, escaped."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
                       for title, text in report.sections]
