"""What the configuration messages say is what the exporters do: each test runs the
installed launcher on a real program against the loopback OTLP receiver and checks both the
one line on stderr and what arrived (or did not)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..otlp_receiver import OTLPReceiver
from .launcher import app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e

SECRET = "TOPSECRET"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetryflow: warning:")]


# ----- OTEL_PROPAGATORS ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["b3", "tracecontext,xray"])
def test_unknown_otel_propagator_is_one_warning_and_the_rest_is_instrumented(
    otlp_receiver: OTLPReceiver, value: str
) -> None:
    """An OTEL_PROPAGATORS name nobody installed is one warning naming the variable and the
    name; the program is still instrumented (the OTel API's import used to raise on it and
    turn everything off)."""
    proc = run(python(app("traced_app.py")), receiver_env(otlp_receiver, OTEL_PROPAGATORS=value))
    assert proc.returncode == 0, proc.stderr
    assert "instrumentation disabled" not in proc.stderr
    bad = value.split(",")[-1]
    [line] = [w for w in _warnings(proc.stderr) if "OTEL_PROPAGATORS" in w]
    assert f"propagator {bad} is not installed" in line
    otlp_receiver.wait_for_spans(2)


def test_unknown_otel_propagator_in_strict_mode_exits_2(tmp_path: Path) -> None:
    """Strict mode refuses the launch for an unknown OTEL_PROPAGATORS name."""
    marker = tmp_path / "ran"
    env = clean_env(TELEMETRYFLOW_STRICT="true", OTEL_PROPAGATORS="xray")
    proc = run(python("-c", f"open({str(marker)!r}, 'w')"), env)
    assert proc.returncode == 2
    assert not marker.exists()
    assert "OTEL_PROPAGATORS" in proc.stderr


def test_unknown_otel_propagator_is_in_info_and_doctor() -> None:
    """--info lists the bad propagator under Warnings; doctor's hook check passes (the hook
    starts) while its configuration check fails on it."""
    env = clean_env(OTEL_PROPAGATORS="b3", TELEMETRYFLOW_EXPORTER="console")
    info = run(["--info"], env)
    assert "OTEL_PROPAGATORS='b3'" in info.stdout.split("\nWarnings\n")[1]
    doctor = run(["doctor"], env)
    assert "FAIL  configuration" in doctor.stdout and "OTEL_PROPAGATORS" in doctor.stdout
    assert "PASS  hook loads" in doctor.stdout, doctor.stdout


# ----- secrets in the endpoint ----------------------------------------------------------------


def test_endpoint_password_is_never_printed(otlp_receiver: OTLPReceiver) -> None:
    """With a password in the endpoint nothing printed shows it: not the info start-up line,
    not get_status(), not the SDK's retry messages at debug level."""
    code = (
        "from telemetryflow_bootstrap import get_client\n"
        "c = get_client()\n"
        "with c.span('work'):\n"
        "    pass\n"
        "print(c.get_status()['endpoint'])\n"
    )
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT=f"https://user:{SECRET}@127.0.0.1:1",
        TELEMETRYFLOW_LOG_LEVEL="debug",
        TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2",
        TELEMETRYFLOW_TIMEOUT="1",
    )
    proc = run(python("-c", code), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "https://127.0.0.1:1"
    assert "127.0.0.1:1" in proc.stderr  # (the start-up line names the endpoint...)
    assert SECRET not in proc.stderr + proc.stdout  # (...without the password)


@pytest.mark.parametrize("password", ["PASS/W0RD", "PASS W0RD"])
def test_malformed_endpoint_warning_masks_an_odd_password(password: str) -> None:
    """A rejected endpoint is quoted masked even when its password has '/' or a space, at
    run time and in --info."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=f"http://user:{password}@localhost:4318")
    proc = run(python(app("fixed_output_app.py")), env)
    info = run(["--info"], env)
    for text in (proc.stderr, info.stdout):
        assert "TELEMETRYFLOW_ENDPOINT='http://****@localhost:4318'" in text
        assert "W0RD" not in text


def test_doctor_does_not_print_the_endpoint_password() -> None:
    """doctor's failed export (gRPC's error text quotes its target) shows no password."""
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT=f"http://user:{SECRET}@127.0.0.1:1", TELEMETRYFLOW_TIMEOUT="2"
    )
    proc = run(["doctor", "--json"], env)
    assert SECRET not in proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is False


def test_grpc_endpoint_userinfo_becomes_basic_authorization(otlp_receiver: OTLPReceiver) -> None:
    """``user:pw@`` in a gRPC endpoint is sent as HTTP Basic authorization (as the HTTP
    exporter does), not passed to gRPC as part of the target (which never connected)."""
    env = receiver_env(
        otlp_receiver, TELEMETRYFLOW_ENDPOINT=f"http://us%40er:p%3Aw@127.0.0.1:{otlp_receiver.grpc_port}"
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert _warnings(proc.stderr) == []
    otlp_receiver.wait_for_spans(2)
    expected = "Basic " + base64.b64encode(b"us@er:p:w").decode()
    assert {r.headers.get("authorization") for r in otlp_receiver.requests("traces")} == {expected}


# ----- OTEL_SDK_DISABLED -----------------------------------------------------------------------


def test_telemetryflow_enabled_wins_over_otel_sdk_disabled(otlp_receiver: OTLPReceiver) -> None:
    """TELEMETRYFLOW_ENABLED=true with OTEL_SDK_DISABLED=true: the warning says
    TELEMETRYFLOW_ENABLED is used, and it is: spans arrive (the SDK's providers used to read
    OTEL_SDK_DISABLED themselves and record nothing)."""
    env = receiver_env(otlp_receiver, OTEL_SDK_DISABLED="true", TELEMETRYFLOW_ENABLED="true")
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert "using TELEMETRYFLOW_ENABLED" in proc.stderr
    otlp_receiver.wait_for_spans(2)


# ----- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "headers", "expected"),
    [
        ("grpc", "X Foo=v", "header name 'X Foo' is not valid"),
        ("http", "x-tok=s\u20accret", "the value of header 'x-tok' is not valid"),
        ("grpc", "x!y=1", "header name 'x!y' is not valid for gRPC"),
    ],
)
def test_invalid_headers_are_one_line_and_exports_still_work(
    otlp_receiver: OTLPReceiver, protocol: str, headers: str, expected: str
) -> None:
    """A header gRPC or HTTP would refuse is rejected when read, in one line naming the
    variable and the header (never its value); exports go on without it, with no gRPC
    C-core noise on the program's stderr."""
    env = receiver_env(otlp_receiver, protocol, TELEMETRYFLOW_HEADERS=headers)
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    [line] = _warnings(proc.stderr)
    assert line.startswith("telemetryflow: warning: TELEMETRYFLOW_HEADERS=") and expected in line
    assert "cret" not in proc.stderr and "Metadata key" not in proc.stderr
    otlp_receiver.wait_for_spans(2)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]
)
def test_rejected_otel_headers_are_not_sent(
    otlp_receiver: OTLPReceiver, protocol: str, variable: str
) -> None:
    """Headers our reader rejected (or does not support) are not sent anyway: the SDK's
    exporters used to re-read the environment when given no headers."""
    env = receiver_env(otlp_receiver, protocol, **{variable: "authorization=Bearer SECRETX,bad"})
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert variable in proc.stderr
    otlp_receiver.wait_for_spans(2)
    assert all("authorization" not in r.headers for r in otlp_receiver.requests())


