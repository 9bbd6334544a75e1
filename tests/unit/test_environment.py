"""The environment-variable table and its reader: parsing, precedence, problems, secrets."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetryflow_bootstrap.domain.config import TelemetryConfig, load_config
from telemetryflow_bootstrap.domain.environment import (
    OTEL_SPECIAL,
    SIGNAL_VARIABLES,
    VARIABLES,
    read_environment,
)

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(TelemetryConfig)}
_UNDECODABLE = os.fsdecode(b"\xff\xfe")  # what os.environ holds for non-UTF-8 bytes

# One good value per variable: raw text -> the parsed field value. Every row also
# exercises the parser's normalisation (case, whitespace, aliases, percent-decoding).
# Real PEM files: certificate variables are checked when read (parsers.pem_file).
_CA = str(Path(__file__).with_name("data") / "ca.pem")
_OTEL_CA = str(Path(__file__).with_name("data") / "otel-ca.pem")

GOOD: dict[str, tuple[str, Any]] = {
    "TELEMETRYFLOW_ENABLED": ("false", False),
    "TELEMETRYFLOW_STRICT": ("true", True),
    "TELEMETRYFLOW_API_KEY_ID": (" tfk_abc ", "tfk_abc"),
    "TELEMETRYFLOW_API_KEY_SECRET": ("tfs_xyz", "tfs_xyz"),
    "TELEMETRYFLOW_COLLECTOR_ID": ("col-1", "col-1"),
    "TELEMETRYFLOW_ENDPOINT": ("collector:4317", "collector:4317"),
    "TELEMETRYFLOW_PROTOCOL": ("HTTP/protobuf", "http"),
    "TELEMETRYFLOW_INSECURE": ("yes", True),
    "TELEMETRYFLOW_CERTIFICATE": (_CA, _CA),
    "TELEMETRYFLOW_HEADERS": (
        "x-team=shop, x-env=eu%20west",
        (("x-team", "shop"), ("x-env", "eu west")),
    ),
    "TELEMETRYFLOW_SERVICE_NAME": ("checkout", "checkout"),
    "TELEMETRYFLOW_SERVICE_VERSION": ("1.2.3", "1.2.3"),
    "TELEMETRYFLOW_SERVICE_NAMESPACE": ("shop", "shop"),
    "TELEMETRYFLOW_ENVIRONMENT": ("production", "production"),
    "TELEMETRYFLOW_RESOURCE_ATTRIBUTES": (
        "team=shop,region=eu",
        (("team", "shop"), ("region", "eu")),
    ),
    "TELEMETRYFLOW_EXPORTER": ("Console", "console"),
    "TELEMETRYFLOW_CONSOLE_FORMAT": ("json", "json"),
    "TELEMETRYFLOW_COMPRESSION": ("true", "gzip"),
    "TELEMETRYFLOW_TIMEOUT": ("2.5", 2.5),
    "TELEMETRYFLOW_BATCH_TIMEOUT": ("0", 0),
    "TELEMETRYFLOW_BATCH_MAX_SIZE": ("100", 100),
    "TELEMETRYFLOW_MAX_QUEUE_SIZE": ("4096", 4096),
    "TELEMETRYFLOW_METRIC_EXPORT_INTERVAL": ("15000", 15000),
    "TELEMETRYFLOW_METRICS_TEMPORALITY": ("Delta", "delta"),
    "TELEMETRYFLOW_HISTOGRAM_AGGREGATION": ("base2_exponential_bucket_histogram",
                                            "base2_exponential_bucket_histogram"),
    "TELEMETRYFLOW_ENABLE_TRACES": ("off", False),
    "TELEMETRYFLOW_ENABLE_METRICS": ("0", False),
    "TELEMETRYFLOW_ENABLE_LOGS": ("NO", False),
    "TELEMETRYFLOW_SAMPLE_RATE": ("0.25", 0.25),
    "TELEMETRYFLOW_PROPAGATORS": ("TraceContext, Baggage", ("tracecontext", "baggage")),
    "TELEMETRYFLOW_SHUTDOWN_TIMEOUT": ("1", 1.0),
    "TELEMETRYFLOW_LOG_LEVEL": ("warning", "warn"),
    "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": ("requests,flask", ("requests", "flask")),
    "TELEMETRYFLOW_EXCLUDED_URLS": ("/health, ^/metrics$", ("/health", "^/metrics$")),
    "TELEMETRYFLOW_PREFER_CONTRIB": ("django", ("django",)),
    "TELEMETRYFLOW_LOG_EXPORT_LEVEL": ("warn", "warning"),
    "TELEMETRYFLOW_LOG_CORRELATION": ("true", True),
    "TELEMETRYFLOW_RUNTIME_METRICS": ("false", False),
    "TELEMETRYFLOW_PROCESS_SPAN": ("on", True),
    "TELEMETRYFLOW_DB_COMMENTER": ("1", True),
    "TELEMETRYFLOW_REDIS_CAPTURE_ARGS": ("TRUE", True),
}

# One good value per OTEL_* fallback, chosen to differ from the GOOD value of its variable.
FALLBACK_GOOD: dict[str, tuple[str, Any]] = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": ("http://otel:4318", "http://otel:4318"),
    "OTEL_EXPORTER_OTLP_PROTOCOL": ("grpc", "grpc"),
    "OTEL_EXPORTER_OTLP_INSECURE": ("false", False),
    "OTEL_EXPORTER_OTLP_CERTIFICATE": (_OTEL_CA, _OTEL_CA),
    "OTEL_EXPORTER_OTLP_HEADERS": ("api-key=abc", (("api-key", "abc"),)),
    "OTEL_SERVICE_NAME": ("otel-svc", "otel-svc"),
    "OTEL_RESOURCE_ATTRIBUTES": ("k8s.pod.name=web-1", (("k8s.pod.name", "web-1"),)),
    "OTEL_EXPORTER_OTLP_COMPRESSION": ("none", "none"),
    "OTEL_BSP_SCHEDULE_DELAY": ("1000", 1000),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("64", 64),
    "OTEL_BSP_MAX_QUEUE_SIZE": ("128", 128),
    "OTEL_METRIC_EXPORT_INTERVAL": ("10000", 10000),
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": ("LOWMEMORY", "lowmemory"),
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": (
        "explicit_bucket_histogram", "explicit_bucket_histogram"),
    "OTEL_PROPAGATORS": ("baggage", ("baggage",)),
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ("urllib3", ("urllib3",)),
    "OTEL_PYTHON_EXCLUDED_URLS": ("/ready", ("/ready",)),
}

_WITH_FALLBACK = [(var, fallback) for var in VARIABLES for fallback in var.fallbacks]
_ALL_NAMES = sorted(
    {v.name for v in VARIABLES}
    | {fb for _, fb in _WITH_FALLBACK}
    | {name for name, _ in OTEL_SPECIAL if "{" not in name}  # (not the per-signal rows)
    | {v.name for v in SIGNAL_VARIABLES}
)


def test_good_value_table_covers_every_variable() -> None:
    """Adding a variable to VARIABLES without a row here fails, so no variable goes untested."""
    assert set(GOOD) == {v.name for v in VARIABLES}
    assert set(FALLBACK_GOOD) == {fb for _, fb in _WITH_FALLBACK}


@pytest.mark.parametrize("var", VARIABLES, ids=lambda v: v.name)
def test_every_variable_parses_a_good_value(var: Any) -> None:
    """A good value of each variable becomes the expected field value, sourced from it."""
    raw, expected = GOOD[var.name]
    reading = read_environment({var.name: raw})
    assert reading.problems == []
    assert reading.values[var.field] == expected
    assert reading.sources[var.field] == var.name
    if var.field in _CONFIG_FIELDS:
        config, _ = load_config({var.name: raw})
        assert getattr(config, var.field) == expected


@pytest.mark.parametrize(("var", "fallback"), _WITH_FALLBACK, ids=[fb for _, fb in _WITH_FALLBACK])
def test_otel_fallback_alone_is_honoured(var: Any, fallback: str) -> None:
    """Each OTEL_* fallback on its own sets the same field its TELEMETRYFLOW_* variable would."""
    raw, expected = FALLBACK_GOOD[fallback]
    config, reading = load_config({fallback: raw})
    assert reading.problems == []
    assert reading.sources[var.field] == fallback
    assert getattr(config, var.field) == expected


@pytest.mark.parametrize(("var", "fallback"), _WITH_FALLBACK, ids=[fb for _, fb in _WITH_FALLBACK])
def test_telemetryflow_variable_wins_over_otel_fallback(var: Any, fallback: str) -> None:
    """With both set, the TELEMETRYFLOW_* value is used and the OTEL_* one ignored."""
    raw, expected = GOOD[var.name]
    config, reading = load_config({var.name: raw, fallback: FALLBACK_GOOD[fallback][0]})
    assert reading.sources[var.field] == var.name
    assert getattr(config, var.field) == expected


@pytest.mark.parametrize(
    ("environ", "field", "expected"),
    [
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}, "timeout", 2.5),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500", "TELEMETRYFLOW_TIMEOUT": "7"}, "timeout", 7.0),
        ({"OTEL_SDK_DISABLED": "true"}, "enabled", False),
        ({"OTEL_SDK_DISABLED": "false"}, "enabled", True),
        ({"OTEL_SDK_DISABLED": "true", "TELEMETRYFLOW_ENABLED": "true"}, "enabled", True),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, "sampler", "always_off"),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, "sampler", "parentbased_always_on"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "sampler",
            "traceidratio",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "sample_rate",
            0.1,
        ),
        (
            {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            "sample_rate",
            1.0,
        ),
        (
            {"OTEL_TRACES_SAMPLER": "always_off", "TELEMETRYFLOW_SAMPLE_RATE": "0.5"},
            "sampler",
            "parentbased_traceidratio",
        ),
        ({"OTEL_TRACES_EXPORTER": "none"}, "traces_exporter", "none"),
        ({"OTEL_METRICS_EXPORTER": "console"}, "metrics_exporter", "console"),
        ({"OTEL_LOGS_EXPORTER": "OTLP"}, "logs_exporter", "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console,otlp"}, "traces_exporter", "console"),
    ],
    ids=repr,
)
def test_otel_variables_with_their_own_rules(
    environ: dict[str, str], field: str, expected: Any
) -> None:
    """The OTEL_* variables that are not 1:1 fallbacks map to the right config value."""
    config, reading = load_config(environ)
    assert reading.problems == []
    assert getattr(config, field) == expected


@pytest.mark.parametrize("signal", ["traces", "metrics", "logs"])
def test_otel_signal_exporter_none_disables_only_that_signal(signal: str) -> None:
    """OTEL_<SIGNAL>_EXPORTER=none turns that signal off and leaves the others on."""
    from telemetryflow_bootstrap.domain.signals import SignalType

    config, _ = load_config(
        {f"OTEL_{signal.upper()}_EXPORTER": "none", "TELEMETRYFLOW_ENDPOINT": "collector:4317"}
    )
    assert {s.value for s in config.enabled_signals} == {"traces", "metrics", "logs"} - {signal}
    assert not config.signal_enabled(SignalType(signal))


@pytest.mark.parametrize("raw", ["true", "TRUE", " True ", "1", "yes", "YES", "on", "On\t"])
def test_boolean_true_spellings(raw: str) -> None:
    """Booleans accept true/1/yes/on in any case and with surrounding whitespace."""
    assert read_environment({"TELEMETRYFLOW_STRICT": raw}).values["strict"] is True


@pytest.mark.parametrize("raw", ["false", "FALSE", " False ", "0", "no", "No", "off", "\nOFF"])
def test_boolean_false_spellings(raw: str) -> None:
    """Booleans accept false/0/no/off in any case and with surrounding whitespace."""
    assert read_environment({"TELEMETRYFLOW_ENABLED": raw}).values["enabled"] is False


@pytest.mark.parametrize("var", VARIABLES, ids=lambda v: v.name)
@pytest.mark.parametrize("raw", ["", "   "], ids=["empty", "blank"])
def test_empty_value_counts_as_unset(var: Any, raw: str) -> None:
    """An empty or blank value is neither parsed nor reported: the variable is unset."""
    reading = read_environment({var.name: raw})
    assert reading.problems == []
    assert var.field not in reading.values


def test_empty_telemetryflow_value_lets_the_otel_fallback_through() -> None:
    """An empty TELEMETRYFLOW_* value does not shadow its OTEL_* fallback."""
    config, _ = load_config({"TELEMETRYFLOW_SERVICE_NAME": "", "OTEL_SERVICE_NAME": "svc"})
    assert config.service_name == "svc"


# (environment, variable reported, what the message must say)
MALFORMED: list[tuple[dict[str, str], str, str]] = [
    ({"TELEMETRYFLOW_ENABLED": "maybe"}, "TELEMETRYFLOW_ENABLED", "expected a boolean"),
    ({"OTEL_EXPORTER_OTLP_INSECURE": "sure"}, "OTEL_EXPORTER_OTLP_INSECURE", "expected a boolean"),
    ({"OTEL_SDK_DISABLED": "perhaps"}, "OTEL_SDK_DISABLED", "expected a boolean"),
    ({"TELEMETRYFLOW_TIMEOUT": "30s"}, "TELEMETRYFLOW_TIMEOUT", "without a unit suffix"),
    (
        {"TELEMETRYFLOW_BATCH_TIMEOUT": "5000ms"},
        "TELEMETRYFLOW_BATCH_TIMEOUT",
        "without a unit suffix",
    ),
    (
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "5000ms"},
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "without a unit suffix",
    ),
    (
        {"OTEL_METRIC_EXPORT_INTERVAL": "60 s"},
        "OTEL_METRIC_EXPORT_INTERVAL",
        "without a unit suffix",
    ),
    ({"TELEMETRYFLOW_TIMEOUT": "-1"}, "TELEMETRYFLOW_TIMEOUT", "positive number of seconds"),
    ({"TELEMETRYFLOW_SHUTDOWN_TIMEOUT": "0"}, "TELEMETRYFLOW_SHUTDOWN_TIMEOUT", "positive number"),
    ({"TELEMETRYFLOW_TIMEOUT": "soon"}, "TELEMETRYFLOW_TIMEOUT", "expected a number"),
    ({"TELEMETRYFLOW_BATCH_MAX_SIZE": "-5"}, "TELEMETRYFLOW_BATCH_MAX_SIZE", "from 1 to"),
    ({"TELEMETRYFLOW_BATCH_TIMEOUT": "-1"}, "TELEMETRYFLOW_BATCH_TIMEOUT", "from 0 to"),
    ({"TELEMETRYFLOW_MAX_QUEUE_SIZE": "lots"}, "TELEMETRYFLOW_MAX_QUEUE_SIZE", "whole number"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "1.5"}, "OTEL_BSP_MAX_QUEUE_SIZE", "whole number"),
    ({"TELEMETRYFLOW_SAMPLE_RATE": "1.5"}, "TELEMETRYFLOW_SAMPLE_RATE", "between 0 and 1"),
    ({"TELEMETRYFLOW_SAMPLE_RATE": "-0.1"}, "TELEMETRYFLOW_SAMPLE_RATE", "between 0 and 1"),
    ({"TELEMETRYFLOW_SAMPLE_RATE": "half"}, "TELEMETRYFLOW_SAMPLE_RATE", "ratio"),
    (
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
        "OTEL_TRACES_SAMPLER_ARG",
        "between 0 and 1",
    ),
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER", "expected one of"),
    ({"TELEMETRYFLOW_PROTOCOL": "grpcc"}, "TELEMETRYFLOW_PROTOCOL", "expected one of: grpc"),
    (
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "expected one of: grpc, http",
    ),
    ({"TELEMETRYFLOW_EXPORTER": "jaeger"}, "TELEMETRYFLOW_EXPORTER", "otlp, console, none"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", "otlp, console, none"),
    ({"TELEMETRYFLOW_LOG_LEVEL": "verbose"}, "TELEMETRYFLOW_LOG_LEVEL", "expected one of"),
    ({"TELEMETRYFLOW_COMPRESSION": "brotli"}, "TELEMETRYFLOW_COMPRESSION", "gzip, none"),
    *[
        ({"TELEMETRYFLOW_ENDPOINT": bad}, "TELEMETRYFLOW_ENDPOINT", "expected host:port")
        for bad in (
            "host:port",
            "http://",
            "a b",
            "host:99999",
            "ftp://x:1",
            ":4317",
            "host:0",
            "host:",
            "collector:4317/v1",
        )
    ],
    (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://"},
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "expected host:port",
    ),
    (
        {"TELEMETRYFLOW_RESOURCE_ATTRIBUTES": "team"},
        "TELEMETRYFLOW_RESOURCE_ATTRIBUTES",
        "key=value",
    ),
    ({"OTEL_RESOURCE_ATTRIBUTES": "=shop"}, "OTEL_RESOURCE_ATTRIBUTES", "key=value"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "a=b,c"}, "OTEL_RESOURCE_ATTRIBUTES", "key=value"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "note=line%0Abreak"}, "OTEL_RESOURCE_ATTRIBUTES", "key=value"),
    (
        {"TELEMETRYFLOW_PROPAGATORS": "trace context!"},
        "TELEMETRYFLOW_PROPAGATORS",
        "comma-separated list of names",
    ),
    (
        {"TELEMETRYFLOW_EXCLUDED_URLS": "(unclosed"},
        "TELEMETRYFLOW_EXCLUDED_URLS",
        "regular expressions",
    ),
    (
        {"TELEMETRYFLOW_EXCLUDED_URLS": "a{4294967296}"},
        "TELEMETRYFLOW_EXCLUDED_URLS",
        "regular expressions",
    ),
    (
        {"TELEMETRYFLOW_EXCLUDED_URLS": "(" * 5000 + ")" * 5000},
        "TELEMETRYFLOW_EXCLUDED_URLS",
        "regular expressions",
    ),
    ({"TELEMETRYFLOW_SERVICE_NAME": "shop\x07"}, "TELEMETRYFLOW_SERVICE_NAME", "printable"),
    (
        {"TELEMETRYFLOW_BATCH_MAX_SIZE": "9" * 5000},
        "TELEMETRYFLOW_BATCH_MAX_SIZE",
        "whole number from 1 to",
    ),
]


@pytest.mark.parametrize(
    ("environ", "source", "expected"),
    MALFORMED,
    ids=[f"{s}={next(iter(e.values()))[:20]!r}" for e, s, _ in MALFORMED],
)
def test_malformed_value_is_one_problem_naming_variable_value_and_expectation(
    environ: dict[str, str], source: str, expected: str
) -> None:
    """A malformed value yields exactly one problem naming the variable, showing the value
    and saying what is accepted."""
    reading = read_environment(environ)
    assert [p.source for p in reading.problems] == [source]
    problem = reading.problems[0]
    raw = environ[source]
    if len(raw) <= 80:
        assert problem.shown_value == repr(raw)
    assert expected in problem.expected
    assert str(problem).startswith(f"{source}=")


@pytest.mark.parametrize("name", _ALL_NAMES)
def test_undecodable_bytes_are_reported_in_ascii(name: str) -> None:
    """A value that was not UTF-8 is a problem for every variable, shown escaped so that
    the message itself can always be printed."""
    environ = {name: _UNDECODABLE}
    if name == "OTEL_TRACES_SAMPLER_ARG":
        environ["OTEL_TRACES_SAMPLER"] = "traceidratio"
    reading = read_environment(environ)
    assert [p.source for p in reading.problems] == [name]
    text = str(reading.problems[0])
    assert text.isascii()
    assert _UNDECODABLE not in text


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("OTEL_RESOURCE_ATTRIBUTES", "team=" + _UNDECODABLE),
        ("OTEL_EXPORTER_OTLP_HEADERS", _UNDECODABLE + "=v"),
        ("TELEMETRYFLOW_ENDPOINT", "http://collector:4318/" + _UNDECODABLE),
        ("TELEMETRYFLOW_EXCLUDED_URLS", "/health," + _UNDECODABLE),
    ],
)
def test_undecodable_bytes_inside_structured_values_are_rejected(name: str, raw: str) -> None:
    """Undecodable bytes anywhere in a list, header or URL are reported, never exported."""
    reading = read_environment({name: raw})
    assert [p.source for p in reading.problems] == [name]
    assert str(reading.problems[0]).isascii()


def test_huge_value_is_shown_truncated() -> None:
    """A 10,000-character value is cut in the message, which still says how long it was."""
    reading = read_environment({"TELEMETRYFLOW_ENABLED": "x" * 10_000})
    (problem,) = reading.problems
    assert len(str(problem)) < 300
    assert "10000 chars" in problem.shown_value


def test_every_problem_is_collected_in_one_pass() -> None:
    """Five malformed variables give five problems, not just the first."""
    environ = {
        "TELEMETRYFLOW_ENABLED": "maybe",
        "TELEMETRYFLOW_TIMEOUT": "30s",
        "TELEMETRYFLOW_PROTOCOL": "grpcc",
        "TELEMETRYFLOW_ENDPOINT": "host:port",
        "TELEMETRYFLOW_SAMPLE_RATE": "1.5",
    }
    reading = read_environment(environ)
    assert sorted(p.source for p in reading.problems) == sorted(environ)


def test_malformed_telemetryflow_value_falls_back_to_otel_value() -> None:
    """When the TELEMETRYFLOW_* value is malformed, a good OTEL_* value is used instead."""
    config, reading = load_config(
        {
            "TELEMETRYFLOW_PROTOCOL": "grpcc",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "TELEMETRYFLOW_TIMEOUT": "30s",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
        }
    )
    assert config.protocol == "http"
    assert config.timeout == 3.0
    assert sorted(p.source for p in reading.problems) == [
        "TELEMETRYFLOW_PROTOCOL",
        "TELEMETRYFLOW_TIMEOUT",
    ]


_DEFAULTS = TelemetryConfig()


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"TELEMETRYFLOW_ENABLED": "maybe"}, "enabled"),
        ({"TELEMETRYFLOW_TIMEOUT": "30s"}, "timeout"),
        ({"TELEMETRYFLOW_PROTOCOL": "grpcc"}, "protocol"),
        ({"TELEMETRYFLOW_ENDPOINT": "host:port"}, "endpoint"),
        ({"TELEMETRYFLOW_SAMPLE_RATE": "1.5"}, "sample_rate"),
        ({"TELEMETRYFLOW_BATCH_MAX_SIZE": "-5"}, "batch_max_size"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "traces_exporter"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "sampler"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "resource_attributes"),
    ],
    ids=repr,
)
def test_malformed_value_falls_back_to_the_default(environ: dict[str, str], field: str) -> None:
    """The config keeps the field's default when its only variable is malformed."""
    config, reading = load_config(environ)
    assert len(reading.problems) == 1
    assert getattr(config, field) == getattr(_DEFAULTS, field)


