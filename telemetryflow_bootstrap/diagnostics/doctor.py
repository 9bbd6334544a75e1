"""``telemetryflow-run doctor``: the ``--info`` report plus live checks, each PASS, WARN,
FAIL or SKIP with a fix, and an exit code a container health check can use (1 on any FAIL).

The checks follow the path an export takes — configuration, hook, DNS, TCP, TLS, then one
EMPTY OTLP export per exported signal — so the first FAIL is usually the cause and the ones
after it are skipped rather than repeated. Signals with their own endpoint
(OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT) get DNS, TCP and TLS once per distinct destination,
and each export check uses its signal's own settings (headers, TLS, CA, compression).

The export check sends a request built by hand (the same endpoint, headers, TLS settings and
compression the exporters use) instead of going through the SDK exporters: those retry
transient errors until their own timeout and only log the status, while a single direct
request reports the status itself (``UNAUTHENTICATED``, HTTP 401…) within the check's
timeout. An empty request carries no data, so nothing shows up in the backend.

Every check is bounded: ``TELEMETRYFLOW_TIMEOUT`` when set (a signal's own
OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT for its checks), else 5 seconds (blocking calls
without their own timeout, like ``getaddrinfo``, run in a daemon thread that is abandoned
when late). Nothing printed contains a secret: details that come back from the server are
scrubbed of the credentials that were sent.

The checks live in ``_doctor_hook`` (configuration, hook), ``_doctor_network`` (DNS, TCP,
TLS) and ``_doctor_export`` (the empty export); ``_doctor_check`` has what they share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..domain.config import TelemetryConfig, load_config
from ..domain.environment import EnvironmentReading
from . import info
from ._doctor_check import FAIL, PASS, SKIP, WARN, Check
from ._doctor_hook import InterpreterProbe, check_configuration, check_hook_file
from ._doctor_network import network_checks

__all__ = [
    "FAIL",
    "PASS",
    "SKIP",
    "WARN",
    "Check",
    "DoctorReport",
    "render_json",
    "render_text",
    "run",
]

_DEFAULT_TIMEOUT = 5.0
# Starting an interpreter (and the SDK in it) is not a network wait: a short network timeout
# must not turn a slow cold start into a false FAIL.
_MIN_PROBE_TIMEOUT = 5.0


@dataclass
class DoctorReport:
    info: info.InfoReport
    checks: list[Check]
    timeout: float

    @property
    def ok(self) -> bool:
        """All passed; WARN and SKIP do not fail a health check."""
        return not any(check.outcome == FAIL for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "timeout": self.timeout,
            "checks": [asdict(check) for check in self.checks],
            "info": self.info.to_dict(),
        }


def run(
    environ: Mapping[str, str], *, target: str | None = None, catalog: Sequence[Any] | None = None
) -> DoctorReport:
    """Every check for the program environment ``environ``; ``target`` is the interpreter
    the program will run with (default: ``python`` on that environment's PATH)."""
    config, reading = load_config(environ)
    timeout = _check_timeout(config, reading)
    probe = (
        InterpreterProbe(target, environ, max(timeout, _MIN_PROBE_TIMEOUT))
        if config.enabled
        else None
    )
    report = info.collect(environ, catalog=catalog)
    checks = [check_configuration(config, reading, report)]
    if probe is None:
        checks.append(Check("hook", SKIP, "telemetry is disabled: the launcher adds nothing"))
        return DoctorReport(report, checks, timeout)
    checks.append(check_hook_file())
    network = network_checks(config, reading, timeout)
    checks.append(probe.result())
    checks.extend(network)
    return DoctorReport(report, checks, timeout)


def _check_timeout(config: TelemetryConfig, reading: EnvironmentReading) -> float:
    return config.timeout if "timeout" in reading.sources else _DEFAULT_TIMEOUT


# ----- rendering ------------------------------------------------------------------------------


def render_text(report: DoctorReport, *, quiet: bool = False) -> str:
    lines = [] if quiet else [info.render_text(report.info), ""]
    lines.append(f"Checks (each within {report.timeout:g}s)")
    width = max(len(check.name) for check in report.checks) + 2
    for check in report.checks:
        if quiet and check.outcome in (PASS, SKIP):
            continue
        lines.append(f"  {check.outcome}  {check.name:<{width}}{check.detail}")
        if check.hint:
            lines.append(f"        {'':<{width}}fix: {check.hint}")
    failed = sum(check.outcome == FAIL for check in report.checks)
    warned = sum(check.outcome == WARN for check in report.checks)
    summary = f"{failed} failed, {warned} warning(s)"
    lines.append(f"Result: {'PASS' if report.ok else 'FAIL'} ({summary})")
    return "\n".join(lines)


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
