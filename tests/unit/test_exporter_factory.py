"""``OTLPExporterFactory``: endpoints, TLS, compression, headers and certificates as handed
to the SDK's OTLP exporters, the console choice, and the lazy gRPC import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc_logs
from opentelemetry.exporter.otlp.proto.grpc import metric_exporter as grpc_metrics
from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_traces
from opentelemetry.exporter.otlp.proto.http import Compression as HTTPCompression
from opentelemetry.exporter.otlp.proto.http import _log_exporter as http_logs
from opentelemetry.exporter.otlp.proto.http import metric_exporter as http_metrics
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_traces
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.domain.errors import BuilderError, ConfigError
from telemetryflow_bootstrap.domain.per_signal import SignalOverrides
from telemetryflow_bootstrap.domain.signals import Protocol, SignalType
from telemetryflow_bootstrap.infrastructure import otlp_exporters
from telemetryflow_bootstrap.infrastructure.console import (
    ConsoleLogExporter,
    ConsoleMetricExporter,
    ConsoleSpanExporter,
)
from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

_ROOT = Path(__file__).resolve().parents[2]
_KEY_ID, _SECRET = "tfk_factory-key", "tfs_factory-secret"

_SDK_CLASSES = {
    (Protocol.GRPC, SignalType.TRACES): (otlp_exporters, "grpc_span_exporter"),
    (Protocol.GRPC, SignalType.METRICS): (grpc_metrics, "OTLPMetricExporter"),
    (Protocol.GRPC, SignalType.LOGS): (otlp_exporters, "grpc_log_exporter"),
    (Protocol.HTTP, SignalType.TRACES): (otlp_exporters, "http_span_exporter"),
    (Protocol.HTTP, SignalType.METRICS): (http_metrics, "OTLPMetricExporter"),
    (Protocol.HTTP, SignalType.LOGS): (otlp_exporters, "http_log_exporter"),
}
_CREATE = {SignalType.TRACES: "create_span_exporter", SignalType.METRICS: "create_metric_exporter",
           SignalType.LOGS: "create_log_exporter"}


class CapturedExporter:
    """Stands in for an SDK OTLP exporter class: records the keyword arguments it got."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SDK OTLP exporter class is replaced by ``CapturedExporter``."""
    for module, name in _SDK_CLASSES.values():
        monkeypatch.setattr(module, name, CapturedExporter)


@pytest.fixture(autouse=True)
def _fresh_diagnostics() -> Iterator[None]:
    _diagnostics.reset_for_tests()
    yield
    _diagnostics.reset_for_tests()


def _config(endpoint: str | None = "collector:4317", protocol: str = "grpc",
            **changes: Any) -> TelemetryConfig:
    builder = TelemetryFlowBuilder().with_service("factory-svc")
    if endpoint is not None:
        builder.with_endpoint(endpoint)
    builder.with_grpc() if protocol == "grpc" else builder.with_http()
    return builder.build_config().replace(**changes)


def _kwargs(config: TelemetryConfig, signal: SignalType = SignalType.TRACES) -> dict[str, Any]:
    exporter = getattr(OTLPExporterFactory(config), _CREATE[signal])()
    assert isinstance(exporter, CapturedExporter)
    return exporter.kwargs


# ----- endpoints --------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "expected"), [
    ("collector:4317", "collector:4317"),
    ("http://collector:4317", "collector:4317"),
    ("https://collector:4317", "collector:4317"),
    ("https://collector:4317/", "collector:4317"),
    ("grpc://collector:5317", "collector:5317"),
    ("collector", "collector:4317"),
    ("https://collector", "collector:443"),
    ("grpcs://collector", "collector:4317"),
    ("[::1]:4317", "[::1]:4317"),
    ("[::1]", "[::1]:4317"),
    ("10.0.0.7:14317", "10.0.0.7:14317"),
])
def test_grpc_endpoint_is_host_and_port(endpoint: str, expected: str) -> None:
    """gRPC exporters get ``host:port`` (default port 4317; 443 for an https:// URL),
    whatever form was configured."""
    factory = OTLPExporterFactory(_config(endpoint))
    assert {factory.endpoint_for(s) for s in SignalType} == {expected}


