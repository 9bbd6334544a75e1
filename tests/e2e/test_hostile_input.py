"""Hostile configuration and secrets: the program always runs unchanged, problems are named,
secrets are never shown or exported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from telemetryflow_bootstrap.domain.environment import VARIABLES

from .launcher import app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e

HOSTILE = [
    "-1",
    "9" * 5000,
    "nonsense ÿ value",
    os.fsdecode(b"\xff\xfe\xfa"),
    "host:port:extra",
    "1.5e999",
    "=,=,=",
    "30s",
]


def _rejected(value: str) -> set[str]:
    rejected = set()
    for var in VARIABLES:
        try:
            var.parse(value)
        except ValueError:
            rejected.add(var.name)
    return rejected


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v[:12]))
def test_every_variable_hostile_program_unchanged(value):
    """Every TELEMETRYFLOW_* variable set to the same hostile value: the program's stdout and
    exit code are unchanged, there is no traceback, and stderr names each variable whose
    value was rejected."""
    env = clean_env(
        **{
            var.name: value
            for var in VARIABLES
            if var.name not in ("TELEMETRYFLOW_ENABLED", "TELEMETRYFLOW_STRICT")
        }
    )
    proc = run(python(app("fixed_output_app.py")), env)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "fixed output 42\n"
    assert "Traceback" not in proc.stderr
    for name in _rejected(value) - {"TELEMETRYFLOW_ENABLED", "TELEMETRYFLOW_STRICT"}:
        assert name in proc.stderr, f"{name} not named for {value[:20]!r}"


@pytest.mark.parametrize("value", HOSTILE[:4], ids=lambda v: repr(v[:12]))
def test_hostile_strict_mode_exits_2(value, tmp_path):
    """Under strict mode a hostile value stops the launch with exit 2 before the program
    runs."""
    marker = tmp_path / "ran"
    env = clean_env(TELEMETRYFLOW_STRICT="true", TELEMETRYFLOW_SAMPLE_RATE=value)
    proc = run(python("-c", f"open({str(marker)!r}, 'w')"), env)
    assert proc.returncode == 2
    assert not marker.exists()
    assert "TELEMETRYFLOW_SAMPLE_RATE" in proc.stderr


def test_secrets_never_printed_nor_exported(otlp_receiver):
    """The API key secret, header values from OTEL_EXPORTER_OTLP_HEADERS and the password of a
    URL never appear in anything printed (launcher, hook, --help) nor in any exported
    span, log or resource attribute."""
    secrets = ["tfs_S3cretValue987", "hdrSecretValue123", "urlPassw0rd456"]
    env = receiver_env(
        otlp_receiver,
        TELEMETRYFLOW_API_KEY_ID="not-a-key-id",  # malformed: the pair is reported
        TELEMETRYFLOW_API_KEY_SECRET=secrets[0],
        OTEL_EXPORTER_OTLP_HEADERS=f"x-api-key={secrets[1]},broken-entry",
        TELEMETRYFLOW_LOG_LEVEL="debug",
    )
    code = (
        "import logging, urllib.request\n"
        "from opentelemetry import trace\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "with trace.get_tracer('s').start_as_current_span('work'):\n"
        f"    logging.getLogger('app').info('calling %s', 'http://user:{secrets[2]}@127.0.0.1:1/x'.split('@')[1])\n"
        "    try:\n"
        f"        urllib.request.urlopen('http://user:{secrets[2]}@127.0.0.1:1/x', timeout=1)\n"
        "    except Exception as exc:\n"
        "        print('expected failure', type(exc).__name__)\n"
    )
    proc = run(python("-c", code), env)
    assert proc.returncode == 0, proc.stderr
    help_text = run(["--help"], env).stdout
    otlp_receiver.wait_for_spans(2)
    received = (
        repr(otlp_receiver.spans()) + repr(otlp_receiver.logs()) + repr(otlp_receiver.metrics())
    )
    for secret in secrets:
        for where, text in (
            ("stderr", proc.stderr),
            ("stdout", proc.stdout),
            ("--help", help_text),
            ("exported", received),
        ):
            assert secret not in text, f"{secret} leaked in {where}"


def test_hostile_values_do_not_break_python_processes_without_launcher():
    """The hook itself (PYTHONPATH set by hand, no launcher to validate first) survives every
    hostile value too."""
    from telemetryflow_bootstrap._launch import hook_directory

    for value in HOSTILE:
        env = clean_env(
            PYTHONPATH=str(hook_directory()),
            **{
                var.name: value
                for var in VARIABLES
                if var.name not in ("TELEMETRYFLOW_ENABLED", "TELEMETRYFLOW_STRICT")
            },
        )
        proc = subprocess.run(
            [sys.executable, app("fixed_output_app.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 7, (value[:20], proc.stderr)
        assert proc.stdout == "fixed output 42\n"
        assert "Traceback" not in proc.stderr
