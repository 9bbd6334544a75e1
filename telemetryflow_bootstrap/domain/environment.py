"""The one table of environment variables, and the reader that applies it (stdlib only).

This table is the single source for the configuration, the builder's
``with_auto_configuration()``, the launcher's validation and ``--help``, ``--info`` and the
README table. ``TELEMETRYFLOW_*`` wins over the ``OTEL_*`` fallbacks where both are set; an
empty value counts as unset (as the OpenTelemetry specification says). The per-signal OTLP
variables (``SIGNAL_VARIABLES``, see ``per_signal``) win over both, for their signal only,
and so do the log queue's ``OTEL_BLRP_*`` batch settings (``BATCH_VARIABLES``, see
``signal_batches``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import parsers as p
from . import per_signal, signal_batches
from ._values import FrozenValue, Record
from .credentials import redact_secret
from .errors import Problem
from .redaction import redact_url

_MAX_SHOWN = 80


class Variable(FrozenValue):
    """One supported environment variable and the config field it feeds (a frozen value
    object: ``_values``)."""

    _FIELDS = ("name", "field", "parse", "default", "help", "fallbacks", "secret")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS

    def __init__(self, name: str, field: str, parse: p.Parser, default: str, help: str,
                 fallbacks: tuple[str, ...] = (), secret: bool = False) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "field", field)
        _set(self, "parse", parse)
        _set(self, "default", default)
        _set(self, "help", help)
        _set(self, "fallbacks", fallbacks)
        _set(self, "secret", secret)


def _v(
    name: str,
    fld: str,
    parse: p.Parser,
    default: str,
    help: str,
    *fallbacks: str,
    secret: bool = False,
) -> Variable:
    return Variable(name, fld, parse, default, help, tuple(fallbacks), secret)


_bool = p.parse_bool
_ms = p.integer(minimum=0, unit="milliseconds")
_protocol = p.choice("grpc", "http", aliases={"http/protobuf": "http"})
_compression = p.choice("gzip", "none", aliases={"true": "gzip", "false": "none"})
_OVERRIDE = "; a signal's own OTEL_EXPORTER_OTLP_{{TRACES,METRICS,LOGS}}_{} wins for it"

VARIABLES: tuple[Variable, ...] = (
    _v(
        "TELEMETRYFLOW_ENABLED",
        "enabled",
        _bool,
        "true",
        "false runs the program with nothing injected (also OTEL_SDK_DISABLED=true)",
    ),
    _v(
        "TELEMETRYFLOW_STRICT",
        "strict",
        _bool,
        "false",
        "true makes any configuration problem fatal (the launcher exits 2)",
    ),
    _v(
        "TELEMETRYFLOW_API_KEY_ID",
        "api_key_id",
        p.text,
        "(none)",
        "TelemetryFlow API key id (tfk_...); not needed for a plain OpenTelemetry Collector",
    ),
    _v(
        "TELEMETRYFLOW_API_KEY_SECRET",
        "api_key_secret",
        p.text,
        "(none)",
        "TelemetryFlow API key secret (tfs_...); never printed",
        secret=True,
    ),
    _v(
        "TELEMETRYFLOW_COLLECTOR_ID",
        "collector_id",
        p.text,
        "(none)",
        "sent as X-TelemetryFlow-Collector-ID with every export",
    ),
    _v(
        "TELEMETRYFLOW_ENDPOINT",
        "endpoint",
        p.endpoint,
        "(none: print to stderr)",
        "OTLP endpoint of all signals: host:port, http://host:port or https://host:port "
        "(no port: OTLP's 4317/4318 after a bare host, the URL's 443/80 after https:// or "
        "http://, as in OpenTelemetry's SDKs)"
        + _OVERRIDE.format("ENDPOINT"),
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ),
    _v(
        "TELEMETRYFLOW_PROTOCOL",
        "protocol",
        _protocol,
        "grpc",
        "OTLP transport: grpc or http (HTTP/protobuf)" + _OVERRIDE.format("PROTOCOL"),
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ),
    _v(
        "TELEMETRYFLOW_INSECURE",
        "insecure",
        _bool,
        "false (true for http:// endpoints)",
        "true sends without TLS" + _OVERRIDE.format("INSECURE"),
        "OTEL_EXPORTER_OTLP_INSECURE",
    ),
    _v(
        "TELEMETRYFLOW_CERTIFICATE",
        "certificate_file",
        p.pem_file,
        "(system CAs)",
        "CA bundle (PEM file) to verify the endpoint with" + _OVERRIDE.format("CERTIFICATE"),
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ),
    _v(
        "TELEMETRYFLOW_HEADERS",
        "headers",
        p.header_list,
        "(none)",
        "extra export headers, key=value,key2=value2 (values never printed)"
        + _OVERRIDE.format("HEADERS"),
        "OTEL_EXPORTER_OTLP_HEADERS",
        secret=True,
    ),
    _v(
        "TELEMETRYFLOW_SERVICE_NAME",
        "service_name",
        p.text,
        "(the program's name)",
        "service.name of everything this program reports",
        "OTEL_SERVICE_NAME",
    ),
    _v("TELEMETRYFLOW_SERVICE_VERSION", "service_version", p.text, "(none)", "service.version"),
    _v(
        "TELEMETRYFLOW_SERVICE_NAMESPACE",
        "service_namespace",
        p.text,
        "(none)",
        "service.namespace",
    ),
    _v(
        "TELEMETRYFLOW_ENVIRONMENT",
        "environment",
        p.text,
        "(none)",
        "deployment.environment, e.g. production",
    ),
    _v(
        "TELEMETRYFLOW_RESOURCE_ATTRIBUTES",
        "resource_attributes",
        p.key_value_list,
        "(none)",
        "extra resource attributes, key=value,key2=value2",
        "OTEL_RESOURCE_ATTRIBUTES",
    ),
    _v(
        "TELEMETRYFLOW_EXPORTER",
        "exporter",
        p.choice("otlp", "console", "none"),
        "otlp (console when no endpoint is set)",
        "where telemetry goes: otlp, console (stderr) or none",
    ),
    _v(
        "TELEMETRYFLOW_CONSOLE_FORMAT",
        "console_format",
        p.choice("text", "json"),
        "text",
        "console exporter output: one compact line per item, or OTLP-JSON lines",
    ),
    _v(
        "TELEMETRYFLOW_COMPRESSION",
        "compression",
        _compression,
        "gzip",
        "export compression: gzip or none" + _OVERRIDE.format("COMPRESSION"),
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ),
    _v(
        "TELEMETRYFLOW_TIMEOUT",
        "timeout",
        p.seconds(),
        "10",
        "export timeout in seconds (OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds)"
        + _OVERRIDE.format("TIMEOUT"),
    ),
    _v(
        "TELEMETRYFLOW_BATCH_TIMEOUT",
        "batch_timeout_ms",
        _ms,
        "5000",
        "longest a finished span/log waits before export, in milliseconds; "
        "OTEL_BLRP_SCHEDULE_DELAY wins for logs",
        "OTEL_BSP_SCHEDULE_DELAY",
    ),
    _v(
        "TELEMETRYFLOW_BATCH_MAX_SIZE",
        "batch_max_size",
        p.integer(minimum=1),
        "512",
        "most items in one export; OTEL_BLRP_MAX_EXPORT_BATCH_SIZE wins for logs",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    ),
    _v(
        "TELEMETRYFLOW_MAX_QUEUE_SIZE",
        "max_queue_size",
        p.integer(minimum=1),
        "2048",
        "most items buffered per signal; beyond it items are dropped and counted; "
        "OTEL_BLRP_MAX_QUEUE_SIZE wins for logs",
        "OTEL_BSP_MAX_QUEUE_SIZE",
    ),
    _v(
        "TELEMETRYFLOW_METRIC_EXPORT_INTERVAL",
        "metric_export_interval_ms",
        p.integer(minimum=1, unit="milliseconds"),
        "60000",
        "how often metrics are exported, in milliseconds",
        "OTEL_METRIC_EXPORT_INTERVAL",
    ),
    _v(
        "TELEMETRYFLOW_METRICS_TEMPORALITY",
        "metrics_temporality",
        p.choice("cumulative", "delta", "lowmemory"),
        "cumulative",
        "what metric points carry: cumulative running totals, or delta (the change since the "
        "last export) for counters and histograms, as Dynatrace and other backends require; "
        "lowmemory: delta for synchronous counters and histograms only",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    ),
    _v(
        "TELEMETRYFLOW_HISTOGRAM_AGGREGATION",
        "histogram_aggregation",
        p.choice("explicit_bucket_histogram", "base2_exponential_bucket_histogram"),
        "explicit_bucket_histogram",
        "how histograms are aggregated: fixed buckets, or base-2 exponential buckets",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
    ),
    _v("TELEMETRYFLOW_ENABLE_TRACES", "enable_traces", _bool, "true", "export traces"),
    _v("TELEMETRYFLOW_ENABLE_METRICS", "enable_metrics", _bool, "true", "export metrics"),
    _v("TELEMETRYFLOW_ENABLE_LOGS", "enable_logs", _bool, "true", "export logs"),
    _v(
        "TELEMETRYFLOW_SAMPLE_RATE",
        "sample_rate",
        p.ratio,
        "1.0",
        "share of new traces recorded, 0..1 (children follow their parent)",
    ),
    _v(
        "TELEMETRYFLOW_PROPAGATORS",
        "propagators",
        p.propagator_names,
        "tracecontext,baggage",
        "context propagation formats",
        "OTEL_PROPAGATORS",
    ),
    _v(
        "TELEMETRYFLOW_SHUTDOWN_TIMEOUT",
        "shutdown_timeout",
        p.seconds(),
        "5",
        "longest the program's exit waits for the last export, in seconds",
    ),
    _v(
        "TELEMETRYFLOW_LOG_LEVEL",
        "log_level",
        p.log_level,
        "warn",
        "telemetryflow's own messages on stderr: debug, info, warn, error or off",
    ),
    _v(
        "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS",
        "disabled_instrumentations",
        p.name_list,
        "(none)",
        "instrumentations not to apply, e.g. requests,flask; an unknown name is reported "
        "(not one read from the OTEL variable)",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    ),
    _v(
        "TELEMETRYFLOW_EXCLUDED_URLS",
        "excluded_urls",
        p.regex_list,
        "(none)",
        "comma-separated regular expressions of URLs not traced (health checks)",
        "OTEL_PYTHON_EXCLUDED_URLS",
    ),
    _v(
        "TELEMETRYFLOW_PREFER_CONTRIB",
        "prefer_contrib",
        p.name_list,
        "(none)",
        "libraries for which an installed OpenTelemetry contrib instrumentor is used instead",
    ),
    _v(
        "TELEMETRYFLOW_LOG_EXPORT_LEVEL",
        "log_export_level",
        p.choice("debug", "info", "warning", "error", "critical", aliases={"warn": "warning"}),
        "info",
        "lowest logging/loguru level exported as OpenTelemetry logs",
    ),
    _v(
        "TELEMETRYFLOW_LOG_CORRELATION",
        "log_correlation",
        _bool,
        "false",
        "add trace ids to the format of logging.basicConfig()",
    ),
    _v(
        "TELEMETRYFLOW_RUNTIME_METRICS",
        "runtime_metrics",
        _bool,
        "true",
        "process and CPython runtime metrics",
    ),
    _v(
        "TELEMETRYFLOW_PROCESS_SPAN",
        "process_span",
        _bool,
        "(true for non-server programs)",
        "a span around the whole run of a script",
    ),
    _v(
        "TELEMETRYFLOW_DB_COMMENTER",
        "db_commenter",
        _bool,
        "false",
        "append a traceparent SQL comment to statements",
    ),
    _v(
        "TELEMETRYFLOW_REDIS_CAPTURE_ARGS",
        "redis_capture_args",
        _bool,
        "false",
        "record Redis command arguments instead of '?'",
    ),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}

# The per-signal OTLP settings (see ``per_signal``): parsed exactly as the all-signals
# variables are, each into the ``<signal>_otlp.<setting>`` key of the reading.
_SIGNAL_PARSERS: dict[str, p.Parser] = {
    "endpoint": p.endpoint,
    "protocol": _protocol,
    "insecure": _bool,
    "certificate_file": p.pem_file,
    "headers": p.header_list,
    "compression": _compression,
    "timeout": p.seconds(from_unit="milliseconds"),
}
SIGNAL_VARIABLES: tuple[Variable, ...] = tuple(
    Variable(
        per_signal.variable(signal, setting),
        f"{per_signal.group(signal)}.{setting}",
        _SIGNAL_PARSERS[setting],
        f"(the all-signals {ours})",
        f"{signal.value} only, over {ours}",
        secret=setting == "headers",
    )
    for signal in per_signal.SIGNALS
    for setting, (_suffix, ours) in per_signal.SETTINGS.items()
)

# The batch processors' own OpenTelemetry variables (see ``signal_batches``), each for one
# signal only: parsed exactly as the shared batch variable (or the OTLP timeout) it refines.
_ms_timeout = p.seconds(from_unit="milliseconds")
BATCH_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "OTEL_BLRP_SCHEDULE_DELAY",
        "log_batch_timeout_ms",
        _ms,
        "(TELEMETRYFLOW_BATCH_TIMEOUT's)",
        "longest a log record waits before export, in milliseconds; over "
        "TELEMETRYFLOW_BATCH_TIMEOUT, for logs only",
    ),
    Variable(
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        "log_batch_max_size",
        p.integer(minimum=1),
        "(TELEMETRYFLOW_BATCH_MAX_SIZE's)",
        "most log records in one export; over TELEMETRYFLOW_BATCH_MAX_SIZE, for logs only",
    ),
    Variable(
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        "log_max_queue_size",
        p.integer(minimum=1),
        "(TELEMETRYFLOW_MAX_QUEUE_SIZE's)",
        "most log records buffered, beyond it they are dropped and counted; over "
        "TELEMETRYFLOW_MAX_QUEUE_SIZE, for logs only",
    ),
    Variable(
        "OTEL_BSP_EXPORT_TIMEOUT",
        "span_export_timeout",
        _ms_timeout,
        "(none)",
        "longest one export of spans may take, in milliseconds; the traces export timeout "
        "(OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, else TELEMETRYFLOW_TIMEOUT) applies too: the "
        "shorter wins",
    ),
    Variable(
        "OTEL_BLRP_EXPORT_TIMEOUT",
        "log_export_timeout",
        _ms_timeout,
        "(none)",
        "longest one export of log records may take, in milliseconds; the logs export timeout "
        "(OTEL_EXPORTER_OTLP_LOGS_TIMEOUT, else TELEMETRYFLOW_TIMEOUT) applies too: the "
        "shorter wins",
    ),
)

# Standard OpenTelemetry variables read with their own rules (not a 1:1 fallback).
OTEL_SPECIAL: tuple[tuple[str, str], ...] = (
    ("OTEL_SDK_DISABLED", "true disables everything, like TELEMETRYFLOW_ENABLED=false"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "export timeout in milliseconds"),
    ("OTEL_TRACES_SAMPLER", "always_on, always_off, traceidratio, parentbased_*"),
    ("OTEL_TRACES_SAMPLER_ARG", "the ratio for the *traceidratio samplers"),
    ("OTEL_TRACES_EXPORTER", "otlp, console or none for traces"),
    ("OTEL_METRICS_EXPORTER", "otlp, console or none for metrics"),
    ("OTEL_LOGS_EXPORTER", "otlp, console or none for logs"),
    # (the per-signal variables, one row per setting: `--help` and the README table)
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT",
     "that signal's endpoint, over TELEMETRYFLOW_ENDPOINT; for OTLP/HTTP the full URL, used as "
     "is (no /v1/traces etc. appended); alone it sends that signal over OTLP, the others keep "
     "their setting (the console when no endpoint is set)"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_HEADERS",
     "that signal's headers, replacing (not merged with) TELEMETRYFLOW_HEADERS for it; the "
     "API key's headers still go with every signal"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL", "that signal's transport, over "
     "TELEMETRYFLOW_PROTOCOL"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_CERTIFICATE", "that signal's CA bundle, over "
     "TELEMETRYFLOW_CERTIFICATE"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_INSECURE", "that signal's TLS switch, over "
     "TELEMETRYFLOW_INSECURE"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_COMPRESSION", "that signal's compression, over "
     "TELEMETRYFLOW_COMPRESSION"),
    ("OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_TIMEOUT", "that signal's export timeout in "
     "milliseconds, over TELEMETRYFLOW_TIMEOUT"),
    # (the batch processors' own, see BATCH_VARIABLES)
    *((var.name, var.help) for var in BATCH_VARIABLES),
)

_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
_SIGNAL_EXPORTER = p.choice("otlp", "console", "none")

# Standard variables other OpenTelemetry distributions honour and we do not: each is named
# when set (opentelemetry-instrument users would otherwise lose data without a word), with
# the setting that does the job here. (None at present: the batch processors' OTEL_BLRP_*
# and OTEL_BSP_EXPORT_TIMEOUT are honoured, see ``signal_batches``.)
UNSUPPORTED: tuple[tuple[tuple[str, ...], str], ...] = ()


def _tame(raw: str) -> str:
    """ASCII only (undecodable bytes arrive as surrogates and must not reach a log line), and
    cut to a readable length."""
    safe = raw.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    if len(safe) > _MAX_SHOWN:
        safe = safe[:_MAX_SHOWN] + f"...({len(raw)} chars)"
    return safe


def show_value(raw: str, *, secret: bool = False, name: str = "") -> str:
    """A raw value as it may appear in a message: secrets redacted, length and bytes tamed."""
    if secret:
        if name.endswith("HEADERS"):
            parts = [part.partition("=") for part in raw.split(",") if part.strip()]
            return _tame(
                ",".join(f"{key.strip()}=****" if sep else "****" for key, sep, _ in parts)
            )
        return redact_secret(raw.strip())
    return repr(_tame(redact_url(raw)))


class EnvironmentReading(Record):
    """What the environment says: parsed values, where each came from, and every problem;
    ``replaced_by``: a rejected variable -> the fallback read in its place (e.g.
    OTEL_EXPORTER_OTLP_ENDPOINT). (A mutable record, see ``_values``.)"""

    _FIELDS = ("values", "sources", "problems", "warnings", "replaced_by")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS

    def __init__(self, values: dict[str, Any] | None = None,
                 sources: dict[str, str] | None = None, problems: list[Problem] | None = None,
                 warnings: list[str] | None = None,
                 replaced_by: dict[str, str] | None = None) -> None:
        self.values = {} if values is None else values
        self.sources = {} if sources is None else sources
        self.problems = [] if problems is None else problems
        self.warnings = [] if warnings is None else warnings
        self.replaced_by = {} if replaced_by is None else replaced_by

    def outcome(self, problem: Problem) -> str:
        """What is used instead of ``problem``'s value, as its message ends: the default, or
        the OpenTelemetry fallback that was read in its place."""
        instead = self.replaced_by.get(problem.source)
        return f"using {instead} instead" if instead else "using the default"


def _get(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    return raw


def _read_one(
    reading: EnvironmentReading,
    environ: Mapping[str, str],
    name: str,
    fld: str,
    parse: p.Parser,
    secret: bool,
) -> bool:
    raw = _get(environ, name)
    if raw is None:
        return False
    try:
        value = parse(raw)
    except ValueError as exc:
        reading.problems.append(Problem(name, show_value(raw, secret=secret, name=name), str(exc)))
        return False
    reading.values[fld] = value
    reading.sources[fld] = name
    return True


def read_environment(environ: Mapping[str, str]) -> EnvironmentReading:
    """Parse every supported variable; never raises, collects every problem."""
    reading = EnvironmentReading()
    for var in VARIABLES:
        rejected: list[str] = []
        for name in (var.name, *var.fallbacks):
            if _read_one(reading, environ, name, var.field, var.parse, var.secret):
                reading.replaced_by.update(dict.fromkeys(rejected, name))
                break
            if _get(environ, name) is not None:
                rejected.append(name)
    _read_otel_specials(reading, environ)
    _read_per_signal(reading, environ)
    _read_batch_variables(reading, environ)
    _check_conflicts(reading, environ)
    _name_unsupported(reading, environ)
    return reading


def _read_per_signal(reading: EnvironmentReading, environ: Mapping[str, str]) -> None:
    """After the all-signals settings (a rejected per-signal value falls back to them, and
    its message says which variable that is)."""
    for var in SIGNAL_VARIABLES:
        if _read_one(reading, environ, var.name, var.field, var.parse, var.secret):
            continue
        instead = reading.sources.get(var.field.partition(".")[2])
        if instead is not None and _get(environ, var.name) is not None:
            reading.replaced_by[var.name] = instead


def _read_batch_variables(reading: EnvironmentReading, environ: Mapping[str, str]) -> None:
    """After the shared settings: a rejected OTEL_BLRP_* value leaves the log queue with the
    shared one, and its message names the variable that set that (when one did)."""
    for var in BATCH_VARIABLES:
        if _read_one(reading, environ, var.name, var.field, var.parse, var.secret):
            continue
        shared = signal_batches.LOG_SETTINGS.get(var.field)
        instead = reading.sources.get(shared[1]) if shared is not None else None
        if instead is not None and _get(environ, var.name) is not None:
            reading.replaced_by[var.name] = instead


def _name_unsupported(reading: EnvironmentReading, environ: Mapping[str, str]) -> None:
    for names, instead in UNSUPPORTED:
        given = [name for name in names if _get(environ, name) is not None]
        if given:
            verb = "is" if len(given) == 1 else "are"
            reading.warnings.append(
                f"{', '.join(given)} {verb} not supported by telemetryflow and ignored; "
                f"use {instead}"
            )


def _read_otel_specials(reading: EnvironmentReading, environ: Mapping[str, str]) -> None:
    disabled = EnvironmentReading()
    read = _read_one(disabled, environ, "OTEL_SDK_DISABLED", "x", p.parse_bool, False)
    if read and "enabled" not in reading.values and disabled.values["x"]:
        reading.values["enabled"] = False
        reading.sources["enabled"] = "OTEL_SDK_DISABLED"
    reading.problems.extend(disabled.problems)

    if "timeout" not in reading.values:
        _read_one(
            reading,
            environ,
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "timeout",
            p.seconds(from_unit="milliseconds"),
            False,
        )

    sampler = EnvironmentReading()
    if "sample_rate" not in reading.values and _read_one(
        sampler, environ, "OTEL_TRACES_SAMPLER", "sampler", p.choice(*_SAMPLERS), False
    ):
        reading.values["sampler"] = sampler.values["sampler"]
        reading.sources["sampler"] = "OTEL_TRACES_SAMPLER"
        if sampler.values["sampler"].endswith("traceidratio"):
            _read_one(reading, environ, "OTEL_TRACES_SAMPLER_ARG", "sample_rate", p.ratio, False)
    reading.problems.extend(sampler.problems)

    for signal in ("traces", "metrics", "logs"):
        name = f"OTEL_{signal.upper()}_EXPORTER"
        raw = _get(environ, name)
        if raw is not None and "," in raw:
            raw = raw.split(",")[0]  # several exporters per signal: we honour the first
        if raw is not None:
            _read_one(reading, {name: raw}, name, f"{signal}_exporter", _SIGNAL_EXPORTER, False)


def _check_conflicts(reading: EnvironmentReading, environ: Mapping[str, str]) -> None:
    for var in VARIABLES:
        for fallback in var.fallbacks:
            ours, theirs = _get(environ, var.name), _get(environ, fallback)
            if var.name in reading.replaced_by or fallback in reading.replaced_by:
                continue  # (the problem's line says which one is used)
            if ours is not None and theirs is not None and ours.strip() != theirs.strip():
                reading.warnings.append(
                    f"{var.name} and {fallback} are both set and differ; using {var.name}"
                )
    if "enabled" in reading.values and _get(environ, "OTEL_SDK_DISABLED") is not None:
        ours = reading.values["enabled"]
        try:
            theirs = not p.parse_bool(environ["OTEL_SDK_DISABLED"])
        except ValueError:
            return
        if ours != theirs:
            reading.warnings.append(
                "TELEMETRYFLOW_ENABLED and OTEL_SDK_DISABLED disagree; using TELEMETRYFLOW_ENABLED"
            )


def markdown_table() -> str:
    """The README's table of variables, generated so it never drifts from the parser."""
    rows = ["| Variable | Default | OpenTelemetry fallback | Meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        fallbacks = ", ".join(f"`{name}`" for name in var.fallbacks)
        rows.append(f"| `{var.name}` | {var.default} | {fallbacks} | {var.help} |")
    for name, help_text in OTEL_SPECIAL:
        rows.append(f"| `{name}` | | | {help_text} |")
    return "\n".join(rows)
