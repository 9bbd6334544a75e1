"""The SDK's public API used wrongly, as a demanding user would: every bad builder argument
is a ``BuilderError`` naming the method, the value (never a secret) and what is expected,
and a metric name OpenTelemetry refuses is said once and dropped, never an exception."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.domain.errors import BuilderError, ConfigError
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides

_SECRET = "tfs_hunt-secret-value-42"


def _builder() -> TelemetryFlowBuilder:
    return TelemetryFlowBuilder().with_service("hunt")


# (the call, what the message must say: the method and argument, and what is expected)
_BAD_CALLS: dict[str, tuple[Callable[[TelemetryFlowBuilder], Any], tuple[str, ...]]] = {
    "endpoint-int": (lambda b: b.with_endpoint(4317), ("with_endpoint(4317)", "host:port")),
    "api-key-ints": (lambda b: b.with_api_key(1, 2),
                     ("with_api_key(key_id=1, key_secret=<int>)", "'tfk_...'")),
    "collector-id-int": (lambda b: b.with_api_key("tfk_a", _SECRET).with_collector_id(7),
                         ("with_collector_id(7)", "a string")),
    "version-int": (lambda b: b.with_service("hunt", 2), ("with_service(version=2)", "string")),
    "namespace-list": (lambda b: b.with_service("hunt", "1", ["a"]),
                       ("with_service(namespace=['a'])", "string")),
    "environment-int": (lambda b: b.with_environment(5), ("with_environment(5)", "string")),
    "insecure-str": (lambda b: b.with_insecure("no"), ("with_insecure('no')", "True or False")),
    "signals-str": (lambda b: b.with_signals(metrics="no"),
                    ("with_signals(metrics='no')", "True, False or None")),
    "compression-int": (lambda b: b.with_compression(5),
                        ("with_compression(5)", "'gzip' or 'none'")),
    "attributes-list": (lambda b: b.with_custom_attributes([("team", "a")]),
                        ("with_custom_attributes([('team', 'a')])", "mapping")),
    "attributes-none": (lambda b: b.with_custom_attributes(None),
                        ("with_custom_attributes(None)", "mapping")),
    "attribute-value-none": (lambda b: b.with_custom_attribute("team", None),
                             ("with_custom_attribute('team', None)", "str, bool, int or float")),
    "attribute-key-int": (lambda b: b.with_custom_attribute(1, "x"),
                          ("with_custom_attribute(1, 'x')", "non-empty string key")),
    "environ-int": (lambda b: b.with_auto_configuration(5),
                    ("with_auto_configuration(environ=5)", "mapping")),
    "exporters-int": (lambda b: b.with_exporters(5), ("with_exporters(5)", "ExporterOverrides")),
    "timeout-nan": (lambda b: b.with_timeout(float("nan")), ("timeout=nan", "positive number")),
    "timeout-inf": (lambda b: b.with_timeout(float("inf")), ("timeout=inf", "up to 86400")),
    "timeout-huge": (lambda b: b.with_timeout(1e12), ("timeout=1000000000000.0", "up to 86400")),
}


@pytest.mark.parametrize("call, expected", list(_BAD_CALLS.values()), ids=list(_BAD_CALLS))
def test_a_bad_builder_argument_is_a_builder_error_naming_it(
        call: Callable[[TelemetryFlowBuilder], Any], expected: tuple[str, ...]) -> None:
    """A wrong type or value is reported by ``build()`` as a ``BuilderError`` that quotes the
    call and says what is expected (not an AttributeError from inside, not taken for true)."""
    builder = call(_builder().with_api_key("tfk_a", _SECRET))
    with pytest.raises(BuilderError) as caught:
        builder.build()
    message = str(caught.value)
    for part in expected:
        assert part in message, message
    assert _SECRET not in message


def test_a_non_string_secret_is_not_shown() -> None:
    """``with_api_key`` given a secret of the wrong type names its type, never its value."""
    with pytest.raises(BuilderError) as caught:
        _builder().with_api_key("tfk_a", 987654321987).build()
    assert "key_secret=<int>" in str(caught.value)
    assert "987654321987" not in str(caught.value)


def test_a_later_valid_call_replaces_an_earlier_bad_one() -> None:
    """The last call of a method wins, as for valid values: its earlier problem goes."""
    config = _builder().with_endpoint(4317).with_endpoint("collector:4317").build_config()
    assert config.endpoint == "collector:4317"


def test_every_bad_argument_is_listed_at_once() -> None:
    """Several bad arguments: one error listing each of them."""
    with pytest.raises(BuilderError) as caught:
        _builder().with_endpoint(1).with_insecure("yes").with_timeout(-1).build()
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "with_endpoint(1)", "with_insecure('yes')", "timeout=-1"]


def test_config_refuses_a_timeout_the_environment_would_refuse() -> None:
    """``TelemetryConfig`` (whoever builds it) refuses NaN, infinity and more than a day, as
    TELEMETRYFLOW_TIMEOUT does: a thread wait that long overflows."""
    for value in (float("nan"), float("inf"), 86_401.0):
        with pytest.raises(ConfigError, match="up to 86400"):
            TelemetryConfig(timeout=value)
    assert TelemetryConfig(timeout=86_400).timeout == 86_400


# ----- metric names OpenTelemetry refuses --------------------------------------------------


@pytest.fixture
def client() -> Iterator[tuple[TelemetryFlowClient, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    config = _builder().build_config()
    made = TelemetryFlowClient(config, exporters=ExporterOverrides(
        InMemorySpanExporter(), reader, InMemoryLogRecordExporter()), set_global=False)
    made.initialize()
    _diagnostics.reset_for_tests()
    yield made, reader
    made.shutdown(2.0)


def _metric_names(reader: InMemoryMetricReader) -> list[str]:
    data = reader.get_metrics_data()
    return [m.name for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics for m in sm.metrics]


_REFUSED: dict[str, Callable[[TelemetryFlowClient], None]] = {
    "space": lambda c: c.increment_counter("my counter"),
    "unicode": lambda c: c.record_histogram("zähler", 1.0),
    "empty": lambda c: c.record_gauge("", 1),
    "digit-first": lambda c: c.increment_counter("1st"),
    "too-long": lambda c: c.increment_counter("a" * 256),
    "none": lambda c: c.increment_counter(None),  # type: ignore[arg-type]
    "unit-non-ascii": lambda c: c.record_histogram("latency", 1.0, unit="µs"),
    "unit-too-long": lambda c: c.increment_counter("things", unit="x" * 64),
    # (unhashable: the check's own set lookup raised TypeError)
    "list-name": lambda c: c.increment_counter(["orders"]),  # type: ignore[arg-type]
    "list-unit": lambda c: c.record_histogram("latency", 1.0, unit=["ms"]),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", list(_REFUSED.values()), ids=list(_REFUSED))
def test_a_refused_metric_is_said_once_and_dropped(
        client: tuple[TelemetryFlowClient, InMemoryMetricReader], call: Callable[..., None],
        capsys: pytest.CaptureFixture[str]) -> None:
    """Three calls with a name (or unit) OpenTelemetry refuses: no exception (the SDK raised
    a bare ``Exception``, then ``KeyError`` on the next call), one warning naming the
    metric and the rule, nothing recorded, and a valid metric still works."""
    sdk, reader = client
    for _ in range(3):
        call(sdk)
    sdk.increment_counter("valid.name_1-a/b")
    warnings = [line for line in capsys.readouterr().err.splitlines() if "dropped" in line]
    assert len(warnings) == 1, warnings
    assert "OpenTelemetry" in warnings[0] or "expected a string" in warnings[0]
    assert _metric_names(reader) == ["valid.name_1-a/b"]
    assert len(sdk.get_status()["metric_names_refused"]) == 1


def test_status_lists_the_refused_names(
        client: tuple[TelemetryFlowClient, InMemoryMetricReader]) -> None:
    """``get_status()`` says which metric names were refused, as they were given."""
    sdk, _ = client
    sdk.increment_counter("bad name")
    sdk.record_histogram("also bad!", 2.0)
    sdk.increment_counter("fine")
    assert sdk.get_status()["metric_names_refused"] == ["'bad name'", "'also bad!'"]


def test_a_valid_name_with_every_allowed_character_is_recorded(
        client: tuple[TelemetryFlowClient, InMemoryMetricReader]) -> None:
    """The check refuses nothing OpenTelemetry accepts: 255 characters, ``_ . - /``, units."""
    sdk, reader = client
    longest = "a" + "b_.-/9" * 42 + "zz"  # (OpenTelemetry lower-cases names)
    assert len(longest) == 255
    sdk.increment_counter(longest, unit="ms")
    sdk.record_histogram("http.server.request.duration", 0.5, unit="s")
    assert sorted(_metric_names(reader)) == sorted([longest, "http.server.request.duration"])
