"""``telemetryflow-run doctor`` against the real loopback OTLP receiver, run as installed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..otlp_receiver import OTLPReceiver
from .launcher import clean_env, receiver_env, run

pytestmark = pytest.mark.e2e

_SIGNALS = ("traces", "metrics", "logs")


def _outcome(stdout: str, check: str) -> str:
    """The PASS/WARN/FAIL/SKIP of the line for ``check``, or '' when it is absent."""
    for line in stdout.splitlines():
        words = line.split()
        name_words = check.split()
        if len(words) > len(name_words) and words[1 : 1 + len(name_words)] == name_words:
            return words[0]
    return ""


def _hint_after(stdout: str, check: str) -> str:
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        if _outcome(line, check) and index + 1 < len(lines) and "fix:" in lines[index + 1]:
            return lines[index + 1]
    return ""


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_reachable_receiver_passes(otlp_receiver: OTLPReceiver, protocol: str) -> None:
    """A running receiver: DNS, TCP and one empty export per signal PASS, exit 0; the
    --info report comes first."""
    proc = run(["doctor"], receiver_env(otlp_receiver, protocol))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for heading in ("Configuration (value, source)", "Warnings", "Instrumentations", "Checks"):
        assert f"\n{heading}" in proc.stdout
    for check in (
        "configuration",
        "hook file",
        "hook loads",
        "DNS",
        "TCP",
        *(f"export {signal}" for signal in _SIGNALS),
    ):
        assert _outcome(proc.stdout, check) == "PASS", (check, proc.stdout)
    assert _outcome(proc.stdout, "TLS") == "SKIP"
    assert proc.stdout.rstrip().endswith("Result: PASS (0 failed, 0 warning(s))")
    received = {request.signal for request in otlp_receiver.requests()}
    assert received == set(_SIGNALS)
    assert {request.transport for request in otlp_receiver.requests()} == {protocol}
    assert otlp_receiver.spans() == []  # empty requests: nothing shows up in a backend


def test_stopped_receiver_fails_on_tcp_with_a_hint(otlp_receiver: OTLPReceiver) -> None:
    """Nothing listening: TCP FAILs with a fix, the exports are skipped, exit 1."""
    env = receiver_env(otlp_receiver)
    otlp_receiver.stop()
    proc = run(["doctor"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcome(proc.stdout, "TCP") == "FAIL"
    assert "is the collector running" in _hint_after(proc.stdout, "TCP")
    assert _outcome(proc.stdout, "export traces") == "SKIP"
    assert "Result: FAIL" in proc.stdout


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_rejected_credentials_fail_naming_the_auth_variables(
    otlp_receiver: OTLPReceiver, protocol: str
) -> None:
    """UNAUTHENTICATED/401 FAILs each export, names the key variables, never the secret."""
    otlp_receiver.set_failure("UNAUTHENTICATED")
    env = receiver_env(
        otlp_receiver,
        protocol,
        TELEMETRYFLOW_API_KEY_ID="tfk_test",
        TELEMETRYFLOW_API_KEY_SECRET="tfs_verysecret123",
    )
    proc = run(["doctor"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for signal in _SIGNALS:
        assert _outcome(proc.stdout, f"export {signal}") == "FAIL"
        hint = _hint_after(proc.stdout, f"export {signal}")
        assert "TELEMETRYFLOW_API_KEY_ID" in hint
        assert "TELEMETRYFLOW_API_KEY_SECRET" in hint
    assert ("UNAUTHENTICATED" if protocol == "grpc" else "HTTP 401") in proc.stdout
    assert "verysecret" not in proc.stdout + proc.stderr
    # the credentials really were sent with the empty export
    sent = otlp_receiver.rejected("traces")[0].headers
    assert sent["x-telemetryflow-key-id"] == "tfk_test"


def test_python_without_the_package_fails_the_hook_check(tmp_path: Path) -> None:
    """`doctor -- <bare venv python>`: the hook check FAILs with how to install, exit 1."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")],
        check=True,
        timeout=60,
        capture_output=True,
    )
    bare = tmp_path / "bare" / "bin" / "python"
    proc = run(["doctor", "--", str(bare)], clean_env())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = next(line for line in proc.stdout.splitlines() if "hook loads" in line)
    assert line.split()[0] == "FAIL"
    assert str(bare) in line
    assert "No module named 'telemetryflow_bootstrap'" in line
    assert "pip install telemetryflow-bootstrap" in _hint_after(proc.stdout, "hook loads")


def test_unknown_interpreter_fails_the_hook_check() -> None:
    """A target interpreter that does not exist is a FAIL saying so, not a crash."""
    proc = run(["doctor", "-q", "--", "no-such-python3.99"], clean_env())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcome(proc.stdout, "hook loads") == "FAIL"
    assert "no-such-python3.99" in proc.stdout


