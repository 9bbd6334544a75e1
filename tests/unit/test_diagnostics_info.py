"""``--info``'s report, computed in-process from explicit environments and catalogs."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import pytest

from telemetryflow_bootstrap.diagnostics import info
from telemetryflow_bootstrap.diagnostics.info import ContribInstrumentor, collect, safe_url
from telemetryflow_bootstrap.domain.environment import VARIABLES
from telemetryflow_bootstrap.instrumentation import registry
from telemetryflow_bootstrap.instrumentation.registry import Instrumentation

_REQUESTS = Instrumentation("requests", ("requests",), "x:patch", distribution="requests")
_FLASK = Instrumentation("flask", ("flask",), "x:patch", distribution="flask")
_MISSING = Instrumentation(
    "nosuchlib",
    ("telemetryflow_no_such_module",),
    "x:patch",
    distribution="telemetryflow-no-such-distribution",
)
_STDLIB = Instrumentation("sqlite3", ("sqlite3",), "x:patch")
_CATALOG = (_REQUESTS, _FLASK, _MISSING, _STDLIB)
_CONTRIB_REQUESTS = ContribInstrumentor(
    "requests",
    "opentelemetry.instrumentation.requests:RequestsInstrumentor",
    "opentelemetry-instrumentation-requests",
    "0.1b0",
)


def _report(
    catalog: tuple[Instrumentation, ...] = _CATALOG,
    contrib: tuple[ContribInstrumentor, ...] = (),
    **environ: str,
) -> info.InfoReport:
    return collect(environ, catalog=catalog, contrib=contrib)


def _setting(report: info.InfoReport, name: str) -> info.Setting:
    return next(setting for setting in report.settings if setting.variable == name)


def _states(report: info.InfoReport) -> dict[str, info.InstrumentationState]:
    return {state.name: state for state in report.instrumentations}


def test_every_variable_is_listed_once_in_table_order() -> None:
    """The configuration section has one row per variable of the table, in its order."""
    report = _report()
    assert [setting.variable for setting in report.settings] == [v.name for v in VARIABLES]


def test_values_name_the_variable_they_came_from() -> None:
    """A set variable shows its parsed value and its own name as the source."""
    report = _report(
        TELEMETRYFLOW_SERVICE_NAME="shop",
        TELEMETRYFLOW_SAMPLE_RATE="0.25",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector:4318",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    assert _setting(report, "TELEMETRYFLOW_SERVICE_NAME") == info.Setting(
        "TELEMETRYFLOW_SERVICE_NAME", "shop", "TELEMETRYFLOW_SERVICE_NAME"
    )
    assert _setting(report, "TELEMETRYFLOW_SAMPLE_RATE").value == "0.25"
    endpoint = _setting(report, "TELEMETRYFLOW_ENDPOINT")
    assert (endpoint.value, endpoint.source) == (
        "http://collector:4318",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    protocol = _setting(report, "TELEMETRYFLOW_PROTOCOL")
    assert (protocol.value, protocol.source) == ("http", "OTEL_EXPORTER_OTLP_PROTOCOL")


def test_unset_values_are_default_or_derived() -> None:
    """Unset values show the table's default, or what the hook derives, and say which."""
    report = _report(TELEMETRYFLOW_ENDPOINT="http://collector:4318")
    assert _setting(report, "TELEMETRYFLOW_BATCH_MAX_SIZE") == info.Setting(
        "TELEMETRYFLOW_BATCH_MAX_SIZE", "512", "default"
    )
    assert _setting(report, "TELEMETRYFLOW_INSECURE") == info.Setting(
        "TELEMETRYFLOW_INSECURE", "true", "derived"
    )
    assert _setting(report, "TELEMETRYFLOW_EXPORTER") == info.Setting(
        "TELEMETRYFLOW_EXPORTER", "otlp", "derived"
    )
    assert _setting(report, "TELEMETRYFLOW_SERVICE_NAME").source == "derived"
    assert _setting(_report(), "TELEMETRYFLOW_EXPORTER").value == "console"


def test_secrets_are_redacted_in_text_and_json() -> None:
    """The API key secret, header values and URL credentials never reach either form."""
    report = _report(
        TELEMETRYFLOW_API_KEY_ID="tfk_id1",
        TELEMETRYFLOW_API_KEY_SECRET="tfs_verysecret123",
        TELEMETRYFLOW_HEADERS="Authorization=Bearer hushhush99",
        TELEMETRYFLOW_ENDPOINT="https://admin:pa55word@collector:4318/?token=t0ken",
    )
    text, as_json = info.render_text(report), info.render_json(report)
    for output in (text, as_json):
        for secret in ("verysecret", "hushhush99", "pa55word", "t0ken"):
            assert secret not in output
    assert _setting(report, "TELEMETRYFLOW_API_KEY_SECRET").value == "tfs_****"
    assert _setting(report, "TELEMETRYFLOW_HEADERS").value == "Authorization=****"
    assert _setting(report, "TELEMETRYFLOW_API_KEY_ID").value == "tfk_id1"


