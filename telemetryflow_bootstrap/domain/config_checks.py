"""Checks of a configuration read from the environment that no single variable's parser can
make, because they depend on other settings (the protocol, the endpoint's scheme, which
variable set a value): each adds a problem or a warning to the reading (stdlib only)."""

from __future__ import annotations

from . import parsers, per_signal
from .environment import EnvironmentReading, show_value
from .errors import Problem
from .signals import ExporterKind, Protocol, SignalType

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from .config import TelemetryConfig


def grpc_header_names(config: TelemetryConfig, reading: EnvironmentReading) -> TelemetryConfig:
    """gRPC metadata names are stricter than HTTP header names (lower-case letters, digits,
    ``-_.``; we lower-case them): a name gRPC refuses fails every export, so it is a problem
    of the headers variable, found here since only here the protocol is known. Checked per
    signal (each may have its own headers and protocol): each variable is named once, and
    the signals that would send its headers over gRPC send none."""
    refused: dict[SignalType, str] = {}  # signal -> the variable of its refused headers
    for signal in per_signal.SIGNALS:
        view = config.for_signal(signal)
        name = _invalid_grpc_name(view) if view.protocol is Protocol.GRPC else None
        if name is None:
            continue
        if config.overrides(signal).headers is not None:
            source = per_signal.variable(signal, "headers")
        else:
            source = reading.sources.get("headers", "TELEMETRYFLOW_HEADERS")
        if source not in refused.values():
            reading.problems.append(
                Problem(
                    source,
                    show_value(
                        ",".join(f"{k}={v}" for k, v in view.headers), secret=True, name=source
                    ),
                    f"header name {name!r} is not valid for gRPC: expected letters, digits, "
                    "'-', '_' and '.'",
                )
            )
        refused[signal] = source
    if not refused:
        return config
    if len(refused) == len(per_signal.SIGNALS) and not config.has_overrides:
        return config.replace(headers=())  # (the usual case: one protocol for all)
    return config.replace(
        **{
            per_signal.group(signal): config.overrides(signal).replace(headers=())
            for signal in refused
        }
    )


def _invalid_grpc_name(config: TelemetryConfig) -> str | None:
    return next(
        (
            key
            for key, _value in config.headers
            if not parsers.GRPC_METADATA_NAME.fullmatch(key.lower())
        ),
        None,
    )


def cross_field_warnings(config: TelemetryConfig, reading: EnvironmentReading) -> None:
    warnings: dict[str, None] = {}  # (one line for what several signals share)
    for signal in per_signal.SIGNALS:
        view, own = config.for_signal(signal), config.overrides(signal)
        if (view.endpoint or "").lower().startswith("https://") and view.insecure:
            source = (
                per_signal.variable(signal, "insecure")
                if own.insecure is not None
                else reading.sources.get("insecure", "insecure")
            )
            where = (
                per_signal.variable(signal, "endpoint")
                if own.endpoint is not None
                else "the endpoint"
            )
            warnings[f"{source}=true is ignored: {where} says https://, so exports use TLS"] = None
    if config.exporter is ExporterKind.OTLP and config.endpoint is None:
        missing = [s.value for s in per_signal.SIGNALS if config.overrides(s).endpoint is None]
        where = "" if len(missing) == len(per_signal.SIGNALS) else f" for {', '.join(missing)}"
        if missing:
            warnings[
                f"TELEMETRYFLOW_EXPORTER=otlp but no endpoint is set{where}; sending to localhost"
            ] = None
    warnings.update(dict.fromkeys(_overridden_on_purpose(config, reading)))
    reading.warnings.extend(warnings)


def _overridden_on_purpose(config: TelemetryConfig, reading: EnvironmentReading) -> list[str]:
    """A TELEMETRYFLOW_* setting (which the launcher's options set: ``--endpoint``) that a
    per-signal OTEL_* variable overrides for some signal, with a different value. The more
    specific variable wins, as under opentelemetry-instrument, but someone who typed
    ``--endpoint`` expects every signal to go there: say it once at start-up rather than
    let one signal go elsewhere without a word. (The all-signals OTEL_EXPORTER_OTLP_*
    variables say nothing: per-signal overrides of them are OpenTelemetry's own rule.)"""
    lines = []
    for setting, (_suffix, ours) in per_signal.SETTINGS.items():
        if reading.sources.get(setting) != ours:
            continue
        names, signals = [], []
        for signal in per_signal.SIGNALS:
            name = per_signal.variable(signal, setting)
            if reading.sources.get(f"{per_signal.group(signal)}.{setting}") != name:
                continue
            own = config.overrides(signal)
            if setting == "endpoint":
                without = config.replace(
                    **{per_signal.group(signal): own.replace(endpoint=None)}
                )
                differs = without.export_target(signal) != config.export_target(signal)
            else:
                differs = getattr(own, setting) not in (None, getattr(config, setting))
            if differs:
                names.append(name)
                signals.append(signal.value)
        if names:
            verb = "overrides" if len(names) == 1 else "override"
            lines.append(
                f"{', '.join(names)} {verb} {ours} for {', '.join(signals)}: a per-signal "
                "variable is more specific (telemetryflow-run --info shows each signal's "
                "settings)"
            )
    return lines