@pytest.mark.parametrize(("endpoint", "insecure", "signal", "expected"), [
    ("collector:4318", None, SignalType.TRACES, "https://collector:4318/v1/traces"),
    ("collector:4318", True, SignalType.TRACES, "http://collector:4318/v1/traces"),
    ("collector", True, SignalType.METRICS, "http://collector:4318/v1/metrics"),
    ("http://collector:4318", None, SignalType.METRICS, "http://collector:4318/v1/metrics"),
    ("https://collector", None, SignalType.LOGS, "https://collector:443/v1/logs"),
    ("collector", False, SignalType.LOGS, "https://collector:4318/v1/logs"),
    ("http://collector:4318/", None, SignalType.LOGS, "http://collector:4318/v1/logs"),
    ("http://h:4318/otlp", None, SignalType.TRACES, "http://h:4318/otlp/v1/traces"),
    ("http://h:4318/otlp/", None, SignalType.METRICS, "http://h:4318/otlp/v1/metrics"),
    ("http://h:4318/v1/traces", None, SignalType.TRACES, "http://h:4318/v1/traces"),
    ("http://h:4318/v1/traces", None, SignalType.METRICS, "http://h:4318/v1/metrics"),
    ("http://h:4318/v1/traces", None, SignalType.LOGS, "http://h:4318/v1/logs"),
    ("https://h/base/v1/logs", None, SignalType.TRACES, "https://h:443/base/v1/traces"),
    ("http://[::1]:4318", None, SignalType.TRACES, "http://[::1]:4318/v1/traces"),
    ("grpc://collector:4318", None, SignalType.TRACES, "http://collector:4318/v1/traces"),
])
def test_http_endpoint_is_a_full_signal_url(endpoint: str, insecure: bool | None,
                                            signal: SignalType, expected: str) -> None:
    """HTTP exporters get a full URL: scheme and default port added when missing (4318;
    the scheme's for an http(s):// URL),
    /v1/<signal> appended to a base path, and a full /v1/<signal> path reused per signal."""
    config = _config(endpoint, "http", insecure=insecure)
    assert OTLPExporterFactory(config).endpoint_for(signal) == expected


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("endpoint", [
    "collector", "collector:4317", "http://collector:4317", "https://collector:4317",
    "grpc://collector", "grpcs://collector", "[::1]:4317", "https://[::1]", "http://h:4318/otlp",
])
@pytest.mark.parametrize("insecure", [None, True, False])
def test_scheme_is_never_prefixed_twice(protocol: str, endpoint: str,
                                        insecure: bool | None) -> None:
    """No endpoint form, protocol or TLS setting yields a URL with two schemes."""
    factory = OTLPExporterFactory(_config(endpoint, protocol, insecure=insecure))
    for signal in SignalType:
        url = factory.endpoint_for(signal)
        assert url.count("://") == (1 if protocol == "http" else 0), url
        assert "http" not in url.split("://")[-1], url


@pytest.mark.parametrize("endpoint", ["http://h:4318/otlp?token=abc", "http://h?token=abc"])
def test_endpoint_with_a_query_is_refused_or_kept_after_the_path(endpoint: str) -> None:
    """A query string in the endpoint is either refused by the config or kept as the URL's
    query after the signal path, never made part of the path or the host."""
    try:
        config = _config(endpoint, "http")
    except (BuilderError, ConfigError):
        return
    url = urlsplit(OTLPExporterFactory(config).endpoint_for(SignalType.TRACES))
    assert (url.hostname, url.query) == ("h", "token=abc")
    assert url.path.endswith("/v1/traces")


def test_grpc_and_http_exporters_get_the_endpoint(captured: None) -> None:
    """What endpoint_for() computes is what the SDK exporter receives."""
    grpc_kwargs = _kwargs(_config("http://collector:4317"), SignalType.LOGS)
    assert grpc_kwargs["endpoint"] == "collector:4317"
    http_kwargs = _kwargs(_config("http://h:4318/otlp", "http"), SignalType.METRICS)
    assert http_kwargs["endpoint"] == "http://h:4318/otlp/v1/metrics"


# ----- TLS --------------------------------------------------------------------------------