def test_a_malformed_secret_is_redacted_too() -> None:
    """A secret that fails validation is still not shown, neither as a value nor a problem."""
    report = _report(TELEMETRYFLOW_API_KEY_ID="tfk_id1", TELEMETRYFLOW_API_KEY_SECRET="oops12345")
    assert "oops12345" not in info.render_text(report)
    assert "oops12345" not in info.render_json(report)
    assert any("TELEMETRYFLOW_API_KEY_SECRET" in problem for problem in report.problems)


def test_conflicting_endpoints_are_warned_about() -> None:
    """Both endpoint variables set to different values gives a warning naming both."""
    report = _report(
        TELEMETRYFLOW_ENDPOINT="http://a:4318",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://b:4318",
        TELEMETRYFLOW_PROTOCOL="http",
    )
    assert any(
        "TELEMETRYFLOW_ENDPOINT" in w and "OTEL_EXPORTER_OTLP_ENDPOINT" in w
        for w in report.warnings
    )
    assert _setting(report, "TELEMETRYFLOW_ENDPOINT").value == "http://a:4318"


def test_https_endpoint_with_insecure_is_warned_about() -> None:
    """An https:// endpoint with insecure=true is a contradiction the report points out."""
    report = _report(TELEMETRYFLOW_ENDPOINT="https://collector:4317", TELEMETRYFLOW_INSECURE="true")
    assert any("https://" in w and "TELEMETRYFLOW_INSECURE" in w for w in report.warnings)


def test_port_of_the_other_protocol_is_warned_about() -> None:
    """Port 4318 with the gRPC protocol (the classic silent mistake) is reported."""
    report = _report(TELEMETRYFLOW_ENDPOINT="http://collector:4318")
    assert any("4318" in w and "TELEMETRYFLOW_PROTOCOL=http" in w for w in report.warnings)


def test_invalid_value_is_a_problem_and_marks_its_row() -> None:
    """An invalid value is listed as a problem and its row says the default is in use."""
    report = _report(TELEMETRYFLOW_TIMEOUT="ten")
    assert any(p.startswith("TELEMETRYFLOW_TIMEOUT='ten'") for p in report.problems)
    row = _setting(report, "TELEMETRYFLOW_TIMEOUT")
    assert row.value == "10"
    assert row.source.startswith("default (TELEMETRYFLOW_TIMEOUT")


def test_instrumentation_states() -> None:
    """Installed (with version), not installed, disabled and standard-library states."""
    report = _report(TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="flask")
    states = _states(report)
    assert states["requests"].status == "installed"
    assert states["requests"].version == metadata.version("requests")
    assert states["flask"].status == "disabled"
    assert "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS" in states["flask"].detail
    assert states["nosuchlib"].status == "not installed"
    assert states["sqlite3"].status == "installed"
    assert states["sqlite3"].detail == "standard library"


def test_disabled_by_the_opentelemetry_variable_names_it() -> None:
    """Disabling through OTEL_PYTHON_DISABLED_INSTRUMENTATIONS shows that variable."""
    states = _states(_report(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="requests"))
    assert states["requests"].status == "disabled"
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in states["requests"].detail


def test_preferred_contrib_instrumentor_supersedes_ours() -> None:
    """PREFER_CONTRIB plus an installed contrib entry point marks ours superseded."""
    report = _report(contrib=(_CONTRIB_REQUESTS,), TELEMETRYFLOW_PREFER_CONTRIB="requests")
    state = _states(report)["requests"]
    assert state.status == "superseded"
    assert "opentelemetry-instrumentation-requests" in state.detail


def test_preferring_a_contrib_instrumentor_that_is_missing_warns() -> None:
    """PREFER_CONTRIB without the contrib package keeps ours and says so."""
    report = _report(TELEMETRYFLOW_PREFER_CONTRIB="requests")
    assert _states(report)["requests"].status == "installed"
    assert any("TELEMETRYFLOW_PREFER_CONTRIB" in w and "requests" in w for w in report.warnings)


def test_disabling_an_unknown_name_warns() -> None:
    """A disabled name matching no instrumentation (a typo) is reported."""
    report = _report(TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="reqests")
    assert any("'reqests'" in w for w in report.warnings)


