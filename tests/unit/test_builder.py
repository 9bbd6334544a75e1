"""``TelemetryFlowBuilder``: fluent construction, environment precedence, one error for all."""

from __future__ import annotations

import pytest

from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.domain.credentials import Credentials
from telemetryflow_bootstrap.domain.errors import BuilderError
from telemetryflow_bootstrap.domain.signals import ExporterKind, Protocol

_SECRET = "tfs_builder-secret-77"

_ENVIRON = {
    "TELEMETRYFLOW_SERVICE_NAME": "from-env",
    "TELEMETRYFLOW_ENDPOINT": "env-collector:4317",
    "TELEMETRYFLOW_PROTOCOL": "http",
    "TELEMETRYFLOW_TIMEOUT": "3",
    "TELEMETRYFLOW_SAMPLE_RATE": "0.5",
    "OTEL_RESOURCE_ATTRIBUTES": "team=env",
    "TELEMETRYFLOW_ENABLE_LOGS": "false",
}


def test_fluent_chain_sets_every_field() -> None:
    """Each with_* call lands in the built client's config."""
    client = (
        TelemetryFlowBuilder()
        .with_api_key("tfk_id", _SECRET)
        .with_collector_id("col-1")
        .with_endpoint("collector:4318")
        .with_service("shop", "2.0.1", "retail")
        .with_environment("staging")
        .with_http()
        .with_insecure()
        .with_signals(metrics=False, logs=True, traces=True)
        .with_compression(False)
        .with_timeout(4.5)
        .with_batch_settings(timeout_ms=250, max_size=64, max_queue_size=256)
        .with_exporter("console")
        .with_sample_rate(0.2)
        .with_custom_attribute("team", "checkout")
        .build()
    )
    assert isinstance(client, TelemetryFlowClient)
    assert not client.is_initialized
    config = client.config
    assert config.credentials == Credentials("tfk_id", _SECRET, "col-1")
    assert config.endpoint == "collector:4318"
    assert (config.service_name, config.service_version, config.service_namespace) == (
        "shop",
        "2.0.1",
        "retail",
    )
    assert config.environment == "staging"
    assert config.protocol is Protocol.HTTP
    assert config.insecure is True
    assert (config.enable_traces, config.enable_metrics, config.enable_logs) == (True, False, True)
    assert config.compression == "none"
    assert config.timeout == 4.5
    assert (config.batch_timeout_ms, config.batch_max_size, config.max_queue_size) == (250, 64, 256)
    assert config.exporter is ExporterKind.CONSOLE
    assert (config.sampler, config.sample_rate) == ("parentbased_traceidratio", 0.2)
    assert config.resource_attributes == (("team", "checkout"),)


def test_with_grpc_after_with_http_selects_grpc() -> None:
    """The last protocol call wins."""
    config = TelemetryFlowBuilder().with_service("s").with_http().with_grpc().build_config()
    assert config.protocol is Protocol.GRPC


@pytest.mark.parametrize(
    ("setting", "expected"), [(False, "none"), (True, "gzip"), ("GZIP", "gzip"), ("none", "none")]
)
def test_with_compression(setting: bool | str, expected: str) -> None:
    """with_compression(False) means 'none', True means 'gzip'; names are accepted too."""
    config = TelemetryFlowBuilder().with_service("s").with_compression(setting).build_config()
    assert config.compression == expected


def test_auto_configuration_reads_like_load_config() -> None:
    """with_auto_configuration(environ) alone yields exactly load_config's config."""
    built = TelemetryFlowBuilder().with_auto_configuration(environ=_ENVIRON).build_config()
    assert built == load_config(_ENVIRON)[0]
    assert built.service_name == "from-env"


def test_auto_configuration_of_empty_environment_needs_no_service_name() -> None:
    """With auto configuration the default service name applies, so build() succeeds."""
    config = TelemetryFlowBuilder().with_auto_configuration(environ={}).build_config()
    assert config == TelemetryConfig()


