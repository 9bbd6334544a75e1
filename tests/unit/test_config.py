"""``TelemetryConfig``: validation, immutability, derived views, and ``load_config`` rules."""

from __future__ import annotations

import base64
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from telemetryflow_bootstrap.domain import errors
from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.domain.credentials import Credentials
from telemetryflow_bootstrap.domain.errors import (
    ConfigError,
    CredentialsError,
    Problem,
    TelemetryFlowError,
)
from telemetryflow_bootstrap.domain.signals import ExporterKind, Protocol, SignalType

_SECRET = "tfs_very-secret-9f8e7d"
_HEADER_VALUE = "Bearer header-secret-1a2b3c"
_ALL_SIGNALS = (SignalType.TRACES, SignalType.METRICS, SignalType.LOGS)


def test_config_is_immutable() -> None:
    """Assigning to a field raises: a running SDK never sees its configuration move."""
    config = TelemetryConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.endpoint = "elsewhere:4317"  # type: ignore[misc]


def test_with_grpc_and_with_http_return_new_configs() -> None:
    """The protocol switches produce copies and leave the original untouched."""
    grpc = TelemetryConfig(service_name="shop")
    http = grpc.with_http()
    assert http is not grpc
    assert (grpc.protocol, http.protocol) == (Protocol.GRPC, Protocol.HTTP)
    assert http.with_grpc().protocol is Protocol.GRPC
    assert http.service_name == "shop"


def test_with_signals_changes_only_the_signals_given() -> None:
    """with_signals copies the config, changing just the signals passed."""
    config = TelemetryConfig()
    changed = config.with_signals(metrics=False)
    assert (changed.enable_traces, changed.enable_metrics, changed.enable_logs) == (
        True,
        False,
        True,
    )
    assert config.enable_metrics is True


def test_protocol_and_exporter_strings_become_enums() -> None:
    """Plain strings for protocol and exporters are accepted and normalised to the enums."""
    as_strings: dict[str, Any] = {
        "protocol": "HTTP",
        "exporter": "Console",
        "logs_exporter": "none",
    }
    config = TelemetryConfig(**as_strings)
    assert config.protocol is Protocol.HTTP
    assert config.exporter is ExporterKind.CONSOLE
    assert config.logs_exporter is ExporterKind.NONE


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("protocol", "carrier-pigeon"),
        ("exporter", "jaeger"),
        ("traces_exporter", "zipkin"),
        ("endpoint", "a b"),
        ("endpoint", "host:99999"),
        ("service_name", ""),
        ("service_name", "   "),
        ("compression", "brotli"),
        ("timeout", 0),
        ("timeout", -1.5),
        ("timeout", True),
        ("timeout", "10"),
        ("shutdown_timeout", -1),
        ("batch_max_size", 0),
        ("max_queue_size", 1.5),
        ("metric_export_interval_ms", 0),
        ("batch_timeout_ms", -1),
        ("batch_timeout_ms", True),
        ("sample_rate", 1.5),
        ("sample_rate", -0.1),
        ("sample_rate", True),
    ],
    ids=repr,
)
def test_constructor_rejects_invalid_field_naming_it(field: str, value: Any) -> None:
    """An invalid field raises ConfigError with one problem naming that field."""
    with pytest.raises(ConfigError) as caught:
        TelemetryConfig(**{field: value})
    assert [p.source for p in caught.value.problems] == [field]
    assert str(caught.value).startswith(f"{field}=")


def test_constructor_reports_every_invalid_field_at_once() -> None:
    """Several invalid fields give one ConfigError listing each of them."""
    with pytest.raises(ConfigError) as caught:
        TelemetryConfig(endpoint="a b", timeout=-1, sample_rate=2.0, compression="lz4")
    assert {p.source for p in caught.value.problems} == {
        "endpoint",
        "timeout",
        "sample_rate",
        "compression",
    }