def test_unknown_disabled_name_warning_is_the_hooks() -> None:
    """--info (and so doctor) shows the very line the hook prints, once."""
    from telemetryflow_bootstrap.domain.config import load_config
    from telemetryflow_bootstrap.instrumentation import _disabled_names

    environ = {"TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": "reqests,flask"}
    hook_line = _disabled_names.check(load_config(environ)[1])
    report = collect(environ)
    assert hook_line is not None
    assert [w for w in report.warnings if "reqests" in w] == [hook_line]


def test_disabled_process_level_and_contrib_names_are_known() -> None:
    """logging and runtime_metrics (not in the catalogs) and installed contrib entry point
    names are names that disable something: no warning."""
    report = _report(contrib=(_CONTRIB_REQUESTS,),
                     TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="logging,runtime_metrics,requests")
    assert report.warnings == []


def test_unknown_names_from_the_opentelemetry_variable_are_not_warned_about() -> None:
    """Names read from OTEL_PYTHON_DISABLED_INSTRUMENTATIONS (often meant for
    opentelemetry-instrument's contrib packages) are not reported, as in the hook."""
    report = _report(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="reqests,aws_lambda")
    assert report.warnings == []


def test_version_outside_the_supported_range_is_unsupported() -> None:
    """An installed version outside the entry's range is reported as unsupported."""
    old_only = Instrumentation(
        "requests", ("requests",), "x:patch", distribution="requests", versions="<1"
    )
    state = _states(_report(catalog=(old_only,)))["requests"]
    assert state.status == "unsupported"
    assert "<1" in state.detail


def test_shipped_catalog_is_listed_by_default() -> None:
    """Without an explicit catalog, every entry of the registry appears."""
    report = collect({}, contrib=())
    assert [s.name for s in report.instrumentations] == [e.name for e in registry._catalog()]