@pytest.mark.parametrize(("endpoint", "insecure", "expected_insecure"), [
    ("collector:4317", None, False),
    ("collector:4317", True, True),
    ("collector:4317", False, False),
    ("http://collector:4317", None, True),
    ("grpc://collector:4317", None, True),
    ("https://collector:4317", None, False),
    ("grpcs://collector:4317", None, False),
    ("http://collector:4317", False, False),
])
def test_grpc_insecure_decision(captured: None, endpoint: str, insecure: bool | None,
                                expected_insecure: bool) -> None:
    """gRPC uses TLS unless told otherwise (with_insecure) or the endpoint says http://; with
    TLS the credentials are always ours (else the exporter reads OTEL_*_CERTIFICATE itself)."""
    kwargs = _kwargs(_config(endpoint, insecure=insecure))
    assert kwargs["insecure"] is expected_insecure
    assert ("credentials" in kwargs) is not expected_insecure


def test_grpc_tls_with_a_certificate_uses_it_as_root(
        captured: None, tmp_path: Path, otlp_self_signed_cert: tuple[bytes, bytes]) -> None:
    """A configured CA file becomes the gRPC channel's root certificates."""
    pem = tmp_path / "ca.pem"
    pem.write_bytes(otlp_self_signed_cert[0])
    kwargs = _kwargs(_config("https://collector:4317", certificate_file=str(pem)))
    assert kwargs["insecure"] is False
    assert isinstance(kwargs["credentials"], grpc.ChannelCredentials)


def test_http_tls_with_a_certificate_passes_the_file(
        captured: None, tmp_path: Path, otlp_self_signed_cert: tuple[bytes, bytes]) -> None:
    """A configured CA file is handed to the HTTP exporter."""
    pem = tmp_path / "ca.pem"
    pem.write_bytes(otlp_self_signed_cert[0])
    kwargs = _kwargs(_config("https://collector:4318", "http", certificate_file=str(pem)))
    assert kwargs["certificate_file"] == str(pem)
    assert kwargs["endpoint"].startswith("https://")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("signal", list(SignalType))
def test_missing_certificate_is_a_config_error(captured: None, tmp_path: Path, protocol: str,
                                               signal: SignalType) -> None:
    """A certificate path that is not a file raises ConfigError naming TELEMETRYFLOW_CERTIFICATE."""
    missing = str(tmp_path / "nope.pem")
    config = _config("https://collector:4317", protocol, certificate_file=missing)
    with pytest.raises(ConfigError, match="TELEMETRYFLOW_CERTIFICATE") as raised:
        getattr(OTLPExporterFactory(config), _CREATE[signal])()
    assert missing in str(raised.value)


