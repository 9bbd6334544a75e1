"""Dependencies point one way: domain and application never load OpenTelemetry, and the
package import stays cheap (the launcher's hook imports it in every Python process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
import {module}
prefixes = {prefixes!r}
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == p or m.startswith(p + ".") or m.startswith(p + "_")
                               for p in prefixes))))
"""


def _loaded(module: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules matching ``prefixes`` that importing ``module`` in a fresh interpreter loads."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE.format(module=module, prefixes=prefixes)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("telemetryflow_bootstrap.domain", ("opentelemetry",)),
        ("telemetryflow_bootstrap.application", ("opentelemetry",)),
        ("telemetryflow_bootstrap", ("opentelemetry", "grpc", "google.protobuf")),
    ],
)
def test_import_does_not_load_forbidden_modules(module: str, forbidden: tuple[str, ...]) -> None:
    """Importing the module in a fresh interpreter loads none of the forbidden packages."""
    assert _loaded(module, forbidden) == []


def test_probe_detects_opentelemetry_when_it_is_loaded() -> None:
    """The probe itself works: importing the SDK does show up as loaded."""
    assert "opentelemetry.sdk" in _loaded("opentelemetry.sdk", ("opentelemetry",))