def test_contrib_entry_points_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution with an opentelemetry_instrumentor entry point is listed."""
    dist = tmp_path / "fake_contrib-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-contrib\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\nfakelib = fake_contrib:FakeInstrumentor\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    report = collect({}, catalog=())
    assert (
        ContribInstrumentor("fakelib", "fake_contrib:FakeInstrumentor", "fake-contrib", "1.2.3")
        in report.contrib_instrumentors
    )
    assert "fakelib" in info.render_text(report)


def test_export_summary_per_signal() -> None:
    """The export section says where each signal goes, or why it does not."""
    report = _report(
        TELEMETRYFLOW_ENDPOINT="collector:4317",
        TELEMETRYFLOW_ENABLE_LOGS="false",
        OTEL_METRICS_EXPORTER="console",
    )
    assert report.export["traces"] == "otlp/grpc -> collector:4317 (TLS)"
    assert report.export["metrics"].startswith("console")
    assert report.export["logs"].startswith("off (TELEMETRYFLOW_ENABLE_LOGS=false)")


def test_json_form_round_trips() -> None:
    """The JSON form parses and carries the same rows as the report."""
    report = _report(TELEMETRYFLOW_SERVICE_NAME="shop")
    data = json.loads(info.render_json(report))
    assert data["versions"]["telemetryflow-bootstrap"] == report.versions["telemetryflow-bootstrap"]
    assert data["python"] == sys.version.split()[0]
    assert {
        "variable": "TELEMETRYFLOW_SERVICE_NAME",
        "value": "shop",
        "source": "TELEMETRYFLOW_SERVICE_NAME",
    } in data["settings"]
    assert [i["name"] for i in data["instrumentations"]] == [e.name for e in _CATALOG]


def test_text_form_lists_sections() -> None:
    """The text form has the versions, the table, warnings and instrumentations."""
    text = info.render_text(_report(TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="flask"))
    assert text.startswith("telemetryflow-run ")
    for heading in (
        "Configuration (value, source)",
        "Export",
        "Warnings",
        "Instrumentations",
        "OpenTelemetry contrib instrumentors",
    ):
        assert f"\n{heading}" in text
    assert any(line.split()[:2] == ["flask", "disabled"] for line in text.splitlines())


def test_disabled_telemetry_is_stated() -> None:
    """With telemetry off the report says so and where that came from."""
    report = _report(OTEL_SDK_DISABLED="true")
    assert report.enabled is False
    assert _setting(report, "TELEMETRYFLOW_ENABLED") == info.Setting(
        "TELEMETRYFLOW_ENABLED", "false", "OTEL_SDK_DISABLED"
    )
    assert "DISABLED" in info.render_text(report)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("collector:4317", "collector:4317"),
        ("https://user:pw@collector:4318/base", "https://****@collector:4318/base"),
        ("token@collector:4317", "****@collector:4317"),
        ("http://c:4318/v1?api_key=abc&x", "http://c:4318/v1?api_key=****&x"),
    ],
)
def test_safe_url_masks_credentials(url: str, shown: str) -> None:
    """Userinfo and query values are masked; the rest of the URL stays readable."""
    assert safe_url(url) == shown


# ----- per-signal OTLP settings --------------------------------------------------------------

_SPLIT = {
    "TELEMETRYFLOW_ENDPOINT": "collector:4317",
    "TELEMETRYFLOW_HEADERS": "x-all=allvalue1",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer tempotoken2",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://loki:pa55w0rd@loki.example/otlp/v1/logs",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http",
}


def test_per_signal_settings_are_rows_and_their_all_signals_rows_say_so() -> None:
    """Each per-signal variable set is a row (value redacted, for which signal, over what);
    the all-signals row it overrides names the signals it no longer applies to."""
    report = _report(**_SPLIT)
    endpoint = _setting(report, "TELEMETRYFLOW_ENDPOINT")
    assert endpoint.source == "TELEMETRYFLOW_ENDPOINT (not for traces, logs: see below)"
    assert _setting(report, "TELEMETRYFLOW_HEADERS").source == (
        "TELEMETRYFLOW_HEADERS (not for traces: see below)")
    assert _setting(report, "OTEL_EXPORTER_OTLP_TRACES_HEADERS") == info.Setting(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "authorization=****",
        "traces only, over TELEMETRYFLOW_HEADERS")
    assert _setting(report, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").value == (
        "https://****@loki.example/otlp/v1/logs")
    assert "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" not in {s.variable for s in report.settings}


def test_export_section_gives_each_signal_s_destination_and_what_set_it() -> None:
    """The Export section shows where each signal really goes (the per-signal URL as is,
    its own protocol and TLS) and names the per-signal variables that decided it."""
    report = _report(**_SPLIT)
    assert report.export == {
        "traces": "otlp/http -> http://tempo:4318/v1/traces (no TLS; per-signal "
                  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _PROTOCOL, _HEADERS)",
        "metrics": "otlp/grpc -> collector:4317 (TLS)",
        "logs": "otlp/http -> https://loki.example/otlp/v1/logs (TLS; per-signal "
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, _PROTOCOL)",
    }
    assert any("override TELEMETRYFLOW_ENDPOINT for traces, logs" in w for w in report.warnings)


def test_per_signal_secrets_never_reach_text_or_json() -> None:
    """Per-signal header values and endpoint passwords are masked in both forms."""
    report = _report(**_SPLIT)
    for output in (info.render_text(report), info.render_json(report)):
        for secret in ("allvalue1", "tempotoken2", "pa55w0rd"):
            assert secret not in output


def test_only_a_per_signal_endpoint_says_the_others_go_to_the_console() -> None:
    """A traces endpoint alone: traces over OTLP, metrics and logs on the console, and the
    report says why (no endpoint for them); the exporter row says per signal."""
    report = _report(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="tempo:4317")
    assert report.export["traces"].startswith("otlp/grpc -> tempo:4317 (TLS; per-signal")
    assert report.export["metrics"] == "console (stderr, text): no endpoint for metrics"
    assert report.export["logs"] == "console (stderr, text): no endpoint for logs"
    assert _setting(report, "TELEMETRYFLOW_EXPORTER").value == (
        "traces: otlp, metrics: console, logs: console")


def test_per_signal_http_url_without_a_path_is_warned_about() -> None:
    """A per-signal OTLP/HTTP endpoint is used as is: without a path nothing would reach
    the collector's /v1/<signal>, and the report says so; with the path, nothing is said."""
    report = _report(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://loki:4318",
                     OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http")
    [warning] = report.warnings
    assert warning.startswith("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT has no path")
    good = _report(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://loki:4318/v1/logs",
                   OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http")
    assert good.warnings == []


def test_port_of_the_other_protocol_is_warned_about_per_signal() -> None:
    """Port 4318 given to one signal that uses gRPC names that signal's variables."""
    report = _report(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://tempo:4318")
    assert report.warnings == [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT uses port 4318, the usual OTLP/http port, but the "
        "protocol is grpc (the default); set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http or use "
        "the collector's grpc port"
    ]


def test_invalid_per_signal_value_is_a_problem_and_a_row() -> None:
    """A malformed per-signal value is a problem naming it and a row pointing to it."""
    report = _report(OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="5s")
    assert any(p.startswith("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT='5s'") for p in report.problems)
    assert _setting(report, "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT").source == (
        "metrics only (invalid: see Warnings)")