def test_telemetryflow_headers_replace_otel_headers_over_http(otlp_receiver: OTLPReceiver) -> None:
    """With both set, only TELEMETRYFLOW_HEADERS is sent, as its warning says (the HTTP
    exporter used to merge OTEL_EXPORTER_OTLP_HEADERS in)."""
    env = receiver_env(
        otlp_receiver, "http", TELEMETRYFLOW_HEADERS="x-ours=1",
        OTEL_EXPORTER_OTLP_HEADERS="x-theirs=2",
    )
    proc = run(python(app("traced_app.py")), env)
    assert "using TELEMETRYFLOW_HEADERS" in proc.stderr
    otlp_receiver.wait_for_spans(2)
    for request in otlp_receiver.requests():
        assert request.headers.get("x-ours") == "1" and "x-theirs" not in request.headers


# ----- settings we do not support, the sampler, contradictions ----------------------------------


def test_blrp_and_per_signal_settings_are_honoured_not_named() -> None:
    """OTEL_BLRP_* and a per-signal OTLP setting are honoured, so neither is named as not
    supported, at run time or in --info, which shows the log-only row instead."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://c:4318/v1/traces",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        TELEMETRYFLOW_EXPORTER="none",
    )
    proc = run(python(app("fixed_output_app.py")), env)
    assert _warnings(proc.stderr) == []
    info = run(["--info"], env).stdout
    assert "not supported" not in info
    row = next(line for line in info.splitlines() if "OTEL_BLRP_SCHEDULE_DELAY" in line)
    assert "logs only, over TELEMETRYFLOW_BATCH_TIMEOUT" in row


def test_info_shows_the_sampler() -> None:
    """OTEL_TRACES_SAMPLER=always_off is visible in --info (text and JSON), with a warning
    that no trace is recorded; the sample-rate row no longer claims a rate in effect."""
    env = clean_env(OTEL_TRACES_SAMPLER="always_off")
    text = run(["--info"], env).stdout
    assert "sampler  always_off (OTEL_TRACES_SAMPLER): no trace is recorded" in text
    assert "the sampler records no new trace" in text
    rate_row = next(line for line in text.splitlines() if "TELEMETRYFLOW_SAMPLE_RATE" in line)
    assert "(unused)" in rate_row
    report = json.loads(run(["--info", "--json"], env).stdout)
    assert report["sampler"].startswith("always_off (OTEL_TRACES_SAMPLER)")


def test_malformed_variable_with_a_fallback_says_which_is_used() -> None:
    """A malformed TELEMETRYFLOW_ENDPOINT with OTEL_EXPORTER_OTLP_ENDPOINT set is one line
    saying the OTEL one is used (not "the default", nor "using TELEMETRYFLOW_ENDPOINT")."""
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT="http://bad:port",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1",
        TELEMETRYFLOW_EXPORTER="none",
    )
    proc = run(python(app("fixed_output_app.py")), env)
    [line] = _warnings(proc.stderr)
    assert line.startswith("telemetryflow: warning: TELEMETRYFLOW_ENDPOINT='http://bad:port'")
    assert line.endswith("(using OTEL_EXPORTER_OTLP_ENDPOINT instead)")


# ----- certificates -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_missing_otel_certificate_is_one_line_naming_it(protocol: str) -> None:
    """A missing OTEL_EXPORTER_OTLP_CERTIFICATE is one line naming that variable (not one per
    signal naming TELEMETRYFLOW_CERTIFICATE)."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="https://127.0.0.1:1",
        OTEL_EXPORTER_OTLP_CERTIFICATE="/nonexistent/ca.pem",
        TELEMETRYFLOW_PROTOCOL=protocol,
        TELEMETRYFLOW_SHUTDOWN_TIMEOUT="1",
        TELEMETRYFLOW_TIMEOUT="1",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    lines = [w for w in _warnings(proc.stderr) if "CERTIFICATE" in w]
    assert lines == [
        "telemetryflow: warning: OTEL_EXPORTER_OTLP_CERTIFICATE='/nonexistent/ca.pem': expected "
        "the path of a readable PEM file (No such file or directory) (using the default)"
    ]