def test_get_auth_headers_merges_credentials_and_extra_headers() -> None:
    """Export headers are the configured extras plus the credential headers."""
    config = TelemetryConfig(
        credentials=Credentials("tfk_id", _SECRET, "col-7"), headers=(("x-team", "shop"),)
    )
    assert config.get_auth_headers() == {
        "x-team": "shop",
        "Authorization": f"Bearer tfk_id:{_SECRET}",
        "X-TelemetryFlow-Key-ID": "tfk_id",
        "X-TelemetryFlow-Key-Secret": _SECRET,
        "X-TelemetryFlow-Collector-ID": "col-7",
    }


def test_get_auth_headers_without_credentials_is_just_the_extras() -> None:
    """A plain OpenTelemetry Collector setup sends only the configured headers."""
    assert TelemetryConfig().get_auth_headers() == {}
    assert TelemetryConfig(headers=(("a", "b"),)).get_auth_headers() == {"a": "b"}


# ----- where each signal goes -------------------------------------------------------------


def test_no_endpoint_means_console() -> None:
    """Without an endpoint every signal goes to the console."""
    config = TelemetryConfig()
    assert {config.exporter_for(s) for s in _ALL_SIGNALS} == {ExporterKind.CONSOLE}
    assert config.enabled_signals == _ALL_SIGNALS


def test_endpoint_means_otlp() -> None:
    """With an endpoint every signal is exported over OTLP."""
    config = TelemetryConfig(endpoint="collector:4317")
    assert {config.exporter_for(s) for s in _ALL_SIGNALS} == {ExporterKind.OTLP}


def test_telemetryflow_exporter_wins_over_endpoint_and_per_signal_choice() -> None:
    """TELEMETRYFLOW_EXPORTER decides for every signal, whatever OTEL_*_EXPORTER says."""
    config, _ = load_config(
        {
            "TELEMETRYFLOW_EXPORTER": "console",
            "TELEMETRYFLOW_ENDPOINT": "collector:4317",
            "OTEL_TRACES_EXPORTER": "otlp",
        }
    )
    assert {config.exporter_for(s) for s in _ALL_SIGNALS} == {ExporterKind.CONSOLE}


def test_per_signal_none_still_disables_under_a_global_exporter() -> None:
    """OTEL_<SIGNAL>_EXPORTER=none turns that signal off even with TELEMETRYFLOW_EXPORTER set."""
    config = TelemetryConfig(exporter=ExporterKind.OTLP, traces_exporter=ExporterKind.NONE)
    assert config.exporter_for(SignalType.TRACES) is ExporterKind.NONE
    assert config.enabled_signals == (SignalType.METRICS, SignalType.LOGS)


def test_per_signal_exporter_applies_without_a_global_one() -> None:
    """A per-signal exporter choice wins over the endpoint-based default."""
    config = TelemetryConfig(endpoint="collector:4317", metrics_exporter=ExporterKind.CONSOLE)
    assert config.exporter_for(SignalType.METRICS) is ExporterKind.CONSOLE
    assert config.exporter_for(SignalType.TRACES) is ExporterKind.OTLP


def test_exporter_none_disables_everything() -> None:
    """TELEMETRYFLOW_EXPORTER=none leaves no signal enabled."""
    config, _ = load_config({"TELEMETRYFLOW_EXPORTER": "none"})
    assert config.enabled_signals == ()


def test_disabled_signal_is_not_enabled_whatever_the_exporter() -> None:
    """enable_metrics=False turns metrics off even though an exporter is configured."""
    config = TelemetryConfig(exporter=ExporterKind.OTLP, enable_metrics=False)
    assert not config.signal_enabled(SignalType.METRICS)
    assert config.signal_enabled(SignalType.TRACES)


# ----- TLS and endpoints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "insecure", "tls"),
    [
        ("collector:4317", None, True),
        ("https://collector", None, True),
        ("grpcs://collector:4317", None, True),
        ("http://collector:4318", None, False),
        ("HTTP://collector:4318", None, False),
        ("grpc://collector:4317", None, False),
        ("collector:4317", True, False),
        ("https://collector", True, True),
        ("http://collector", False, True),
    ],
    ids=repr,
)
def test_uses_tls(endpoint: str, insecure: bool | None, tls: bool) -> None:
    """TLS is used unless insecure=true or the endpoint's scheme is plain http:// or grpc://;
    an explicit https:// is never downgraded."""
    assert TelemetryConfig(endpoint=endpoint, insecure=insecure).uses_tls is tls