@pytest.mark.parametrize("auto_first", [True, False], ids=["auto-first", "auto-last"])
def test_explicit_calls_win_over_the_environment_whatever_the_order(auto_first: bool) -> None:
    """Explicit with_* values override environment values, before or after auto config."""
    builder = TelemetryFlowBuilder()
    if auto_first:
        builder.with_auto_configuration(environ=_ENVIRON)
    builder.with_service("explicit").with_endpoint("explicit:4317").with_grpc()
    builder.with_timeout(9).with_sample_rate(0.1)
    if not auto_first:
        builder.with_auto_configuration(environ=_ENVIRON)
    config = builder.build_config()
    assert (config.service_name, config.endpoint, config.protocol) == (
        "explicit",
        "explicit:4317",
        Protocol.GRPC,
    )
    assert (config.timeout, config.sample_rate) == (9, 0.1)
    assert config.enable_logs is False  # not set explicitly: the environment's value stays


def test_custom_attributes_are_added_to_environment_attributes() -> None:
    """with_custom_attribute(s) end up in resource_attributes after the environment's."""
    config = (
        TelemetryFlowBuilder()
        .with_auto_configuration(environ=_ENVIRON)
        .with_custom_attributes({"region": "eu", "replicas": 3})
        .with_custom_attribute("zone", "b")
        .build_config()
    )
    assert config.resource_attributes == (
        ("team", "env"),
        ("region", "eu"),
        ("replicas", "3"),
        ("zone", "b"),
    )


def test_collector_id_joins_credentials_from_environment() -> None:
    """A collector id given in code is added to the API key read from the environment."""
    environ = {"TELEMETRYFLOW_API_KEY_ID": "tfk_env", "TELEMETRYFLOW_API_KEY_SECRET": _SECRET}
    config = (
        TelemetryFlowBuilder()
        .with_auto_configuration(environ=environ)
        .with_collector_id("col-2")
        .build_config()
    )
    assert config.credentials == Credentials("tfk_env", _SECRET, "col-2")


def test_build_without_service_name_raises() -> None:
    """Without a service name (and without auto configuration) build() raises BuilderError."""
    with pytest.raises(BuilderError, match="service name is missing"):
        TelemetryFlowBuilder().with_endpoint("collector:4317").build()


def test_collector_id_without_api_key_raises() -> None:
    """A collector id alone cannot make credentials, so build() says with_api_key is needed."""
    with pytest.raises(BuilderError, match="with_api_key"):
        TelemetryFlowBuilder().with_service("s").with_collector_id("col").build()


def test_several_invalid_fields_give_one_error_listing_all() -> None:
    """Bad key prefixes, a bad endpoint and a negative timeout are all in one BuilderError,
    with the secret redacted."""
    builder = (
        TelemetryFlowBuilder()
        .with_service("s")
        .with_api_key("key_1", "builder-secret-77")
        .with_endpoint("a b")
        .with_timeout(-1)
    )
    with pytest.raises(BuilderError) as caught:
        builder.build()
    problems = caught.value.problems
    assert len(problems) == 4
    for field in ("key_id", "key_secret", "endpoint", "timeout"):
        assert any(p.startswith(f"{field}=") for p in problems), field
    assert "builder-secret-77" not in str(caught.value)


def test_environment_problems_make_build_fail_naming_the_variable() -> None:
    """A malformed variable read by auto configuration is reported by build()."""
    builder = TelemetryFlowBuilder().with_auto_configuration(
        environ={"TELEMETRYFLOW_TIMEOUT": "30s", "TELEMETRYFLOW_ENABLED": "maybe"}
    )
    with pytest.raises(BuilderError) as caught:
        builder.build()
    assert len(caught.value.problems) == 2
    assert "TELEMETRYFLOW_TIMEOUT='30s'" in str(caught.value)
    assert "TELEMETRYFLOW_ENABLED='maybe'" in str(caught.value)