def test_certificate_problem_in_strict_mode_exits_2(tmp_path: Path) -> None:
    """Strict mode refuses the launch for a missing certificate file."""
    env = clean_env(TELEMETRYFLOW_STRICT="true", TELEMETRYFLOW_CERTIFICATE=str(tmp_path / "no"))
    proc = run(python("-c", "print('ran')"), env)
    assert proc.returncode == 2 and "ran" not in proc.stdout
    assert "TELEMETRYFLOW_CERTIFICATE" in proc.stderr


def test_non_pem_certificate_is_named_without_grpc_noise(tmp_path: Path) -> None:
    """A certificate file that is not PEM is one line naming the variable; gRPC never gets
    it, so its C core prints nothing on the program's stderr."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a pem\n")
    env = clean_env(
        TELEMETRYFLOW_ENDPOINT="https://127.0.0.1:1",
        TELEMETRYFLOW_CERTIFICATE=str(bad),
        TELEMETRYFLOW_SHUTDOWN_TIMEOUT="1",
        TELEMETRYFLOW_TIMEOUT="1",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert "TELEMETRYFLOW_CERTIFICATE=" in proc.stderr and "expected a PEM file" in proc.stderr
    assert "root certificate" not in proc.stderr and "ssl_transport_security" not in proc.stderr


# ----- resource attributes, doctor's interpreter ------------------------------------------------


@pytest.mark.parametrize("override", [True, False])
def test_bad_otel_resource_attributes_give_no_raw_sdk_line(override: bool) -> None:
    """A malformed OTEL_RESOURCE_ATTRIBUTES is reported in our words only (the SDK's own
    "Invalid key value resource attribute pair" line used to follow), whether or not
    TELEMETRYFLOW_RESOURCE_ATTRIBUTES overrides it."""
    extra = {"TELEMETRYFLOW_RESOURCE_ATTRIBUTES": "x=1"} if override else {}
    env = clean_env(OTEL_RESOURCE_ATTRIBUTES="good=1,bad", TELEMETRYFLOW_EXPORTER="none", **extra)
    proc = run(python(app("fixed_output_app.py")), env)
    assert "Invalid key value" not in proc.stderr
    assert len(_warnings(proc.stderr)) == 1
    assert all(line.startswith("telemetryflow: ") for line in proc.stderr.splitlines())


def test_doctor_with_a_non_python_target_does_not_suggest_pip() -> None:
    """`doctor -- /bin/sleep` says to name a Python interpreter, not `/bin/sleep -m pip`."""
    proc = run(["doctor", "-q", "--", "/bin/sleep"], clean_env())
    assert proc.returncode == 1
    assert "-m pip" not in proc.stdout
    assert "is it a Python interpreter?" in proc.stdout


# ----- the exit message names the setting that ended the exports ---------------------------------


def test_exit_message_blames_the_export_timeout_when_it_ended_the_exports(
    otlp_receiver: OTLPReceiver,
) -> None:
    """A collector slower than TELEMETRYFLOW_TIMEOUT fails each export long before the
    shutdown deadline: the exit message says so instead of blaming
    TELEMETRYFLOW_SHUTDOWN_TIMEOUT (or the queue size)."""
    otlp_receiver.set_delay(6)
    env = receiver_env(
        otlp_receiver,
        TELEMETRYFLOW_TIMEOUT="1",
        TELEMETRYFLOW_SHUTDOWN_TIMEOUT="20",
        TELEMETRYFLOW_ENABLE_METRICS="false",
        TELEMETRYFLOW_ENABLE_LOGS="false",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    [line] = [w for w in _warnings(proc.stderr) if "not all telemetry was exported" in w]
    assert "TELEMETRYFLOW_TIMEOUT" in line
    assert "SHUTDOWN_TIMEOUT" not in proc.stderr and "MAX_QUEUE_SIZE" not in proc.stderr


def test_exit_message_blames_the_shutdown_timeout_when_it_was_reached(
    otlp_receiver: OTLPReceiver,
) -> None:
    """When the shutdown deadline cuts the last export short, the message names
    TELEMETRYFLOW_SHUTDOWN_TIMEOUT, and a drop at that point does not name the queue size."""
    otlp_receiver.set_delay(6)
    env = receiver_env(
        otlp_receiver,
        TELEMETRYFLOW_TIMEOUT="10",
        TELEMETRYFLOW_SHUTDOWN_TIMEOUT="1",
        TELEMETRYFLOW_ENABLE_METRICS="false",
        TELEMETRYFLOW_ENABLE_LOGS="false",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    [line] = [w for w in _warnings(proc.stderr) if "not all telemetry was exported" in w]
    assert "within 1s (TELEMETRYFLOW_SHUTDOWN_TIMEOUT)" in line
    assert "MAX_QUEUE_SIZE" not in proc.stderr


# ----- per-signal OTLP settings (OTEL_EXPORTER_OTLP_<SIGNAL>_*) --------------------------------

_ALL_SIGNALS_APP = (
    "from telemetryflow_bootstrap import get_client\n"
    "c = get_client()\n"
    "with c.span('split-work'):\n"
    "    c.increment_counter('split.count')\n"
    "    c.log_info('split log')\n"
)


def test_each_signal_goes_to_its_own_endpoint_with_its_own_headers(
    otlp_receiver: OTLPReceiver,
) -> None:
    """As an opentelemetry-instrument user configures it: traces over gRPC to one receiver
    (its endpoint's user:pw@ as Basic authorization, its own header), logs and metrics over
    HTTP to another (logs to a per-signal URL used as is, with their own header; metrics to
    the all-signals endpoint with /v1/metrics appended and the all-signals header). Each
    signal arrives where it was sent, with exactly its headers, and nothing is warned."""
    with OTLPReceiver() as other:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=other.http_endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_HEADERS="x-all=1",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=(
                f"http://tempo:{SECRET}@127.0.0.1:{otlp_receiver.grpc_port}"),
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_TRACES_HEADERS="x-tempo=t",
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"{other.http_endpoint}/loki/otlp/v1/logs",
            OTEL_EXPORTER_OTLP_LOGS_HEADERS="X-Scope-OrgID=shop",
            TELEMETRYFLOW_BATCH_TIMEOUT="200",
            TELEMETRYFLOW_RUNTIME_METRICS="false",
        )
        proc = run(python("-c", _ALL_SIGNALS_APP), env)
        assert proc.returncode == 0, proc.stderr
        assert _warnings(proc.stderr) == [] and SECRET not in proc.stderr
        otlp_receiver.wait_for_spans(1, name="split-work")
        other.wait_for_logs(1, body="split log")
        other.wait_for_metric("split.count")
        basic = "Basic " + base64.b64encode(f"tempo:{SECRET}".encode()).decode()
        traces = otlp_receiver.requests()
        assert {(r.signal, r.transport) for r in traces} == {("traces", "grpc")}
        assert all(r.headers.get("authorization") == basic and r.headers.get("x-tempo") == "t"
                   and "x-all" not in r.headers for r in traces)
        assert {r.signal for r in other.requests()} == {"logs", "metrics"}
        for r in other.requests("logs"):
            assert (r.transport, r.path) == ("http", "/loki/otlp/v1/logs")  # (as is)
            assert r.headers.get("x-scope-orgid") == "shop"
            assert "x-all" not in r.headers and "authorization" not in r.headers
        for r in other.requests("metrics"):
            assert (r.transport, r.path) == ("http", "/v1/metrics")  # (appended)
            assert r.headers.get("x-all") == "1" and "authorization" not in r.headers


def test_a_per_signal_endpoint_alone_exports_that_signal_only(
    otlp_receiver: OTLPReceiver,
) -> None:
    """Only OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces arrive over OTLP, while metrics and
    logs are printed on stderr by the console exporter, as with no endpoint at all."""
    env = clean_env(
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{otlp_receiver.grpc_port}",
        TELEMETRYFLOW_BATCH_TIMEOUT="200",
        TELEMETRYFLOW_RUNTIME_METRICS="false",
    )
    proc = run(python("-c", _ALL_SIGNALS_APP), env)
    assert proc.returncode == 0, proc.stderr
    otlp_receiver.wait_for_spans(1, name="split-work")
    assert {r.signal for r in otlp_receiver.requests()} == {"traces"}
    assert "telemetryflow: log " in proc.stderr and "split log" in proc.stderr
    assert "telemetryflow: metric split.count" in proc.stderr
    assert "split-work" not in proc.stderr  # (not printed: exported)


def test_command_line_endpoint_overridden_for_one_signal_is_said_once(
    otlp_receiver: OTLPReceiver,
) -> None:
    """``--endpoint`` sets TELEMETRYFLOW_ENDPOINT; OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, more
    specific, still wins for logs (as under opentelemetry-instrument): one start-up line
    says so, --info shows both destinations, and each signal goes where --info says."""
    with OTLPReceiver() as other:
        env = clean_env(
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{other.grpc_port}",
            TELEMETRYFLOW_BATCH_TIMEOUT="200",
            TELEMETRYFLOW_ENABLE_METRICS="false",
        )
        options = ["--endpoint", f"http://127.0.0.1:{otlp_receiver.grpc_port}"]
        proc = run([*options, *python("-c", _ALL_SIGNALS_APP)], env)
        assert proc.returncode == 0, proc.stderr
        assert _warnings(proc.stderr) == [
            "telemetryflow: warning: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT overrides "
            "TELEMETRYFLOW_ENDPOINT for logs: a per-signal variable is more specific "
            "(telemetryflow-run --info shows each signal's settings)"
        ]
        otlp_receiver.wait_for_spans(1, name="split-work")
        other.wait_for_logs(1, body="split log")
        assert {r.signal for r in otlp_receiver.requests()} == {"traces"}
        assert {r.signal for r in other.requests()} == {"logs"}
        export = run([*options, "--info"], env).stdout.split("\nExport\n")[1]
        assert f"traces   otlp/grpc -> 127.0.0.1:{otlp_receiver.grpc_port} (no TLS)" in export
        assert (f"logs     otlp/grpc -> 127.0.0.1:{other.grpc_port} (no TLS; per-signal "
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)") in export


def test_malformed_per_signal_values_are_one_line_each_and_fall_back(
    otlp_receiver: OTLPReceiver,
) -> None:
    """Malformed per-signal values are reported like the all-signals ones (one line each,
    naming the variable, values and passwords masked) and the signal uses the all-signals
    settings: its spans still arrive, without the rejected header."""
    env = receiver_env(
        otlp_receiver,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://u:{SECRET}@bad:port",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS=f"authorization=Bearer {SECRET},oops",
        OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="5s",
        TELEMETRYFLOW_ENABLE_METRICS="false",
        TELEMETRYFLOW_ENABLE_LOGS="false",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stderr and "Traceback" not in proc.stderr
    assert _warnings(proc.stderr) == [
        "telemetryflow: warning: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='http://****@bad:port': "
        "expected host:port, http://host:port or https://host:port, e.g. collector:4317 "
        "(using TELEMETRYFLOW_ENDPOINT instead)",
        "telemetryflow: warning: OTEL_EXPORTER_OTLP_TRACES_HEADERS=authorization=****,****: "
        "expected comma-separated key=value pairs, e.g. team=shop,region=eu (using the default)",
        "telemetryflow: warning: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT='5s': expected a number in "
        "milliseconds without a unit suffix, e.g. 10 (using TELEMETRYFLOW_TIMEOUT instead)",
    ]
    otlp_receiver.wait_for_spans(2)
    assert all("authorization" not in r.headers for r in otlp_receiver.requests())


def test_malformed_per_signal_value_in_strict_mode_exits_2(tmp_path: Path) -> None:
    """Strict mode refuses the launch for a bad per-signal value, naming it."""
    marker = tmp_path / "ran"
    env = clean_env(TELEMETRYFLOW_STRICT="true", OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="udp")
    proc = run(python("-c", f"open({str(marker)!r}, 'w')"), env)
    assert proc.returncode == 2
    assert not marker.exists()
    assert "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL='udp'" in proc.stderr



# ----- an endpoint URL without a port -----------------------------------------------------


@pytest.fixture
def receiver_on_port_80() -> Iterator[OTLPReceiver]:
    """The OTLP receiver with its HTTP side on 127.0.0.1:80 (the port an ``http://`` URL
    without one means); skipped where port 80 cannot be bound, except under CI=true."""
    receiver = OTLPReceiver()
    try:
        receiver.start_on(0, 80)
    except OSError as exc:
        message = f"port 80 on 127.0.0.1 cannot be bound here ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: this test must run)")
        pytest.skip(message)
    try:
        yield receiver
    finally:
        receiver.stop()


def test_http_url_without_a_port_is_sent_to_the_schemes_port(
    receiver_on_port_80: OTLPReceiver,
) -> None:
    """``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1`` (no port) sends to port 80, as
    OpenTelemetry's SDKs read a URL, not to OTLP's 4318 (where an ``https://api.vendor``
    URL went to :4318 instead of 443 and every export failed)."""
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1",
                    OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                    TELEMETRYFLOW_BATCH_TIMEOUT="200")
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    receiver_on_port_80.wait_for_spans(2)


@pytest.mark.parametrize(("protocol", "shown"), [
    ("http/protobuf", "https://api.vendor.example:443/v1/traces"),
    ("grpc", "api.vendor.example:443"),
])
def test_https_url_without_a_port_is_port_443_in_info(protocol: str, shown: str) -> None:
    """--info shows where each signal goes: port 443 for an ``https://`` URL with none, over
    either transport; a bare host keeps OTLP's port."""
    info = run(["--info"], clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="https://api.vendor.example",
                                     OTEL_EXPORTER_OTLP_PROTOCOL=protocol))
    assert info.returncode == 0, info.stderr
    assert shown in info.stdout, info.stdout
    assert ":4317" not in info.stdout and ":4318" not in info.stdout, info.stdout
    bare = run(["--info"], clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="api.vendor.example",
                                     OTEL_EXPORTER_OTLP_PROTOCOL=protocol))
    assert f"api.vendor.example:{4318 if protocol.startswith('http') else 4317}" in bare.stdout