@pytest.mark.parametrize(
    ("endpoint", "protocol", "insecure", "resolved"),
    [
        ("collector", Protocol.GRPC, None, "https://collector:4317"),
        ("collector", Protocol.HTTP, None, "https://collector:4318"),
        ("collector:9999", Protocol.GRPC, None, "https://collector:9999"),
        ("collector:4317", Protocol.GRPC, True, "http://collector:4317"),
        ("http://collector", Protocol.HTTP, None, "http://collector:80"),
        ("https://collector", Protocol.HTTP, None, "https://collector:443"),
        ("https://collector/otlp", Protocol.GRPC, None, "https://collector:443/otlp"),
        ("HTTPS://collector", Protocol.GRPC, None, "https://collector:443"),
        ("collector", Protocol.HTTP, False, "https://collector:4318"),
        ("http://collector:4318", Protocol.HTTP, None, "http://collector:4318"),
        ("https://collector:443/otlp/", Protocol.HTTP, None, "https://collector:443/otlp"),
        ("grpcs://collector", Protocol.GRPC, None, "https://collector:4317"),
        ("grpc://collector", Protocol.GRPC, None, "http://collector:4317"),
        ("[::1]:4317", Protocol.GRPC, None, "https://[::1]:4317"),
        ("[::1]", Protocol.HTTP, True, "http://[::1]:4318"),
        ("http://[::1]", Protocol.GRPC, None, "http://[::1]:80"),
        ("grpcs://[::1]", Protocol.HTTP, None, "https://[::1]:4318"),
        (None, Protocol.GRPC, True, "http://localhost:4317"),
        # credentials in the URL are not a port (was: no default port appended), nor part
        # of what the exporters connect to: they go as a header (see get_auth_headers)
        ("https://user:pw@collector", Protocol.HTTP, None, "https://collector:443"),
        ("https://user:pw@collector:9000", Protocol.HTTP, None, "https://collector:9000"),
        ("http://user@[::1]", Protocol.GRPC, None, "http://[::1]:80"),
        ("grpc://user@[::1]", Protocol.GRPC, None, "http://[::1]:4317"),
    ],
    ids=repr,
)
def test_resolved_endpoint(
    endpoint: str | None, protocol: Protocol, insecure: bool | None, resolved: str
) -> None:
    """The resolved endpoint has exactly one scheme and a port: the one given, else OTLP's
    (4317 gRPC, 4318 HTTP) for a bare host or a grpc:// scheme, and the URL scheme's own
    (443, 80) for an https:// or http:// URL, as OpenTelemetry's SDKs read it (a hosted
    backend configured as https://api.example.com listens on 443, not 4317)."""
    config = TelemetryConfig(endpoint=endpoint, protocol=protocol, insecure=insecure)
    assert config.resolved_endpoint() == resolved


# ----- load_config ------------------------------------------------------------------------


def test_empty_environment_gives_the_defaults() -> None:
    """Nothing set means the default config and no problems or warnings."""
    config, reading = load_config({})
    assert config == TelemetryConfig()
    assert (reading.problems, reading.warnings) == ([], [])


def test_default_service_name_is_used_when_none_is_configured() -> None:
    """A launcher-derived name is used when no variable names the service."""
    config, reading = load_config({}, default_service_name="myscript")
    assert config.service_name == "myscript"
    assert reading.sources["service_name"] == "derived"


def test_service_name_from_resource_attributes() -> None:
    """service.name in OTEL_RESOURCE_ATTRIBUTES names the service when no name variable is set."""
    config, reading = load_config({"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing,team=a"})
    assert config.service_name == "billing"
    assert reading.sources["service_name"] == "OTEL_RESOURCE_ATTRIBUTES"