# ----- secrets ----------------------------------------------------------------------------

_SECRET = "s3cr3t-VALUE-42"


@pytest.mark.parametrize(
    "raw",
    [
        _SECRET,
        f"tfs_{_SECRET}\x01",
        _UNDECODABLE + _SECRET,
        _SECRET * 500,
        f"tfs_{_SECRET} \x7f\x00",
    ],
)
def test_malformed_api_key_secret_never_appears_in_problem_text(raw: str) -> None:
    """However the secret is malformed, no character of it past the prefix is printed."""
    _, reading = load_config(
        {"TELEMETRYFLOW_API_KEY_ID": "tfk_id", "TELEMETRYFLOW_API_KEY_SECRET": raw}
    )
    assert any(p.source == "TELEMETRYFLOW_API_KEY_SECRET" for p in reading.problems)
    for problem in reading.problems:
        assert _SECRET not in str(problem)
        assert _SECRET not in repr(problem)


@pytest.mark.parametrize("name", ["TELEMETRYFLOW_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"])
def test_malformed_header_values_never_appear_in_problem_text(name: str) -> None:
    """A malformed header list is reported by key; the values stay hidden."""
    reading = read_environment({name: f"authorization=Bearer {_SECRET},oops{_SECRET}"})
    (problem,) = reading.problems
    assert problem.source == name
    assert _SECRET not in str(problem)
    assert "authorization=****" in problem.shown_value


