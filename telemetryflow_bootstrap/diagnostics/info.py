"""What ``telemetryflow-run --info`` reports: versions, the resolved configuration with the
source of every value, every warning, and what the hook would do for each instrumentation.

The report describes the *program's* environment (what the launcher would exec with, options
applied), computed with the same stdlib-only reader the launcher and the hook use, so it can
never disagree with them. It runs in the launcher's Python: the library versions and states
are those of that environment (``doctor -- PYTHON`` checks another interpreter). What a
running program actually patched is ``registry.status()`` inside that program.

Per-signal OTLP settings (``OTEL_EXPORTER_OTLP_<SIGNAL>_*``) are rows of their own, the
all-signals row they override says for which signal it no longer applies, and the Export
section gives each signal's protocol, destination and TLS with the variables that set them:
an ``--endpoint`` typed on the command line that a per-signal variable overrides for one
signal is visible at a glance. The log queue's own batch settings (``OTEL_BLRP_*``) and the
batch processors' export timeouts are shown the same way (see ``domain.signal_batches``).

Secrets never reach the report: the API key secret shows as ``tfs_****``, header values as
``****``, URL userinfo and query values as ``****`` — the JSON form is built from the same
redacted rows as the table, so neither can leak what the other hides.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

from .._version import __version__
from ..domain import per_signal, signal_batches
from ..domain.config import TelemetryConfig, load_config
from ..domain.credentials import redact_secret
from ..domain.environment import (
    BATCH_VARIABLES,
    SIGNAL_VARIABLES,
    VARIABLES,
    EnvironmentReading,
    Variable,
)
from ..domain.redaction import redact_text, redact_url
from ..domain.signals import ExporterKind, Protocol, SignalType

__all__ = [
    "ContribInstrumentor",
    "InfoReport",
    "InstrumentationState",
    "Setting",
    "collect",
    "mask_urls",
    "printable",
    "render_json",
    "render_text",
    "safe_url",
    "transport_uses_tls",
]

_CONTRIB_GROUP = "opentelemetry_instrumentor"
_DISTRIBUTIONS = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation",
    "grpcio",
    "protobuf",
)
# Ports that say which OTLP transport a collector listens with; a mismatch is the most common
# reason for "nothing arrives" and is silent at run time (the exporter just keeps failing).
_USUAL_PORTS = {4317: Protocol.GRPC, 4318: Protocol.HTTP}
_SIGNALS = (SignalType.TRACES, SignalType.METRICS, SignalType.LOGS)
_MAX_SHOWN = 80
_DISABLED_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
_PREFER_VAR = "TELEMETRYFLOW_PREFER_CONTRIB"


@dataclass(frozen=True)
class Setting:
    """One variable of the table: its effective value (redacted) and where it came from."""

    variable: str
    value: str
    source: str


@dataclass(frozen=True)
class InstrumentationState:
    """What the hook would do for one library: installed, not installed, disabled,
    superseded (a contrib instrumentor is preferred) or unsupported (version out of range)."""

    name: str
    status: str
    version: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ContribInstrumentor:
    """An ``opentelemetry_instrumentor`` entry point (an installed contrib instrumentation)."""

    name: str
    target: str
    distribution: str | None = None
    version: str | None = None


@dataclass
class InfoReport:
    """Everything ``--info`` prints; ``to_dict()`` is the ``--json`` form."""

    versions: dict[str, str | None]
    python: str
    executable: str
    enabled: bool
    settings: list[Setting]
    export: dict[str, str]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    instrumentations: list[InstrumentationState] = field(default_factory=list)
    contrib_instrumentors: list[ContribInstrumentor] = field(default_factory=list)
    sampler: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(
    environ: Mapping[str, str],
    *,
    catalog: Iterable[Any] | None = None,
    contrib: Iterable[ContribInstrumentor] | None = None,
) -> InfoReport:
    """The report for ``environ`` (the program's environment).

    ``catalog`` (registry entries) and ``contrib`` default to what is shipped and installed;
    tests pass their own so they do not depend on what is installed.
    """
    config, reading = load_config(environ)
    warnings = list(reading.warnings)
    if catalog is None:
        try:
            entries: tuple[Any, ...] = _shipped_catalog()
        except Exception as exc:  # a broken catalog must not hide the rest of the report
            entries = ()
            warnings.append(
                f"cannot read the instrumentation catalog ({type(exc).__name__}: {exc})"
            )
    else:
        entries = tuple(catalog)
    found = _installed_contrib() if contrib is None else list(contrib)
    warnings.extend(_setup_warnings(config, reading, entries, found))
    distributions = _Distributions()
    return InfoReport(
        versions=_versions(),
        python=sys.version.split()[0],
        executable=sys.executable,
        enabled=config.enabled,
        settings=_settings(config, reading),
        export=_export_summary(config, reading),
        sampler=_sampler_summary(config, reading),
        problems=[
            mask_urls(f"{problem} ({reading.outcome(problem)})") for problem in reading.problems
        ],
        warnings=[mask_urls(warning) for warning in warnings],
        instrumentations=[
            _state(entry, config, reading, found, distributions) for entry in entries
        ],
        contrib_instrumentors=found,
    )


def _shipped_catalog() -> tuple[Any, ...]:
    from ..instrumentation import registry

    return registry._catalog()


# ----- values and where they came from -------------------------------------------------


def _settings(config: TelemetryConfig, reading: EnvironmentReading) -> list[Setting]:
    invalid = {problem.source for problem in reading.problems}
    rows = []
    for var in VARIABLES:
        source = reading.sources.get(var.field)
        if source is not None and source not in ("default", "derived"):
            value = reading.values.get(var.field, getattr(config, var.field, None))
            shown = _shown(var, value)
        else:
            shown, source = _unset(var, config, reading)
        flagged = [name for name in (var.name, *var.fallbacks) if name in invalid]
        if flagged:
            source = f"{source} ({flagged[0]}: see Warnings)"
        overridden = _overridden_for(var.field, config, reading)
        if overridden:
            source = f"{source} (not for {overridden}: see below)"
        rows.append(Setting(var.name, shown, source))
    for var in SIGNAL_VARIABLES:  # only those set: 21 rows of "unset" would hide the rest
        signal = var.field.partition("_")[0]
        if var.name in invalid:
            rows.append(Setting(var.name, "", f"{signal} only (invalid: see Warnings)"))
        elif reading.sources.get(var.field) == var.name:
            ours = per_signal.SETTINGS[var.field.partition(".")[2]][1]
            rows.append(Setting(var.name, _shown(var, reading.values[var.field]),
                                f"{signal} only, over {ours}"))
    for var in BATCH_VARIABLES:  # (only those set, as the per-signal ones)
        if var.name in invalid:
            rows.append(Setting(var.name, "", f"{_batch_scope(var)} only (invalid: see "
                                              "Warnings)"))
        elif reading.sources.get(var.field) == var.name:
            rows.append(Setting(var.name, _shown(var, reading.values[var.field]),
                                _batch_source(var, config, reading)))
    return rows


def _overridden_for(field: str, config: TelemetryConfig, reading: EnvironmentReading) -> str:
    """The signals whose own variable replaces the all-signals ``field``, e.g. ``traces``:
    a per-signal OTLP setting, a log queue's own batch setting, or a batch processor's
    export timeout shorter than the exporter's."""
    signals: set[SignalType] = set()
    if field in per_signal.SETTINGS:
        signals.update(
            signal for signal in per_signal.SIGNALS
            if reading.sources.get(f"{per_signal.group(signal)}.{field}")
            == per_signal.variable(signal, field)
        )
    if field == "timeout":
        signals.update(signal for signal in per_signal.SIGNALS if _capped(config, signal))
    signals.update(
        SignalType.LOGS for own, (name, shared, _ours) in signal_batches.LOG_SETTINGS.items()
        if shared == field and reading.sources.get(own) == name
    )
    return ", ".join(signal.value for signal in per_signal.SIGNALS if signal in signals)


def _batch_scope(var: Variable) -> str:
    if var.field in signal_batches.EXPORT_TIMEOUTS:
        return signal_batches.EXPORT_TIMEOUTS[var.field][1].value
    return SignalType.LOGS.value


def _batch_source(var: Variable, config: TelemetryConfig, reading: EnvironmentReading) -> str:
    """What a set batch variable does: the shared setting it replaces for logs, or for an
    export timeout whether it or the exporter's timeout is the shorter (the one in effect)."""
    if var.field in signal_batches.LOG_SETTINGS:
        return f"logs only, over {signal_batches.LOG_SETTINGS[var.field][2]}"
    signal = signal_batches.EXPORT_TIMEOUTS[var.field][1]
    own = config.overrides(signal).timeout
    exporter = own if own is not None else config.timeout
    source = per_signal.source_of(config, reading, signal, "timeout") or "default"
    timeout = f"the {signal.value} export timeout ({exporter:g} s, {source})"
    if _capped(config, signal):
        return f"{signal.value} only: in effect, shorter than {timeout}"
    return f"{signal.value} only: unused, {timeout} is shorter"


def _capped(config: TelemetryConfig, signal: SignalType) -> bool:
    """Whether a batch processor's export timeout is what bounds ``signal``'s exports."""
    own = config.overrides(signal).timeout
    return config.for_signal(signal).timeout < (own if own is not None else config.timeout)


def _unset(
    var: Variable, config: TelemetryConfig, reading: EnvironmentReading
) -> tuple[str, str]:
    """The value in effect when no variable sets it: the table's default, or what the
    hook derives from other settings (and says so, since that is where surprises hide)."""
    if var.field == "service_name":
        return "(the program's name)", "derived"
    if var.field == "insecure" and config.endpoint:
        return _text(not transport_uses_tls(config)), "derived"
    if var.field == "exporter":
        kinds = {signal.value: config.exporter_for(signal).value for signal in _SIGNALS}
        if len(set(kinds.values())) == 1:
            return kinds["traces"], "derived"
        return ", ".join(f"{name}: {kind}" for name, kind in kinds.items()), "derived"
    if var.field == "sample_rate" and not config.sampler.endswith("traceidratio"):
        return "(unused)", f"the sampler is {config.sampler} ({_sampler_source(reading)})"
    return var.default, "default"


def _shown(var: Variable, value: Any) -> str:
    if var.secret:
        if isinstance(value, tuple):  # headers: the names help, the values are credentials
            return printable(",".join(f"{key}=****" for key, _ in value))
        return redact_secret(str(value).strip())
    if var.field.rpartition(".")[2] == "endpoint":
        return printable(safe_url(str(value)))
    return printable(_text(value))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(
            f"{item[0]}={item[1]}" if isinstance(item, tuple) else str(item) for item in value
        )
    return "" if value is None else str(value)


def printable(text: str, limit: int = _MAX_SHOWN) -> str:
    """ASCII only and cut short: a value is shown in a terminal table and pasted into issues."""
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    return safe if len(safe) <= limit else safe[:limit] + "..."


def safe_url(url: str) -> str:
    """``url`` with userinfo and query values masked (``domain.redaction.redact_url``)."""
    return redact_url(url)


def mask_urls(text: str) -> str:
    """``text`` with URL userinfo and query values masked wherever they appear
    (``domain.redaction.redact_text``): a rejected endpoint is quoted whole in its problem
    message, credentials included."""
    return redact_text(text)


def transport_uses_tls(config: TelemetryConfig) -> bool:
    """Whether exports are encrypted: for OTLP/HTTP the URL scheme decides (as in the SDK's
    HTTP exporter); for gRPC the ``insecure`` setting does."""
    if config.protocol is Protocol.HTTP:
        return config.resolved_endpoint().startswith("https://")
    return config.uses_tls


def _export_summary(config: TelemetryConfig, reading: EnvironmentReading) -> dict[str, str]:
    """Each signal's destination, from its own settings, naming the per-signal variables
    that set any of them."""
    summary = {}
    for signal in _SIGNALS:
        kind = config.exporter_for(signal)
        if not config.enabled:
            summary[signal.value] = "off (telemetry disabled)"
        elif not getattr(config, f"enable_{signal.value}"):
            summary[signal.value] = f"off (TELEMETRYFLOW_ENABLE_{signal.value.upper()}=false)"
        elif kind is ExporterKind.NONE:
            summary[signal.value] = "none (not exported)"
        elif kind is ExporterKind.CONSOLE:
            summary[signal.value] = f"console (stderr, {config.console_format})" + (
                f": no endpoint for {signal.value}" if _any_own_endpoint(config) else "")
        else:
            view = config.for_signal(signal)
            tls = "TLS" if transport_uses_tls(view) else "no TLS"
            target = printable(safe_url(config.export_target(signal)))
            by = _own_variables(signal, reading)
            summary[signal.value] = f"otlp/{view.protocol.value} -> {target} ({tls}{by})"
    return summary


def _any_own_endpoint(config: TelemetryConfig) -> bool:
    return any(config.overrides(signal).endpoint for signal in _SIGNALS)


def _own_variables(signal: SignalType, reading: EnvironmentReading) -> str:
    """``; per-signal OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, _HEADERS`` for what set ``signal``'s
    settings instead of the all-signals variables, or nothing."""
    own = [per_signal.SETTINGS[setting][0] for setting in per_signal.SETTINGS
           if reading.sources.get(f"{per_signal.group(signal)}.{setting}")
           == per_signal.variable(signal, setting)]
    if not own:
        return ""
    prefix = f"OTEL_EXPORTER_OTLP_{signal.value.upper()}"
    return f"; per-signal {prefix}_{own[0]}" + "".join(f", _{suffix}" for suffix in own[1:])


def _sampler_source(reading: EnvironmentReading) -> str:
    return reading.sources.get("sampler") or reading.sources.get("sample_rate") or "default"


def _sampler_summary(config: TelemetryConfig, reading: EnvironmentReading) -> str:
    """The sampler in effect and what it keeps: OTEL_TRACES_SAMPLER=always_off records no
    span at all, which the sample-rate row alone would not tell."""
    name, rate = config.sampler, config.sample_rate
    if name in ("always_on", "parentbased_always_on") or (name.endswith("traceidratio")
                                                          and rate >= 1.0):
        keeps = "every new trace is recorded"
    elif name == "always_off" or (name == "traceidratio" and rate <= 0.0):
        keeps = "no trace is recorded"
    elif name == "parentbased_always_off" or rate <= 0.0:
        keeps = "no new trace is recorded (only those continued from a sampled parent)"
    else:
        keeps = f"{rate:g} of new traces are recorded"
    if name.startswith("parentbased") and "only those" not in keeps:
        keeps += "; children follow their parent"
    ratio = f", ratio {rate:g}" if name.endswith("traceidratio") else ""
    return f"{name}{ratio} ({_sampler_source(reading)}): {keeps}"


# ----- warnings beyond the reader's ------------------------------------------------------


def _setup_warnings(
    config: TelemetryConfig,
    reading: EnvironmentReading,
    entries: tuple[Any, ...],
    contrib: list[ContribInstrumentor],
) -> list[str]:
    """Settings that are each valid but will not do what was meant: these are silent at run
    time (the exporter keeps failing, a typo disables nothing), so ``--info`` says them."""
    warnings = _endpoint_warnings(config, reading)
    # (a missing or non-PEM certificate file is a problem of the reading: parsers.pem_file)
    if config.signal_enabled(SignalType.TRACES) and (
        config.sampler in ("always_off", "parentbased_always_off") or config.sample_rate <= 0.0
    ):
        warnings.append(
            f"traces are exported but the sampler records no new trace: "
            f"{_sampler_summary(config, reading)}"
        )
    contrib_names = {item.name for item in contrib}
    for name in config.prefer_contrib:
        if name not in contrib_names:
            warnings.append(
                f"{_PREFER_VAR} names {name}, but no contrib instrumentor for it is "
                f"installed ({_CONTRIB_GROUP} entry point); ours is used"
            )
    if entries:  # with no catalog every name would look unknown
        unknown = _unknown_disabled_names(reading, entries, contrib_names)
        if unknown:
            warnings.append(unknown)
    return warnings


def _endpoint_warnings(config: TelemetryConfig, reading: EnvironmentReading) -> list[str]:
    """Per signal (each may have its own endpoint and protocol), each said once: a port that
    is the other protocol's usual one, and a per-signal OTLP/HTTP URL without a path (it is
    used as is, so the collector gets ``POST /``)."""
    warnings: dict[str, None] = {}
    for signal in _SIGNALS:
        view, own = config.for_signal(signal), config.overrides(signal)
        if not view.endpoint:
            continue
        endpoint_var = _variable_for(config, reading, signal, "endpoint")
        if own.endpoint is not None and view.protocol is Protocol.HTTP:
            path = urlsplit(config.export_target(signal)).path
            if path in ("", "/"):
                warnings[
                    f"{endpoint_var} has no path: a per-signal OTLP/HTTP endpoint is used as is "
                    f"(nothing appended), so give the full URL, e.g. "
                    f"http://collector:4318/v1/{signal.value}"
                ] = None
        port = urlsplit(view.resolved_endpoint()).port
        usual = _USUAL_PORTS.get(port or 0)
        if usual is not None and usual is not view.protocol:
            protocol_var = _variable_for(config, reading, signal, "protocol", "the default")
            set_var = (per_signal.variable(signal, "protocol")
                       if own.protocol is not None or own.endpoint is not None
                       else "TELEMETRYFLOW_PROTOCOL")
            warnings[
                f"{endpoint_var} uses port {port}, the usual OTLP/{usual.value} port, but the "
                f"protocol is {view.protocol.value} ({protocol_var}); set "
                f"{set_var}={usual.value} or use the collector's {view.protocol.value} port"
            ] = None
    return list(warnings)


def _variable_for(config: TelemetryConfig, reading: EnvironmentReading, signal: SignalType,
                  setting: str, default: str = "") -> str:
    return (per_signal.source_of(config, reading, signal, setting) or default
            or per_signal.SETTINGS[setting][1])


def _unknown_disabled_names(
    reading: EnvironmentReading, entries: tuple[Any, ...], contrib_names: set[str]
) -> str | None:
    """The hook's own warning (it is not in ``reading.warnings``), computed the same way."""
    from ..instrumentation import _disabled_names

    ours = _disabled_names.our_names(entries)
    return _disabled_names.unknown_names_warning(reading, ours, lambda: contrib_names)


# ----- instrumentations --------------------------------------------------------------------


def _state(
    entry: Any,
    config: TelemetryConfig,
    reading: EnvironmentReading,
    contrib: list[ContribInstrumentor],
    distributions: _Distributions,
) -> InstrumentationState:
    found, version, note = _find_library(entry, distributions)
    if entry.name in config.disabled_instrumentations:
        source = reading.sources.get("disabled_instrumentations", _DISABLED_VAR)
        return InstrumentationState(entry.name, "disabled", version, f"by {source}")
    preferred = next((item for item in contrib if item.name == entry.name), None)
    if preferred is not None and entry.name in config.prefer_contrib:
        by = " ".join(part for part in (preferred.distribution, preferred.version) if part)
        return InstrumentationState(
            entry.name, "superseded", version, f"by {by or preferred.target} ({_PREFER_VAR})"
        )
    if not found:
        return InstrumentationState(
            entry.name, "not installed", None, entry.distribution or ", ".join(entry.modules)
        )
    if _outside(version, getattr(entry, "versions", "")):
        return InstrumentationState(
            entry.name, "unsupported", version, f"supported: {entry.versions}; left unpatched"
        )
    return InstrumentationState(entry.name, "installed", version, note)


class _Distributions:
    """Which distributions provide a top-level module, read once and only if needed: the
    same import name ships under several names (psycopg2 / psycopg2-binary)."""

    def __init__(self) -> None:
        self._by_module: Mapping[str, list[str]] | None = None

    def providing(self, module: str) -> list[str]:
        if self._by_module is None:
            try:
                self._by_module = metadata.packages_distributions()
            except Exception:  # broken metadata of an unrelated package
                self._by_module = {}
        return self._by_module.get(module, [])


def _find_library(entry: Any, distributions: _Distributions) -> tuple[bool, str | None, str]:
    """(installed, version, note) without importing the library: the distribution's
    metadata when the entry names one, else whether its top-level module can be found."""
    if entry.distribution:
        try:
            return True, metadata.version(entry.distribution), ""
        except metadata.PackageNotFoundError:
            pass
    top = (entry.modules[0] if entry.modules else entry.name).split(".")[0]
    if top in sys.stdlib_module_names:
        return True, None, "standard library"
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return False, None, ""
    for name in distributions.providing(top):
        try:
            return True, metadata.version(name), f"from {name}"
        except metadata.PackageNotFoundError:
            continue
    return True, None, "version unknown"


def _outside(version: str | None, versions: str) -> bool:
    """Whether ``version`` is outside the entry's range; unknown when either cannot be
    parsed (``packaging`` is optional here), which never counts as outside."""
    if not version or not versions:
        return False
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return not SpecifierSet(versions).contains(Version(version), prereleases=True)
    except Exception:
        return False


def _installed_contrib() -> list[ContribInstrumentor]:
    found = []
    try:
        points = metadata.entry_points(group=_CONTRIB_GROUP)
    except Exception:  # broken metadata of an unrelated package must not break --info
        return []
    for point in points:
        dist = getattr(point, "dist", None)
        found.append(
            ContribInstrumentor(
                point.name, point.value, getattr(dist, "name", None), getattr(dist, "version", None)
            )
        )
    return sorted(found, key=lambda item: item.name)


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"telemetryflow-bootstrap": __version__}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ----- rendering ---------------------------------------------------------------------------