def test_no_endpoint_skips_the_network_checks() -> None:
    """Console exporter: the network checks are skipped with a note and doctor exits 0
    (checked through --json, which carries the same checks and the info report)."""
    proc = run(["doctor", "--json"], clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    checks = {check["name"]: check for check in data["checks"]}
    assert data["ok"] is True
    assert checks["network"]["outcome"] == "SKIP"
    assert "no endpoint configured" in checks["network"]["detail"]
    assert "DNS" not in checks
    assert checks["hook loads"]["outcome"] == "PASS"
    assert data["info"]["settings"]


def test_invalid_setting_fails_the_configuration_check() -> None:
    """A value the run would ignore (using the default) fails the health check."""
    proc = run(["doctor", "-q"], clean_env(TELEMETRYFLOW_ENDPOINT="not a url"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcome(proc.stdout, "configuration") == "FAIL"


def test_tls_receiver_passes_with_its_ca_and_fails_without(otlp_tls_receiver: OTLPReceiver) -> None:
    """TLS handshake PASSes with TELEMETRYFLOW_CERTIFICATE and FAILs naming it without."""
    receiver = otlp_tls_receiver
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT=f"https://localhost:{receiver.grpc_port}",
        TELEMETRYFLOW_CERTIFICATE=str(receiver.cert_file),
    )
    proc = run(["doctor"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _outcome(proc.stdout, "TLS") == "PASS"
    assert _outcome(proc.stdout, "export traces") == "PASS"
    del env["TELEMETRYFLOW_CERTIFICATE"]
    proc = run(["doctor"], env)
    assert proc.returncode == 1
    assert _outcome(proc.stdout, "TLS") == "FAIL"
    assert "TELEMETRYFLOW_CERTIFICATE" in _hint_after(proc.stdout, "TLS")


def test_slow_collector_is_bounded_by_the_timeout(otlp_receiver: OTLPReceiver) -> None:
    """An export that gets no answer FAILs after TELEMETRYFLOW_TIMEOUT, not later."""
    delay = 10.0  # a doctor that waited for the answer would take at least this long
    otlp_receiver.set_delay(delay)
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_TIMEOUT="1")
    started = time.monotonic()
    proc = run(["doctor", "-q"], env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "DEADLINE_EXCEEDED" in proc.stdout
    assert elapsed < delay, elapsed


# ----- per-signal endpoints ----------------------------------------------------------------------


def test_each_distinct_endpoint_is_checked_once(otlp_receiver: OTLPReceiver) -> None:
    """Traces to one receiver over gRPC (per-signal), metrics and logs to another over HTTP
    (logs through a per-signal URL used as is, on the same host and port): DNS, TCP and TLS
    run once per destination, named after its signals, and each signal's empty export goes
    where its exporter would send it, with its own headers."""
    with OTLPReceiver() as other:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=other.http_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{otlp_receiver.grpc_port}",
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{other.http_endpoint}/loki/otlp/v1/logs",
            OTEL_EXPORTER_OTLP_LOGS_HEADERS="X-Scope-OrgID=shop",
        )
        proc = run(["doctor"], env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        names = [line.split("  ")[2].strip() for line in proc.stdout.split("\nChecks")[1]
                 .splitlines() if line.startswith(("  PASS", "  SKIP", "  WARN", "  FAIL"))]
        for check in ("DNS", "TCP", "TLS"):
            assert [n for n in names if n.startswith(check)] == [
                f"{check} (traces)", f"{check} (metrics, logs)"], names
        for signal in _SIGNALS:
            assert _outcome(proc.stdout, f"export {signal}") == "PASS", proc.stdout
        assert {(r.signal, r.transport) for r in otlp_receiver.requests()} == {("traces", "grpc")}
        logs, metrics = other.requests("logs"), other.requests("metrics")
        assert [(r.path, r.headers.get("x-scope-orgid")) for r in logs] == [
            ("/loki/otlp/v1/logs", "shop")]
        assert [r.path for r in metrics] == ["/v1/metrics"] and other.requests("traces") == []


def test_per_signal_url_used_as_is_gets_a_hint_naming_it(otlp_receiver: OTLPReceiver) -> None:
    """A per-signal OTLP/HTTP endpoint without the signal's path reaches no OTLP path (it is
    used as is): that export FAILs and the hint says to give the full URL in that variable."""
    env = receiver_env(
        otlp_receiver,
        "http",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{otlp_receiver.http_endpoint}/otlp",
    )
    proc = run(["doctor"], env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _outcome(proc.stdout, "export logs") == "FAIL"
    assert "HTTP 404" in proc.stdout
    hint = _hint_after(proc.stdout, "export logs")
    assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is used as is" in hint and "/v1/logs" in hint
    assert _outcome(proc.stdout, "export traces") == "PASS"
