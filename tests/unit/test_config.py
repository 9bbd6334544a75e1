"""``TelemetryConfig``: validation, immutability, derived views, and ``load_config`` rules."""

from __future__ import annotations

import dataclasses
import inspect
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
        ("http://collector", Protocol.HTTP, None, "http://collector:4318"),
        ("http://collector:4318", Protocol.HTTP, None, "http://collector:4318"),
        ("https://collector:443/otlp/", Protocol.HTTP, None, "https://collector:443/otlp"),
        ("grpcs://collector", Protocol.GRPC, None, "https://collector:4317"),
        ("grpc://collector", Protocol.GRPC, None, "http://collector:4317"),
        ("[::1]:4317", Protocol.GRPC, None, "https://[::1]:4317"),
        ("[::1]", Protocol.HTTP, True, "http://[::1]:4318"),
        ("http://[::1]", Protocol.GRPC, None, "http://[::1]:4317"),
        (None, Protocol.GRPC, True, "http://localhost:4317"),
        # credentials in the URL are not a port (was: no default port appended), nor part
        # of what the exporters connect to: they go as a header (see get_auth_headers)
        ("https://user:pw@collector", Protocol.HTTP, None, "https://collector:4318"),
        ("https://user:pw@collector:9000", Protocol.HTTP, None, "https://collector:9000"),
        ("http://user@[::1]", Protocol.GRPC, None, "http://[::1]:4317"),
    ],
    ids=repr,
)
def test_resolved_endpoint(
    endpoint: str | None, protocol: Protocol, insecure: bool | None, resolved: str
) -> None:
    """The resolved endpoint has exactly one scheme and a port (4317 gRPC, 4318 HTTP)."""
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