def render_json(report: InfoReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False)


def render_text(report: InfoReport) -> str:
    lines = [f"telemetryflow-run {report.versions['telemetryflow-bootstrap']}"]
    width = max(len(name) for name in report.versions) + 2
    lines.append(f"  {'Python':<{width}}{report.python} ({report.executable})")
    lines.extend(
        f"  {name:<{width}}{version or 'not installed'}"
        for name, version in report.versions.items()
        if name != "telemetryflow-bootstrap"
    )

    lines += ["", "Configuration (value, source)"]
    if not report.enabled:
        lines.append("  telemetry is DISABLED: programs run with nothing injected")
    name_width = max(len(s.variable) for s in report.settings) + 2
    value_width = min(max(len(s.value) for s in report.settings), 40) + 2
    lines.extend(
        f"  {s.variable:<{name_width}}{s.value:<{value_width}}{s.source}".rstrip()
        for s in report.settings
    )

    lines += ["", "Export"]
    lines.extend(f"  {signal:<9}{where}" for signal, where in report.export.items())

    if report.sampler:
        lines.append(f"  {'sampler':<9}{report.sampler}")

    lines += ["", "Warnings"]
    messages = [*report.problems, *report.warnings]
    lines.extend(f"  ! {message}" for message in messages)
    if not messages:
        lines.append("  none")

    lines += ["", "Instrumentations (what the hook does in a program run with this Python)"]
    if report.instrumentations:
        states = report.instrumentations
        width = max(len(state.name) for state in states) + 2
        status_width = max(len(state.status) for state in states) + 2
        version_width = max(len(state.version or "") for state in states) + 2
        lines.extend(
            f"  {state.name:<{width}}{state.status:<{status_width}}"
            f"{state.version or '':<{version_width}}{state.detail}".rstrip()
            for state in states
        )
    else:
        lines.append("  none in the catalog")

    lines += ["", f"OpenTelemetry contrib instrumentors ({_CONTRIB_GROUP} entry points)"]
    for item in report.contrib_instrumentors:
        by = " ".join(part for part in (item.distribution, item.version) if part)
        lines.append(f"  {item.name:<16}{item.target}" + (f"  ({by})" if by else ""))
    if not report.contrib_instrumentors:
        lines.append("  none found")
    return "\n".join(lines)
