"""What the launcher's ``sitecustomize`` runs in every instrumented Python process.

Builds the config from the environment, starts the SDK, arms the library patches and the
lifecycle hooks. It must never break the program: the hook wraps ``start()`` and turns any
exception into one stderr line; problems found here are reported, not raised.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import _diagnostics, _runtime
from ._service_name import DERIVED_ENV, derive_service_name

REPORTED_ENV = "_TELEMETRYFLOW_REPORTED"


class StrictModeError(Exception):
    """Configuration problems while TELEMETRYFLOW_STRICT=true."""


def start() -> Any:
    """Start instrumentation once per process; returns the client (or None when disabled)."""
    if _runtime.current_client() is not None:
        return _runtime.current_client()  # started already (nested launcher, double import)
    from .domain.config import load_config

    if _is_the_launcher():
        return None  # a nested telemetryflow-run: it is about to exec the real program
    derived = os.environ.get(DERIVED_ENV) or derive_service_name()
    config, reading = load_config(os.environ, default_service_name=derived)
    if not config.enabled:
        return None
    _diagnostics.set_level(config.log_level)
    _report(reading)
    if config.strict and reading.problems:
        raise StrictModeError("; ".join(str(p) for p in reading.problems))
    if reading.sources.get("service_name") == "derived":
        os.environ[DERIVED_ENV] = derived  # children report as the same service

    from .client import TelemetryFlowClient
    from .instrumentation import registry
    from .lifecycle import install

    client = TelemetryFlowClient(config).initialize()
    handler = client.handler
    context = registry.PatchContext(
        tracer=handler.tracer, meter=handler.meter, logger_provider=handler.logger_provider,
        config=config, handler=handler)
    armed = registry.arm(context)
    from .instrumentation import _process_level

    armed += len(_process_level.install(context))
    install(client, config.shutdown_timeout)
    if _diagnostics.enabled_for("info"):
        _diagnostics.info(_startup_line(config, armed))
    return client


def _is_the_launcher() -> bool:
    argv = getattr(sys, "orig_argv", sys.argv)
    script = os.path.basename(argv[1]) if len(argv) > 1 else ""
    return script == "telemetryflow-run" or argv[1:3] == ["-m", "telemetryflow_bootstrap"]


def _report(reading: Any) -> None:
    lines = [f"{p} (using the default)" for p in reading.problems] + list(reading.warnings)
    if not lines:
        return
    if os.environ.get(REPORTED_ENV) == _digest(lines):
        return  # the launcher printed these very lines already
    for line in lines:
        _diagnostics.warn(line)


def _digest(lines: list[str]) -> str:
    try:
        from ._launch import problems_digest
    except ImportError:  # pragma: no cover - the launcher module ships with the package
        return ""
    return problems_digest(lines)


def _startup_line(config: Any, armed: int) -> str:
    signals = " ".join(s.value for s in config.enabled_signals) or "no signals"
    kinds = {config.exporter_for(s).value for s in config.enabled_signals}
    if kinds == {"otlp"}:
        target = f"{config.protocol.value}+{config.resolved_endpoint()}"
    else:
        target = "/".join(sorted(kinds)) or "nowhere"
    return (f"{config.service_name} → {target}, {signals}, {armed} instrumentations armed "
            f"(pid {os.getpid()}, python {sys.version.split()[0]})")