def test_missing_certificate_in_a_running_client_is_reported_not_raised(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    """In a running client a bad certificate is one warning naming the variable, and the
    spans are counted as dropped; the program is not interrupted."""
    config = _config("https://127.0.0.1:9", certificate_file=str(tmp_path / "nope.pem"),
                     enable_metrics=False, enable_logs=False, batch_timeout_ms=10)
    client = TelemetryFlowClient(config, set_global=False).initialize()
    try:
        for _ in range(3):
            with client.span("op"):
                pass
        assert client.flush(2.0) is False
        assert client.get_status()["spans_dropped"] == 3
    finally:
        client.shutdown(1.0)
    err = capsys.readouterr().err
    assert "cannot create the traces exporter" in err
    assert "TELEMETRYFLOW_CERTIFICATE" in err


# ----- compression, headers, timeout -------------------------------------------------------

@pytest.mark.parametrize("signal", list(SignalType))
def test_gzip_compression(captured: None, signal: SignalType) -> None:
    """Compression gzip (the default) and none map to each transport's compression enum."""
    assert _kwargs(_config(), signal)["compression"] is grpc.Compression.Gzip
    assert _kwargs(_config(compression="none"), signal)["compression"] is (
        grpc.Compression.NoCompression)
    assert _kwargs(_config(protocol="http"), signal)["compression"] is HTTPCompression.Gzip
    assert _kwargs(_config(protocol="http", compression="none"), signal)["compression"] is (
        HTTPCompression.NoCompression)


def _with_credentials(protocol: str) -> TelemetryConfig:
    builder = (TelemetryFlowBuilder().with_service("factory-svc").with_endpoint("collector:4317")
               .with_api_key(_KEY_ID, _SECRET).with_collector_id("col-9").with_timeout(3.5))
    builder.with_grpc() if protocol == "grpc" else builder.with_http()
    return builder.build_config()


_AUTH = {
    "Authorization": f"Bearer {_KEY_ID}:{_SECRET}",
    "X-TelemetryFlow-Key-ID": _KEY_ID,
    "X-TelemetryFlow-Key-Secret": _SECRET,
    "X-TelemetryFlow-Collector-ID": "col-9",
}


@pytest.mark.parametrize("signal", list(SignalType))
def test_grpc_auth_headers_are_lower_case_metadata(captured: None, signal: SignalType) -> None:
    """gRPC exporters get the credentials as metadata pairs with lower-case keys."""
    kwargs = _kwargs(_with_credentials("grpc"), signal)
    assert dict(kwargs["headers"]) == {k.lower(): v for k, v in _AUTH.items()}
    assert kwargs["timeout"] == 3.5


@pytest.mark.parametrize("signal", list(SignalType))
def test_http_auth_headers(captured: None, signal: SignalType) -> None:
    """HTTP exporters get the credentials as request headers."""
    kwargs = _kwargs(_with_credentials("http"), signal)
    assert kwargs["headers"] == _AUTH
    assert kwargs["timeout"] == 3.5


def test_extra_headers_are_sent_with_the_credentials(captured: None) -> None:
    """Configured extra headers travel with the auth headers."""
    config = _with_credentials("http").replace(headers=(("X-Tenant", "t1"),))
    assert _kwargs(config)["headers"] == {"X-Tenant": "t1", **_AUTH}


# ----- console ----------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", [None, "collector:4317"])
def test_console_exporters_for_exporter_console(endpoint: str | None) -> None:
    """exporter=console gives the console exporters for every signal, endpoint or not."""
    config = _config(endpoint).replace(exporter="console")
    factory = OTLPExporterFactory(config)
    assert isinstance(factory.create_span_exporter(), ConsoleSpanExporter)
    assert isinstance(factory.create_metric_exporter(), ConsoleMetricExporter)
    assert isinstance(factory.create_log_exporter(), ConsoleLogExporter)


def test_no_endpoint_means_console() -> None:
    """With no endpoint and no exporter choice, telemetry goes to the console."""
    factory = OTLPExporterFactory(_config(None))
    assert isinstance(factory.create_span_exporter(), ConsoleSpanExporter)


# ----- the real SDK exporters ---------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("endpoint", ["127.0.0.1:4317", "[::1]:4317", "http://localhost"])
def test_real_sdk_exporters_accept_what_the_factory_passes(protocol: str, endpoint: str) -> None:
    """The real OTLP exporters construct from every argument set (no connection is made)."""
    config = _with_credentials(protocol).replace(endpoint=endpoint, insecure=True)
    factory = OTLPExporterFactory(config)
    for signal in SignalType:
        exporter = getattr(factory, _CREATE[signal])()
        module, name = _SDK_CLASSES[(config.protocol, signal)]
        if signal is SignalType.TRACES:  # ours: the SDK's class with our encoder
            sdk = grpc_traces if config.protocol is Protocol.GRPC else http_traces
            assert type(exporter).__mro__[1] is sdk.OTLPSpanExporter
        elif signal is SignalType.LOGS:  # (likewise)
            sdk = grpc_logs if config.protocol is Protocol.GRPC else http_logs
            assert type(exporter).__mro__[1] is sdk.OTLPLogExporter
        else:  # (ours: the SDK's class, cutting a request past the limit into parts)
            assert type(exporter).__mro__[1] is getattr(module, name)
        exporter.shutdown()


# ----- lazy imports -----------------------------------------------------------------------

_LAZY_PROBE = textwrap.dedent("""
    import json, sys
    from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
    from telemetryflow_bootstrap.client import TelemetryFlowClient
    from telemetryflow_bootstrap.infrastructure.exporters import OTLPExporterFactory

    config = (TelemetryFlowBuilder().with_service("lazy").with_endpoint("127.0.0.1:9")
              .with_insecure().build_config())
    factory = OTLPExporterFactory(config)
    endpoints = [factory.endpoint_for(s) for s in config.enabled_signals]
    after_factory = "grpc" in sys.modules
    client = TelemetryFlowClient(config, set_global=False).initialize()
    after_initialize = "grpc" in sys.modules
    client.shutdown(0.5)
    print(json.dumps({"factory": after_factory, "initialize": after_initialize}))
""")


def test_grpc_is_not_imported_by_constructing_the_factory_or_starting_the_sdk() -> None:
    """Neither building the factory nor initialising a client imports grpc (fresh interpreter):
    the exporter is created on the export thread at the first export."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))}
    result = subprocess.run([sys.executable, "-c", _LAZY_PROBE], cwd=_ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "factory": False, "initialize": False}


def test_overridden_exporter_is_used_instead_of_the_factory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With an ExporterOverrides span exporter, the factory is never asked for one."""
    def refuse(self: OTLPExporterFactory) -> Any:
        raise AssertionError("factory used despite the override")

    monkeypatch.setattr(OTLPExporterFactory, "create_span_exporter", refuse)
    exporter = InMemorySpanExporter()
    config = _config("127.0.0.1:9", enable_metrics=False, enable_logs=False)
    client = TelemetryFlowClient(config, exporters=ExporterOverrides(span_exporter=exporter),
                                 set_global=False).initialize()
    try:
        with client.span("op"):
            pass
        assert client.flush(2.0)
    finally:
        client.shutdown(1.0)
    assert [s.name for s in exporter.get_finished_spans()] == ["op"]


# ----- what the SDK exporters would read from the environment themselves ------------------

@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("signal", list(SignalType))
def test_exporters_send_only_the_configured_headers(
        monkeypatch: pytest.MonkeyPatch, protocol: str, signal: SignalType) -> None:
    """The real SDK exporters send exactly the config's headers: not OTEL_EXPORTER_OTLP_HEADERS
    (rejected by our reader, or overridden by TELEMETRYFLOW_HEADERS) nor the per-signal
    variable, which they read themselves."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer leaked")
    monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_HEADERS", "x-signal=1")
    for headers, expected in (((), {}), ((("X-Ours", "1"),), {"x-ours": "1"})):
        config = _config("http://127.0.0.1:9", protocol, headers=headers)
        exporter = getattr(OTLPExporterFactory(config), _CREATE[signal])()
        try:
            if protocol == "grpc":
                sent = dict(exporter._headers)
            else:
                sent = {k.lower(): v for k, v in exporter._client._headers.items()}
                assert sent.pop("user-agent").startswith("OTel-OTLP-Exporter-Python")
                sent.pop("content-type", None)
                assert sent.pop("content-encoding") == "gzip"
            assert sent == expected
        finally:
            exporter.shutdown()


def test_http_exporter_ignores_a_rejected_otel_certificate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With no certificate configured the HTTP exporter verifies with the system CAs, not an
    OTEL_EXPORTER_OTLP_CERTIFICATE our reader rejected (it reads that variable itself)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem")
    exporter = OTLPExporterFactory(_config("https://127.0.0.1:9", "http")).create_span_exporter()
    try:
        assert exporter._client._transport._session.verify is True
    finally:
        exporter.shutdown()


# ----- per-signal settings (OTEL_EXPORTER_OTLP_<SIGNAL>_*) ------------------------------------

_SPLIT = {  # traces to Tempo over gRPC, logs to Loki over HTTP, metrics to the collector
    "TELEMETRYFLOW_ENDPOINT": "collector:4317",
    "TELEMETRYFLOW_HEADERS": "x-all=1",
    "TELEMETRYFLOW_TIMEOUT": "4",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:14317",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tempo=2",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "none",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://loki.example/otlp/v1/logs",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "X-Scope-OrgID=shop",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "1500",
}


def test_each_signal_exporter_is_built_from_its_own_settings(captured: None) -> None:
    """Each SDK exporter gets its signal's endpoint (a per-signal OTLP/HTTP URL as is),
    transport, TLS, headers (per-signal ones replacing the all-signals ones), compression
    and timeout."""
    config, reading = load_config(_SPLIT)
    assert reading.problems == []
    traces = _kwargs(config, SignalType.TRACES)
    assert (traces["endpoint"], traces["insecure"]) == ("tempo:14317", True)
    assert dict(traces["headers"]) == {"x-tempo": "2"}
    assert traces["compression"] is grpc.Compression.NoCompression and traces["timeout"] == 4.0
    logs = _kwargs(config, SignalType.LOGS)
    assert logs["endpoint"] == "https://loki.example/otlp/v1/logs"
    assert logs["headers"] == {"X-Scope-OrgID": "shop"}
    assert logs["compression"] is HTTPCompression.Gzip and logs["timeout"] == 1.5
    metrics = _kwargs(config, SignalType.METRICS)
    assert (metrics["endpoint"], metrics["insecure"]) == ("collector:4317", False)
    assert dict(metrics["headers"]) == {"x-all": "1"} and metrics["timeout"] == 4.0


def test_warm_up_imports_each_signal_s_own_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up prepares the transport the signal's exporter will use (gRPC for traces,
    HTTP for logs here), not the all-signals one."""
    asked: list[tuple[str, bool]] = []
    monkeypatch.setattr(otlp_exporters, "exporter_class",
                        lambda signal, *, grpc: asked.append((signal, grpc)))
    factory = OTLPExporterFactory(load_config(_SPLIT)[0])
    factory.warm_up(SignalType.TRACES)
    factory.warm_up(SignalType.LOGS)
    assert asked == [("traces", True), ("logs", False)]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_missing_per_signal_certificate_names_its_variable(
        captured: None, tmp_path: Path, protocol: str) -> None:
    """A per-signal CA file gone since it was read raises ConfigError naming that signal's
    variable; the other signals are built."""
    missing = str(tmp_path / "gone.pem")
    config = _config("https://collector:4317", protocol,
                     logs_otlp=SignalOverrides(certificate_file=missing))
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE"):
        OTLPExporterFactory(config).create_log_exporter()
    assert _kwargs(config, SignalType.TRACES)["endpoint"]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_real_exporters_send_only_the_signal_s_own_headers(
        monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    """The real SDK exporters send exactly the signal's headers: its own variable's, without
    the all-signals ones (which the HTTP exporter would merge in from the environment)."""
    environ = {"OTEL_EXPORTER_OTLP_HEADERS": "x-all=1",
               "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-logs=2",
               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
               "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)  # (the SDK's exporters read them too)
    config, _ = load_config(environ)
    for signal, expected in ((SignalType.LOGS, {"x-logs": "2"}),
                             (SignalType.TRACES, {"x-all": "1"})):
        exporter = getattr(OTLPExporterFactory(config), _CREATE[signal])()
        try:
            if protocol == "grpc":
                sent = dict(exporter._headers)
            else:
                sent = {k.lower(): v for k, v in exporter._client._headers.items()
                        if k.lower() not in ("user-agent", "content-type", "content-encoding")}
            assert sent == expected
        finally:
            exporter.shutdown()


def test_a_signal_s_own_secrets_are_masked_in_our_messages(
        captured: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Building a signal's exporter registers its own header values and endpoint password
    as secrets: a message quoting them (as an SDK error may) shows ****."""
    config, _ = load_config({
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://loki:hunter22@loki:3100/otlp/v1/logs",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-token=logs-token-9z",
    })
    OTLPExporterFactory(config).create_log_exporter()
    _diagnostics.warn("export failed: sent x-token=logs-token-9z to loki (pw hunter22)")
    err = capsys.readouterr().err
    assert "logs-token-9z" not in err and "hunter22" not in err and "****" in err



@pytest.mark.parametrize("signal", list(SignalType))
def test_real_grpc_exporter_builds_despite_a_timeout_our_reader_rejected(
        monkeypatch: pytest.MonkeyPatch, signal: SignalType) -> None:
    """A per-signal timeout the reader rejected (``5s``: reported, the all-signals timeout
    used) does not fail the SDK's gRPC exporter, which parses it with float() itself; the
    process environment and the SDK module are left as they were."""
    name = f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_TIMEOUT"
    monkeypatch.setenv(name, "5s")
    config, reading = load_config({name: "5s", "TELEMETRYFLOW_ENDPOINT": "http://127.0.0.1:9",
                                   "TELEMETRYFLOW_TIMEOUT": "3"})
    assert [p.source for p in reading.problems] == [name]
    module = {SignalType.TRACES: grpc_traces, SignalType.METRICS: grpc_metrics,
              SignalType.LOGS: grpc_logs}[signal]
    exporter = getattr(OTLPExporterFactory(config), _CREATE[signal])()
    try:
        assert exporter._timeout == 3.0
    finally:
        exporter.shutdown()
    assert os.environ[name] == "5s" and module.environ is os.environ