def test_service_name_variable_wins_over_resource_attribute() -> None:
    """OTEL_SERVICE_NAME wins over service.name in the resource attributes."""
    config, _ = load_config(
        {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing", "OTEL_SERVICE_NAME": "payments"}
    )
    assert config.service_name == "payments"


def test_https_endpoint_with_insecure_warns() -> None:
    """An https:// endpoint with insecure=true warns that the flag is ignored, naming the
    variable that set insecure, and TLS stays on (the same for gRPC and HTTP)."""
    config, reading = load_config(
        {"TELEMETRYFLOW_ENDPOINT": "https://collector:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"}
    )
    assert config.uses_tls is True
    assert any("OTEL_EXPORTER_OTLP_INSECURE" in w and "https" in w for w in reading.warnings)


def test_otlp_exporter_without_endpoint_warns() -> None:
    """TELEMETRYFLOW_EXPORTER=otlp without an endpoint warns that localhost is used."""
    _, reading = load_config({"TELEMETRYFLOW_EXPORTER": "otlp"})
    assert any("localhost" in w for w in reading.warnings)


def test_from_environment_strict_raises_one_error_with_every_problem() -> None:
    """Strict loading raises a single ConfigError carrying every problem found."""
    environ = {"TELEMETRYFLOW_ENABLED": "maybe", "TELEMETRYFLOW_TIMEOUT": "30s"}
    with pytest.raises(ConfigError) as caught:
        TelemetryConfig.from_environment(environ)
    assert {p.source for p in caught.value.problems} == set(environ)


def test_from_environment_lenient_returns_defaults_for_bad_values() -> None:
    """Non-strict loading returns a config using defaults where values were malformed."""
    config = TelemetryConfig.from_environment({"TELEMETRYFLOW_TIMEOUT": "30s"}, strict=False)
    assert config.timeout == TelemetryConfig().timeout


def test_repr_and_str_never_show_secret_or_header_values() -> None:
    """A config (with credentials and headers) can be logged without leaking secrets."""
    config, _ = load_config(
        {
            "TELEMETRYFLOW_API_KEY_ID": "tfk_id",
            "TELEMETRYFLOW_API_KEY_SECRET": _SECRET,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={_HEADER_VALUE}",
        }
    )
    assert config.credentials is not None
    assert config.headers == (("authorization", _HEADER_VALUE),)
    for text in (repr(config), str(config)):
        assert _SECRET not in text
        assert "very-secret" not in text
        assert "header-secret" not in text
        assert "tfk_id" in text


# ----- errors -----------------------------------------------------------------------------

_ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
]