def test_conflicting_header_values_never_appear_in_warnings() -> None:
    """Both header variables set and different gives a warning naming them, not their values."""
    environ = {
        "TELEMETRYFLOW_HEADERS": f"x-api-key={_SECRET}",
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key=other-{_SECRET}",
    }
    _, reading = load_config(environ)
    assert any(
        "TELEMETRYFLOW_HEADERS" in w and "OTEL_EXPORTER_OTLP_HEADERS" in w for w in reading.warnings
    )
    for message in [*reading.warnings, *map(str, reading.problems)]:
        assert _SECRET not in message


# ----- conflicts --------------------------------------------------------------------------


def test_differing_endpoints_warn_and_telemetryflow_wins() -> None:
    """TELEMETRYFLOW_ENDPOINT and OTEL_EXPORTER_OTLP_ENDPOINT set differently is a warning."""
    config, reading = load_config(
        {"TELEMETRYFLOW_ENDPOINT": "a:4317", "OTEL_EXPORTER_OTLP_ENDPOINT": "b:4317"}
    )
    assert config.endpoint == "a:4317"
    assert any(
        "TELEMETRYFLOW_ENDPOINT" in w and "OTEL_EXPORTER_OTLP_ENDPOINT" in w
        for w in reading.warnings
    )


def test_equal_endpoints_do_not_warn() -> None:
    """The same endpoint in both variables (modulo whitespace) is not a conflict."""
    _, reading = load_config(
        {"TELEMETRYFLOW_ENDPOINT": "a:4317", "OTEL_EXPORTER_OTLP_ENDPOINT": " a:4317 "}
    )
    assert reading.warnings == []


