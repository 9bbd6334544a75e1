"""``telemetryflow-run --info`` and shell completion, run as installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from telemetryflow_bootstrap.domain.environment import VARIABLES
from telemetryflow_bootstrap.instrumentation import registry

from .launcher import clean_env, run

pytestmark = pytest.mark.e2e

_STATUSES = {"installed", "not installed", "disabled", "superseded", "unsupported"}


def _info_json(env: dict[str, str], *options: str) -> dict[str, Any]:
    proc = run([*options, "--info", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _row(text: str, variable: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.split()[:1] == [variable])
    return line.split()


def test_info_table_shows_each_value_and_its_source() -> None:
    """Every variable is a row; set ones show value and variable, others their default."""
    proc = run(
        ["--info"],
        clean_env(
            TELEMETRYFLOW_SERVICE_NAME="shop",
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
            TELEMETRYFLOW_PROTOCOL="http",
        ),
    )
    assert proc.returncode == 0, proc.stderr
    for var in VARIABLES:
        assert _row(proc.stdout, var.name), var.name
    assert _row(proc.stdout, "TELEMETRYFLOW_SERVICE_NAME")[1:] == [
        "shop",
        "TELEMETRYFLOW_SERVICE_NAME",
    ]
    assert _row(proc.stdout, "TELEMETRYFLOW_ENDPOINT")[1:] == [
        "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    assert _row(proc.stdout, "TELEMETRYFLOW_BATCH_MAX_SIZE")[1:] == ["512", "default"]
    assert _row(proc.stdout, "TELEMETRYFLOW_INSECURE")[1:] == ["true", "derived"]


def test_info_names_versions() -> None:
    """The header names the package, Python and the OpenTelemetry versions."""
    proc = run(["--info"], clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("telemetryflow-run ")
    for name in (
        "Python",
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-grpc",
    ):
        assert f"\n  {name} " in proc.stdout


def test_info_never_prints_the_secret() -> None:
    """The API key secret is redacted in the table and in the JSON (and on stderr)."""
    env = clean_env(
        TELEMETRYFLOW_API_KEY_SECRET="tfs_verysecret123",
        TELEMETRYFLOW_HEADERS="x-token=verysecret456",
    )
    for args in (["--info"], ["--info", "--json"]):
        proc = run(args, env)
        assert proc.returncode == 0, proc.stderr
        assert "verysecret" not in proc.stdout + proc.stderr
        assert "tfs_****" in proc.stdout


def test_info_warns_about_conflicting_endpoints() -> None:
    """Two different endpoints are reported as a warning naming both variables."""
    proc = run(
        ["--info"],
        clean_env(
            TELEMETRYFLOW_ENDPOINT="http://a:4318",
            OTEL_EXPORTER_OTLP_ENDPOINT="http://b:4318",
            TELEMETRYFLOW_PROTOCOL="http",
        ),
    )
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stdout.splitlines() if line.startswith("  ! ")]
    assert any(
        "TELEMETRYFLOW_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT" in line for line in warning
    ), proc.stdout


def test_info_json_parses_and_lists_the_shipped_instrumentations() -> None:
    """--json is one JSON document listing every shipped instrumentation with a status."""
    catalog = [entry.name for entry in registry._catalog()]
    disabled = catalog[0] if catalog else "requests"
    data = _info_json(clean_env(TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=disabled))
    states = {item["name"]: item for item in data["instrumentations"]}
    assert list(states) == catalog
    assert {item["status"] for item in states.values()} <= _STATUSES
    if catalog:
        assert states[disabled]["status"] == "disabled"
    for name in ("requests", "flask"):  # installed in the test venv
        if name in states and name != disabled:
            assert states[name]["status"] == "installed"
            assert states[name]["version"]
    assert isinstance(data["contrib_instrumentors"], list)


def test_info_shows_what_launcher_options_set() -> None:
    """Options before --info apply, so the report is what a run with them would use."""
    data = _info_json(clean_env(), "--service-name", "from-option", "--disable", "requests")
    rows = {row["variable"]: row for row in data["settings"]}
    assert rows["TELEMETRYFLOW_SERVICE_NAME"]["value"] == "from-option"
    assert rows["TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"]["value"] == "requests"


def test_info_shows_per_signal_settings_over_the_command_line_endpoint() -> None:
    """--endpoint sets TELEMETRYFLOW_ENDPOINT for every signal; a per-signal variable that
    overrides it for logs is visible: the endpoint row says "not for logs", the per-signal
    row and the Export line name it, a warning says it, and no header value or password
    appears in the text or the JSON."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="https://loki:pa55w0rd@loki.example/otlp/v1/logs",
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http",
        OTEL_EXPORTER_OTLP_LOGS_HEADERS="X-Scope-OrgID=tenant-secret-7",
    )
    options = ["--endpoint", "collector:4317"]
    proc = run([*options, "--info"], env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert _row(text, "TELEMETRYFLOW_ENDPOINT")[1:] == [
        "collector:4317", "TELEMETRYFLOW_ENDPOINT", "(not", "for", "logs:", "see", "below)"]
    assert _row(text, "OTEL_EXPORTER_OTLP_LOGS_HEADERS")[1:] == [
        "X-Scope-OrgID=****", "logs", "only,", "over", "TELEMETRYFLOW_HEADERS"]
    export = text.split("\nExport\n")[1].split("\n\n")[0]
    assert "  metrics  otlp/grpc -> collector:4317 (TLS)" in export
    assert ("  logs     otlp/http -> https://loki.example/otlp/v1/logs (TLS; per-signal "
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, _PROTOCOL, _HEADERS)") in export
    assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT overrides TELEMETRYFLOW_ENDPOINT for logs" in text
    data = _info_json(env, *options)
    assert data["export"]["traces"] == "otlp/grpc -> collector:4317 (TLS)"
    rows = {row["variable"]: row for row in data["settings"]}
    assert rows["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"]["value"] == (
        "https://****@loki.example/otlp/v1/logs")
    for output in (text, json.dumps(data)):
        assert "pa55w0rd" not in output and "tenant-secret-7" not in output


def test_info_with_a_program_is_a_usage_error() -> None:
    """--info runs nothing: naming a program with it exits 2 without running it."""
    proc = run(["--info", "python", "-c", "print('ran')"], clean_env())
    assert proc.returncode == 2
    assert "ran" not in proc.stdout
    assert "--info" in proc.stderr


def test_json_without_info_is_a_usage_error() -> None:
    """--json alone exits 2 and says what it goes with."""
    proc = run(["--json"], clean_env())
    assert proc.returncode == 2
    assert "--json goes with --info" in proc.stderr


def test_a_program_named_doctor_runs_after_double_dash(tmp_path: Path) -> None:
    """`telemetryflow-run -- doctor` runs a program called doctor, not the subcommand."""
    program = tmp_path / "doctor"
    program.write_text('#!/bin/sh\necho "program doctor: $*"\n')
    program.chmod(0o755)
    env = clean_env(TELEMETRYFLOW_EXPORTER="none")
    env["PATH"] = f"{tmp_path}:{env['PATH']}"
    proc = run(["--", "doctor", "--quiet"], env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "program doctor: --quiet\n"


def test_run_path_does_not_import_the_diagnostics() -> None:
    """Importing the launcher loads none of the diagnostics modules (nor their scans)."""
    code = (
        "import sys, telemetryflow_bootstrap.cli; "
        "print(sorted(m for m in sys.modules if '.diagnostics' in m))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout.strip() == "[]"


def test_bash_completion_script_is_printed() -> None:
    """_TELEMETRYFLOW_RUN_COMPLETE=bash_source prints a bash completion script."""
    proc = run([], clean_env(_TELEMETRYFLOW_RUN_COMPLETE="bash_source"))
    assert proc.returncode == 0, proc.stderr
    assert "_TELEMETRYFLOW_RUN_COMPLETE=bash_complete" in proc.stdout
    assert "complete -o nosort -F _telemetryflow_run_completion telemetryflow-run" in proc.stdout


def test_completion_offers_subcommands_and_options() -> None:
    """The completion protocol offers doctor for `d` and launcher options for `--ser`."""
    proc = run(
        [],
        clean_env(
            _TELEMETRYFLOW_RUN_COMPLETE="bash_complete",
            COMP_WORDS="telemetryflow-run d",
            COMP_CWORD="1",
        ),
    )
    assert proc.stdout.split() == ["plain,doctor"]
    proc = run(
        [],
        clean_env(
            _TELEMETRYFLOW_RUN_COMPLETE="bash_complete",
            COMP_WORDS="telemetryflow-run --ser",
            COMP_CWORD="1",
        ),
    )
    assert proc.stdout.split() == ["plain,--service-name"]