@pytest.mark.parametrize("cls", _ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_a_telemetryflow_error(cls: type[BaseException]) -> None:
    """Every exception class the package defines can be caught as TelemetryFlowError."""
    assert issubclass(cls, TelemetryFlowError)


def test_credentials_error_is_a_config_error() -> None:
    """Bad credentials are a kind of bad configuration."""
    assert issubclass(CredentialsError, ConfigError)
    assert len(_ERROR_CLASSES) >= 5


def test_config_error_message_joins_every_problem() -> None:
    """ConfigError's message lists each problem; a plain string message has no problems."""
    error = ConfigError([Problem("A", "'1'", "expected x"), Problem("B", "'2'", "expected y")])
    assert str(error) == "A='1': expected x; B='2': expected y"
    assert ConfigError("just text").problems == ()


def test_a_problem_is_an_immutable_value() -> None:
    """``Problem`` (a plain class, so the launcher need not import ``dataclasses``) keeps the
    value semantics it had as a frozen dataclass."""
    problem = Problem("TELEMETRYFLOW_TIMEOUT", "'soon'", "expected seconds")
    same = Problem("TELEMETRYFLOW_TIMEOUT", "'soon'", "expected seconds")
    assert problem == same and hash(problem) == hash(same) and len({problem, same}) == 1
    assert problem != Problem("TELEMETRYFLOW_TIMEOUT", "'later'", "expected seconds")
    assert problem != ("TELEMETRYFLOW_TIMEOUT", "'soon'", "expected seconds")
    assert str(problem) == "TELEMETRYFLOW_TIMEOUT='soon': expected seconds"
    assert repr(problem) == ("Problem(source='TELEMETRYFLOW_TIMEOUT', shown_value=\"'soon'\", "
                             "expected='expected seconds')")
    with pytest.raises(AttributeError):
        problem.source = "X"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del problem.expected
    with pytest.raises(AttributeError):
        problem.extra = 1  # type: ignore[attr-defined]


def test_endpoint_userinfo_becomes_basic_authorization() -> None:
    """``user:password@`` in the endpoint (percent-decoded) is sent as HTTP Basic
    authorization for both transports, never as part of the target."""
    config = TelemetryConfig(endpoint="http://us%40er:p%3Aw@collector:4317")
    assert config.resolved_endpoint() == "http://collector:4317"
    assert config.get_auth_headers() == {"Authorization": "Basic dXNAZXI6cDp3"}


def test_auth_headers_later_sources_win_case_insensitively() -> None:
    """Configured headers replace the endpoint's Basic authorization and the API key's replace
    both, whatever the case of the names: one authorization header is ever sent."""
    config = TelemetryConfig(
        endpoint="http://user:pw@collector:4317", headers=(("AUTHORIZATION", "Bearer h"),)
    )
    assert config.get_auth_headers() == {"AUTHORIZATION": "Bearer h"}
    with_key = config.replace(credentials=Credentials("tfk_id", _SECRET))
    headers = with_key.get_auth_headers()
    assert [name for name in headers if name.lower() == "authorization"] == ["Authorization"]
    assert headers["Authorization"] == f"Bearer tfk_id:{_SECRET}"


# ----- per-signal OTLP settings (OTEL_EXPORTER_OTLP_<SIGNAL>_*) --------------------------------

_CA_DIR = Path(__file__).with_name("data")
# setting -> (per-signal raw, TELEMETRYFLOW_* raw, OTEL_EXPORTER_OTLP_* raw) and what each
# becomes; the last is the default. Certificates are given as file names (see the test).
_LEVELS: dict[str, tuple[tuple[str, str, str], tuple[Any, Any, Any, Any]]] = {
    "endpoint": (("http://tempo:4318/v1/traces", "ours:4317", "http://otel:4317"),
                 ("http://tempo:4318/v1/traces", "ours:4317", "http://otel:4317", None)),
    "protocol": (("http", "grpc", "http/protobuf"),
                 (Protocol.HTTP, Protocol.GRPC, Protocol.HTTP, Protocol.GRPC)),
    "insecure": (("true", "false", "true"), (True, False, True, None)),
    "certificate_file": (("own.pem", "ours.pem", "otel.pem"),
                         ("own.pem", "ours.pem", "otel.pem", None)),
    "headers": (("a=1", "b=2", "c=3"), ((("a", "1"),), (("b", "2"),), (("c", "3"),), ())),
    "compression": (("none", "gzip", "none"), ("none", "gzip", "none", "gzip")),
    "timeout": (("1500", "7", "2500"), (1.5, 7.0, 2.5, 10.0)),
}
_SUFFIX = {"endpoint": "ENDPOINT", "protocol": "PROTOCOL", "insecure": "INSECURE",
           "certificate_file": "CERTIFICATE", "headers": "HEADERS",
           "compression": "COMPRESSION", "timeout": "TIMEOUT"}


@pytest.mark.parametrize("setting", list(_LEVELS))
def test_per_signal_precedence_for_every_setting(setting: str, tmp_path: Path) -> None:
    """For each setting, per signal: its own OTEL_EXPORTER_OTLP_<SIGNAL>_<X> > TELEMETRYFLOW_<X>
    > OTEL_EXPORTER_OTLP_<X> > default; a signal without its own variable keeps the
    all-signals value."""
    (raw_own, raw_ours, raw_otel), (own, ours, otel, default) = _LEVELS[setting]
    if setting == "certificate_file":  # three real PEM files, named as in the table
        pem = (_CA_DIR / "ca.pem").read_bytes()
        for name in (raw_own, raw_ours, raw_otel):
            (tmp_path / name).write_bytes(pem)
        raw_own, raw_ours, raw_otel = (str(tmp_path / n) for n in (raw_own, raw_ours, raw_otel))
        own, ours, otel = raw_own, raw_ours, raw_otel
    suffix = _SUFFIX[setting]
    environ = {
        f"OTEL_EXPORTER_OTLP_TRACES_{suffix}": raw_own,
        f"TELEMETRYFLOW_{suffix}": raw_ours,
        f"OTEL_EXPORTER_OTLP_{suffix}": raw_otel,
    }

    def seen(env: dict[str, str], signal: SignalType) -> Any:
        config, reading = load_config(env)
        assert reading.problems == []
        return getattr(config.for_signal(signal), setting)

    assert seen(environ, SignalType.TRACES) == own
    assert seen(environ, SignalType.METRICS) == ours
    del environ[f"TELEMETRYFLOW_{suffix}"]
    assert (seen(environ, SignalType.TRACES), seen(environ, SignalType.LOGS)) == (own, otel)
    del environ[f"OTEL_EXPORTER_OTLP_{suffix}"]
    assert (seen(environ, SignalType.TRACES), seen(environ, SignalType.LOGS)) == (own, default)


def test_per_signal_headers_replace_the_all_signals_ones_and_the_api_key_stays() -> None:
    """A signal's own headers replace (not merge with) TELEMETRYFLOW_HEADERS for it; the API
    key's headers go with every signal; the other signals keep the all-signals headers."""
    config, _ = load_config({
        "TELEMETRYFLOW_HEADERS": "x-tenant=all,x-common=1",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "X-Scope-OrgID=loki",
        "TELEMETRYFLOW_API_KEY_ID": "tfk_id",
        "TELEMETRYFLOW_API_KEY_SECRET": _SECRET,
    })
    logs = config.for_signal(SignalType.LOGS).get_auth_headers()
    traces = config.for_signal(SignalType.TRACES).get_auth_headers()
    key = {"Authorization": f"Bearer tfk_id:{_SECRET}", "X-TelemetryFlow-Key-ID": "tfk_id",
           "X-TelemetryFlow-Key-Secret": _SECRET}
    assert logs == {"X-Scope-OrgID": "loki", **key}
    assert traces == {"x-tenant": "all", "x-common": "1", **key}


def test_per_signal_endpoint_password_is_basic_auth_for_that_signal_only() -> None:
    """``user:pw@`` in a per-signal endpoint is Basic authorization for that signal; the
    all-signals endpoint's password is not sent to a signal with its own endpoint."""
    config, _ = load_config({
        "TELEMETRYFLOW_ENDPOINT": "http://all:pw1@collector:4317",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:pw2@tempo:4317",
    })
    basic = "Basic " + base64.b64encode(b"tempo:pw2").decode()
    assert config.for_signal(SignalType.TRACES).get_auth_headers() == {"Authorization": basic}
    metrics = config.for_signal(SignalType.METRICS).get_auth_headers()["Authorization"]
    assert metrics == "Basic " + base64.b64encode(b"all:pw1").decode()
    assert config.export_target(SignalType.TRACES) == "tempo:4317"


def test_per_signal_endpoint_alone_turns_otlp_on_for_that_signal() -> None:
    """Only OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set: traces go over OTLP, metrics and logs to
    the console as with no endpoint at all."""
    config, reading = load_config({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "tempo:4317"})
    assert reading.problems == [] and reading.warnings == []
    assert config.exporter_for(SignalType.TRACES) is ExporterKind.OTLP
    assert config.exporter_for(SignalType.METRICS) is ExporterKind.CONSOLE
    assert config.exporter_for(SignalType.LOGS) is ExporterKind.CONSOLE
    assert config.endpoint is None


_HTTP = {"TELEMETRYFLOW_PROTOCOL": "http"}


@pytest.mark.parametrize(("environ", "signal", "expected"), [
    # OTLP/HTTP: a per-signal endpoint is used as is (no path appended, no port added) ...
    ({**_HTTP, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"},
     SignalType.TRACES, "http://tempo:4318/v1/traces"),
    ({**_HTTP, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://loki.example/otlp/v1/logs"},
     SignalType.LOGS, "https://loki.example/otlp/v1/logs"),
    ({**_HTTP, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://prom:9090/api/v1/otlp/v1/metrics"},
     SignalType.METRICS, "http://prom:9090/api/v1/otlp/v1/metrics"),
    ({**_HTTP, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://u:p@loki:3100/otlp"},
     SignalType.LOGS, "http://loki:3100/otlp"),
    # ... while the all-signals endpoint gets the signal path, as before
    ({**_HTTP, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
      "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:3100/otlp/v1/logs"},
     SignalType.METRICS, "http://c:4318/v1/metrics"),
    # gRPC: host:port, as for the all-signals endpoint (an https:// URL: port 443)
    ({**_HTTP, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, SignalType.TRACES, "tempo:443"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:14317/ignored"},
     SignalType.TRACES, "tempo:14317"),
], ids=repr)
def test_export_target_of_a_per_signal_endpoint(
    environ: dict[str, str], signal: SignalType, expected: str
) -> None:
    """What each exporter is given, with the OTLP/HTTP per-signal endpoint used as is."""
    config, reading = load_config(environ)
    assert reading.problems == []
    assert config.export_target(signal) == expected


def test_per_signal_tls_follows_its_own_endpoint_and_insecure_setting() -> None:
    """TLS is decided per signal: its endpoint's scheme, else its own or the all-signals
    insecure setting."""
    config, _ = load_config({
        "TELEMETRYFLOW_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:4317",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "prom:4317",
        "OTEL_EXPORTER_OTLP_METRICS_INSECURE": "true",
    })
    assert config.for_signal(SignalType.TRACES).uses_tls is True
    assert config.for_signal(SignalType.LOGS).uses_tls is False
    assert config.for_signal(SignalType.METRICS).uses_tls is False


def test_grpc_header_names_are_checked_per_signal() -> None:
    """A header name gRPC refuses is a problem of the variable that set it, for the signals
    that send it over gRPC only: the others keep their headers."""
    config, reading = load_config({
        "TELEMETRYFLOW_PROTOCOL": "http",
        "TELEMETRYFLOW_HEADERS": "x!y=1",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "a!b=2,ok=3",
    })
    assert [(p.source, p.shown_value) for p in reading.problems] == [
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a!b=****,ok=****"),
        ("TELEMETRYFLOW_HEADERS", "x!y=****"),
    ]
    assert config.for_signal(SignalType.TRACES).headers == ()
    assert config.for_signal(SignalType.LOGS).headers == ()
    assert config.for_signal(SignalType.METRICS).headers == (("x!y", "1"),)  # (HTTP)


def test_strict_from_environment_names_the_per_signal_variable() -> None:
    """Strict construction refuses a bad per-signal value, naming it, as for any variable."""
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_METRICS_PROTOCOL='udp'"):
        TelemetryConfig.from_environment({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "udp"})


@pytest.mark.parametrize(("environ", "expected"), [
    # our variable (what --endpoint sets) overridden for one signal: said once
    ({"TELEMETRYFLOW_ENDPOINT": "collector:4317",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "tempo:4317"},
     ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT overrides TELEMETRYFLOW_ENDPOINT for traces"]),
    ({"TELEMETRYFLOW_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "b=2",
      "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "c=3"},
     ["OTEL_EXPORTER_OTLP_METRICS_HEADERS, OTEL_EXPORTER_OTLP_LOGS_HEADERS override "
      "TELEMETRYFLOW_HEADERS for metrics, logs"]),
    ({"TELEMETRYFLOW_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http"},
     ["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL overrides TELEMETRYFLOW_PROTOCOL for logs"]),
    # the same destination (a full /v1/traces URL of the same base): nothing to say
    ({"TELEMETRYFLOW_ENDPOINT": "http://c:4318", "TELEMETRYFLOW_PROTOCOL": "http",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, []),
    ({"TELEMETRYFLOW_TIMEOUT": "2", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2000"}, []),
    # the all-signals value from OTEL_EXPORTER_OTLP_*: OpenTelemetry's own rule, no warning
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "tempo:4317"}, []),
], ids=repr)
def test_per_signal_override_of_our_variable_is_said_once(
    environ: dict[str, str], expected: list[str]
) -> None:
    """A TELEMETRYFLOW_* value a per-signal variable overrides, with a different result, is
    one warning naming both and the signals; nothing when the result is the same or when
    the all-signals value came from OTEL_EXPORTER_OTLP_*."""
    _, reading = load_config(environ)
    assert reading.problems == []
    assert [w.split(":")[0] for w in reading.warnings] == expected


def test_https_per_signal_endpoint_with_insecure_warns_naming_it() -> None:
    """insecure=true with a per-signal https:// endpoint is said to be ignored, naming the
    variables, once."""
    _, reading = load_config({
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://tempo:4317",
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
    })
    assert reading.warnings == [
        "OTEL_EXPORTER_OTLP_TRACES_INSECURE=true is ignored: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
        "says https://, so exports use TLS"
    ]


def test_otlp_exporter_without_an_endpoint_for_some_signals_warns() -> None:
    """TELEMETRYFLOW_EXPORTER=otlp with an endpoint for traces only: the others go to
    localhost, and the warning says which."""
    _, reading = load_config({
        "TELEMETRYFLOW_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "tempo:4317",
    })
    assert reading.warnings == [
        "TELEMETRYFLOW_EXPORTER=otlp but no endpoint is set for metrics, logs; sending to "
        "localhost"
    ]


def test_secret_values_cover_every_signal() -> None:
    """Every header value and endpoint password any signal sends is a secret to mask."""
    config, _ = load_config({
        "TELEMETRYFLOW_ENDPOINT": "http://u:allpass1@c:4317",
        "TELEMETRYFLOW_HEADERS": "x-a=allheader1",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-b=logsheader2",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://u:tracespass3@t:4317",
        "TELEMETRYFLOW_API_KEY_ID": "tfk_id",
        "TELEMETRYFLOW_API_KEY_SECRET": _SECRET,
    })
    secrets = config.secret_values()
    for value in ("allpass1", "allheader1", "logsheader2", "tracespass3", _SECRET):
        assert value in secrets


def test_per_signal_settings_given_in_code_are_validated() -> None:
    """SignalOverrides given directly are checked like the config's own fields: a protocol
    name becomes the enum, a bad value is a ConfigError naming the field."""
    from telemetryflow_bootstrap.domain.per_signal import SignalOverrides

    config = TelemetryConfig(traces_otlp=SignalOverrides(endpoint="tempo:4317", protocol="HTTP"))
    assert config.for_signal(SignalType.TRACES).protocol is Protocol.HTTP
    with pytest.raises(ConfigError) as raised:
        TelemetryConfig(logs_otlp=SignalOverrides(endpoint="not a url", protocol="udp",
                                                  compression="zstd", timeout=0))
    assert {p.source for p in raised.value.problems} == {
        "logs_otlp.endpoint", "logs_otlp.protocol", "logs_otlp.compression",
        "logs_otlp.timeout"}


def test_builder_explicit_settings_win_over_per_signal_variables() -> None:
    """``with_auto_configuration()`` reads the per-signal variables, and an explicit
    ``with_endpoint()``/``with_http()`` still wins for every signal (as over the others)."""
    from telemetryflow_bootstrap.builder import TelemetryFlowBuilder

    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces",
               "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
               "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1500"}
    auto = TelemetryFlowBuilder().with_service("s").with_auto_configuration(environ)
    assert auto.build_config().export_target(SignalType.TRACES) == "tempo:4318"
    config = auto.with_endpoint("http://mine:4318").with_http().build_config()
    traces = config.for_signal(SignalType.TRACES)
    assert config.export_target(SignalType.TRACES) == "http://mine:4318/v1/traces"
    assert (traces.protocol, traces.timeout) == (Protocol.HTTP, 1.5)