def test_enabled_and_sdk_disabled_disagreeing_warns() -> None:
    """TELEMETRYFLOW_ENABLED=true with OTEL_SDK_DISABLED=true warns; ours is used."""
    config, reading = load_config({"TELEMETRYFLOW_ENABLED": "true", "OTEL_SDK_DISABLED": "true"})
    assert config.enabled is True
    assert any("OTEL_SDK_DISABLED" in w for w in reading.warnings)


# ----- properties -------------------------------------------------------------------------

_VALUES = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=()), max_size=20),  # lone surrogates too
    st.binary(max_size=20).map(os.fsdecode),
    st.sampled_from(
        [
            "true",
            "0",
            "1.5",
            "-1",
            "30s",
            "grpc",
            "none",
            "a=b",
            "host:4317",
            "http://",
            "traceidratio",
            "tfk_x",
            "tfs_y",
            "(",
            "a{99999999999}",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(_ALL_NAMES), _VALUES, max_size=8))
def test_reader_never_raises_and_blames_only_variables_that_were_set(
    environ: dict[str, str],
) -> None:
    """For any values, reading never raises and every problem names a variable that was set,
    in a message that can be printed."""
    reading = read_environment(environ)
    for problem in reading.problems:
        assert problem.source in environ
        assert environ[problem.source].strip()
        str(problem).encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(_ALL_NAMES), _VALUES, max_size=8))
def test_load_config_never_raises(environ: dict[str, str]) -> None:
    """For any values, load_config returns a valid config and reports instead of raising."""
    config, reading = load_config(environ)
    assert isinstance(config, TelemetryConfig)
    credential_vars = {"TELEMETRYFLOW_API_KEY_ID", "TELEMETRYFLOW_API_KEY_SECRET"}
    assert {p.source for p in reading.problems} <= set(environ) | credential_vars


# ----- propagators, headers, certificates: checked when read ---------------------------------


@pytest.mark.parametrize("variable", ["TELEMETRYFLOW_PROPAGATORS", "OTEL_PROPAGATORS"])
@pytest.mark.parametrize("value", ["b3", "tracecontext,xray"])
def test_unknown_propagator_is_a_problem_naming_variable_and_name(
    variable: str, value: str
) -> None:
    """A propagator nobody installed is a problem of the variable that named it (the OTel
    API would raise on it at import), and the default propagators are used."""
    config, reading = load_config({variable: value})
    [problem] = reading.problems
    assert problem.source == variable
    assert f"propagator {value.split(',')[-1]} is not installed" in problem.expected
    assert config.propagators == ("tracecontext", "baggage")


def test_installed_propagator_entry_point_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name an installed package registers (opentelemetry_propagator entry point) is
    accepted, case-insensitively like the built-in ones."""
    import importlib.metadata

    point = importlib.metadata.EntryPoint("b3", "x:y", "opentelemetry_propagator")
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group: [point] if group == "opentelemetry_propagator" else [],
    )
    config, reading = load_config({"OTEL_PROPAGATORS": "TraceContext,B3"})
    assert reading.problems == []
    assert config.propagators == ("tracecontext", "b3")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("X Foo=v", "header name 'X Foo' is not valid"),
        ("x-tok=s\u20accret", "the value of header 'x-tok' is not valid: expected printable ASCII"),
        ("x-tok=s%E2%82%ACcret", "the value of header 'x-tok' is not valid"),
        ("x-tok=a\tb", "expected comma-separated key=value pairs"),
    ],
)
def test_invalid_header_is_a_problem_without_its_value(raw: str, expected: str) -> None:
    """A header name HTTP would refuse, or a value that is not printable ASCII, is a problem
    of the variable naming the header and never showing the value."""
    config, reading = load_config(
        {"OTEL_EXPORTER_OTLP_HEADERS": raw, "TELEMETRYFLOW_PROTOCOL": "http"}
    )
    [problem] = reading.problems
    assert problem.source == "OTEL_EXPORTER_OTLP_HEADERS"
    assert expected in problem.expected
    assert "cret" not in str(problem) and config.headers == ()


def test_grpc_refuses_header_names_http_accepts() -> None:
    """gRPC metadata names are stricter than HTTP's: ``x!y`` is fine over HTTP and a problem of
    the variable over gRPC, checked once the protocol is known."""
    config, reading = load_config(
        {"TELEMETRYFLOW_HEADERS": "x!y=1", "TELEMETRYFLOW_PROTOCOL": "http"}
    )
    assert reading.problems == [] and config.headers == (("x!y", "1"),)
    config, reading = load_config({"TELEMETRYFLOW_HEADERS": "x!y=1,Good=2"})
    [problem] = reading.problems
    assert problem.source == "TELEMETRYFLOW_HEADERS" and "not valid for gRPC" in problem.expected
    assert problem.shown_value == "x!y=****,Good=****"
    assert config.headers == ()


@pytest.mark.parametrize(
    "variable", ["TELEMETRYFLOW_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"]
)
def test_certificate_must_be_a_readable_pem_file(variable: str, tmp_path: Path) -> None:
    """A missing file, a directory or a file without PEM certificates is a problem of the
    variable that was set, found when read (not once per signal at the first export)."""
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a pem\n")
    for path, expected in (
        (tmp_path / "nope.pem", "expected the path of a readable PEM file"),
        (tmp_path, "expected the path of a readable PEM file"),
        (not_pem, "expected a PEM file of CA certificates"),
    ):
        config, reading = load_config({variable: str(path)})
        [problem] = reading.problems
        assert problem.source == variable and expected in problem.expected
        assert config.certificate_file is None


# ----- which value is used, what is not supported -------------------------------------------


def test_malformed_variable_names_the_fallback_used_instead() -> None:
    """A malformed TELEMETRYFLOW_* value with its OTEL_* fallback set says the fallback is
    used, and no "both set and differ; using TELEMETRYFLOW_*" warning contradicts it."""
    config, reading = load_config(
        {"TELEMETRYFLOW_ENDPOINT": "http://bad:port", "OTEL_EXPORTER_OTLP_ENDPOINT": "otel:4317"}
    )
    assert config.endpoint == "otel:4317"
    [problem] = reading.problems
    assert reading.outcome(problem) == "using OTEL_EXPORTER_OTLP_ENDPOINT instead"
    assert reading.warnings == []
    _, alone = load_config({"TELEMETRYFLOW_ENDPOINT": "http://bad:port"})
    assert alone.outcome(alone.problems[0]) == "using the default"


def test_honoured_standard_variables_are_not_named_as_unsupported() -> None:
    """The per-signal OTLP settings and OTEL_BLRP_* (the log queue's own batch settings)
    are honoured, so no warning names them; nothing is said when none is set."""
    reading = read_environment(
        {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://c:4318/v1/logs",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "a=b",
            "OTEL_BLRP_MAX_QUEUE_SIZE": "10",
        }
    )
    assert reading.warnings == []
    assert reading.values["log_max_queue_size"] == 10
    assert read_environment({}).warnings == []


# ----- per-signal OTLP settings: OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_* ------------------

# One good value per setting: raw text -> the parsed value (the all-signals parser's).
SIGNAL_GOOD: dict[str, tuple[str, Any]] = {
    "ENDPOINT": (" http://tempo:4318/v1/traces ", "http://tempo:4318/v1/traces"),
    "PROTOCOL": ("http/protobuf", "http"),
    "INSECURE": ("yes", True),
    "CERTIFICATE": (_OTEL_CA, _OTEL_CA),
    "HEADERS": ("x-scope-orgid=t%201, Authorization=Basic abc",
                (("x-scope-orgid", "t 1"), ("Authorization", "Basic abc"))),
    "COMPRESSION": ("none", "none"),
    "TIMEOUT": ("2500", 2.5),  # milliseconds, as OTEL_EXPORTER_OTLP_TIMEOUT
}
# The all-signals variable parsed the same way (TIMEOUT: the OTEL one, in milliseconds).
_SAME_PARSER = {
    "ENDPOINT": "TELEMETRYFLOW_ENDPOINT", "PROTOCOL": "TELEMETRYFLOW_PROTOCOL",
    "INSECURE": "TELEMETRYFLOW_INSECURE", "CERTIFICATE": "TELEMETRYFLOW_CERTIFICATE",
    "HEADERS": "TELEMETRYFLOW_HEADERS", "COMPRESSION": "TELEMETRYFLOW_COMPRESSION",
    "TIMEOUT": "OTEL_EXPORTER_OTLP_TIMEOUT",
}
SIGNAL_BAD: dict[str, list[str]] = {
    "ENDPOINT": ["http://bad:port", "ftp://h:1", "h:4318/v1/traces", "http://h:1/?a=b"],
    "PROTOCOL": ["http/json", "udp"],
    "INSECURE": ["sure"],
    "CERTIFICATE": ["/nonexistent/ca.pem", str(Path(__file__))],
    "HEADERS": ["novalue", "X Foo=v", "x-tok=s\u20accret"],
    "COMPRESSION": ["zstd"],
    "TIMEOUT": ["10s", "0", "-5", "1e99"],
}


def _suffix(var: Any) -> str:
    return var.name.rsplit("_", 1)[1]


def test_per_signal_table_has_every_signal_and_setting() -> None:
    """Seven settings for each of the three signals, named as OpenTelemetry names them."""
    names = {v.name for v in SIGNAL_VARIABLES}
    assert names == {f"OTEL_EXPORTER_OTLP_{signal}_{setting}"
                     for signal in ("TRACES", "METRICS", "LOGS") for setting in SIGNAL_GOOD}


@pytest.mark.parametrize("var", SIGNAL_VARIABLES, ids=lambda v: v.name)
def test_per_signal_variable_parses_a_good_value(var: Any) -> None:
    """A good value of each per-signal variable is read, normalised as the all-signals one
    would be, sourced from it, and ends up in that signal's overrides only."""
    raw, expected = SIGNAL_GOOD[_suffix(var)]
    reading = read_environment({var.name: raw})
    assert reading.problems == [] and reading.warnings == []
    assert reading.values[var.field] == expected
    assert reading.sources[var.field] == var.name
    config, _ = load_config({var.name: raw})
    group, _, setting = var.field.partition(".")
    assert getattr(getattr(config, group), setting) == expected
    others = {g for g in ("traces_otlp", "metrics_otlp", "logs_otlp") if g != group}
    assert all(getattr(config, other).given() == () for other in others)


@pytest.mark.parametrize("var", SIGNAL_VARIABLES, ids=lambda v: v.name)
def test_per_signal_variable_is_as_strict_as_the_all_signals_one(var: Any) -> None:
    """Each bad value is one problem naming the per-signal variable, saying exactly what the
    all-signals variable's message says for the same value; the setting is not applied."""
    for raw in SIGNAL_BAD[_suffix(var)]:
        reading = read_environment({var.name: raw})
        [problem] = reading.problems
        assert problem.source == var.name
        same = read_environment({_SAME_PARSER[_suffix(var)]: raw}).problems
        assert [problem.expected] == [p.expected for p in same], raw
        assert var.field not in reading.values


@pytest.mark.parametrize("var", SIGNAL_VARIABLES, ids=lambda v: v.name)
@pytest.mark.parametrize("raw", ["", "   "], ids=["empty", "blank"])
def test_empty_per_signal_value_counts_as_unset(var: Any, raw: str) -> None:
    """An empty per-signal value is unset: the all-signals setting applies to the signal."""
    reading = read_environment({var.name: raw})
    assert reading.problems == [] and var.field not in reading.values


@pytest.mark.parametrize("signal", ["TRACES", "METRICS", "LOGS"])
def test_per_signal_secrets_are_redacted_in_problems(signal: str) -> None:
    """A rejected per-signal header list shows the header names, never a value; a rejected
    per-signal endpoint never shows its password."""
    reading = read_environment({
        f"OTEL_EXPORTER_OTLP_{signal}_HEADERS": "authorization=Bearer s3cr3t,bad",
        f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT": "http://user:pa55w0rd@host:port",
    })
    assert len(reading.problems) == 2
    text = " ".join(str(problem) for problem in reading.problems)
    assert "s3cr3t" not in text and "pa55w0rd" not in text
    assert f"OTEL_EXPORTER_OTLP_{signal}_HEADERS=authorization=****,****" in text
    assert f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT='http://****@host:port'" in text


def test_rejected_per_signal_value_says_which_setting_is_used_instead() -> None:
    """A malformed per-signal value falls back to the all-signals setting for that signal,
    and the message names the variable that set it (or the default when none did)."""
    _, reading = load_config({
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://bad:port",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "5s",
    })
    outcomes = {p.source: reading.outcome(p) for p in reading.problems}
    assert outcomes == {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "using OTEL_EXPORTER_OTLP_ENDPOINT instead",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "using the default",
    }
