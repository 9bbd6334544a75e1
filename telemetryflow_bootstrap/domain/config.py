"""``TelemetryConfig``: the immutable aggregate every other layer reads.

Built from the environment (``from_environment``), by the builder, or directly. Changing it
means making a new one (``with_grpc()``, ``replace()``), so a running SDK never sees its
configuration move under it.

The OTLP settings (endpoint, protocol, TLS, certificate, headers, compression, timeout) are
those of every signal unless a signal has its own (``traces_otlp``..., see ``per_signal``):
``for_signal()`` is the configuration one signal's exporter is built from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from . import config_checks, parsers, per_signal, signal_batches
from ._config_fields import DEFAULT_SERVICE_NAME, ConfigFields
from .credentials import Credentials
from .environment import EnvironmentReading, read_environment, show_value
from .errors import ConfigError, CredentialsError, Problem
from .per_signal import NO_OVERRIDES, SignalOverrides
from .redaction import url_secrets
from .signals import ExporterKind, Protocol, SignalType

_DEFAULT_PORTS = {Protocol.GRPC: 4317, Protocol.HTTP: 4318}
# The values OpenTelemetry specifies for OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE
# and OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION.
METRICS_TEMPORALITIES = ("cumulative", "delta", "lowmemory")
HISTOGRAM_AGGREGATIONS = ("explicit_bucket_histogram", "base2_exponential_bucket_histogram")
_URL_PORTS = {"https": 443, "http": 80}
_HTTP_PATHS = {SignalType.TRACES: "/v1/traces", SignalType.METRICS: "/v1/metrics",
               SignalType.LOGS: "/v1/logs"}


class TelemetryConfig(ConfigFields):
    """Everything the SDK needs to know; validated on construction. (Its fields, defaults
    and constructor are in ``_config_fields``.)"""

    __slots__ = ()

    def __post_init__(self) -> None:
        problems = [
            problem
            for signal in per_signal.SIGNALS
            for problem in per_signal.problems_of(self.overrides(signal), signal)
        ]
        problems.extend(signal_batches.problems_of(self))
        if not isinstance(self.protocol, Protocol):
            try:
                object.__setattr__(self, "protocol", Protocol(str(self.protocol).lower()))
            except ValueError:
                problems.append(Problem("protocol", repr(self.protocol), "expected grpc or http"))
        for name in ("exporter", "traces_exporter", "metrics_exporter", "logs_exporter"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, ExporterKind):
                try:
                    object.__setattr__(self, name, ExporterKind(str(value).lower()))
                except ValueError:
                    problems.append(
                        Problem(name, repr(value), "expected one of: otlp, console, none")
                    )
        if self.endpoint is not None:
            try:
                parsers.endpoint(self.endpoint)
            except ValueError as exc:
                problems.append(Problem("endpoint", show_value(self.endpoint), str(exc)))
        if not (isinstance(self.service_name, str) and self.service_name.strip()):
            problems.append(Problem("service_name", repr(self.service_name), "expected a name"))
        if self.compression not in ("gzip", "none"):
            problems.append(Problem("compression", repr(self.compression), "expected gzip or none"))
        if self.metrics_temporality not in METRICS_TEMPORALITIES:
            problems.append(Problem("metrics_temporality", repr(self.metrics_temporality),
                                    "expected one of: " + ", ".join(METRICS_TEMPORALITIES)))
        if self.histogram_aggregation not in HISTOGRAM_AGGREGATIONS:
            problems.append(Problem("histogram_aggregation", repr(self.histogram_aggregation),
                                    "expected one of: " + ", ".join(HISTOGRAM_AGGREGATIONS)))
        for name in ("timeout", "shutdown_timeout"):  # (NaN fails both comparisons)
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not 0 < value <= parsers.MAX_SECONDS:
                problems.append(Problem(name, repr(value), "expected a positive number of "
                                        f"seconds up to {parsers.MAX_SECONDS:g}"))
        for name in ("batch_max_size", "max_queue_size", "metric_export_interval_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(Problem(name, repr(value), "expected a whole number >= 1"))
        if (
            not isinstance(self.batch_timeout_ms, int)
            or isinstance(self.batch_timeout_ms, bool)
            or self.batch_timeout_ms < 0
        ):
            problems.append(
                Problem(
                    "batch_timeout_ms",
                    repr(self.batch_timeout_ms),
                    "expected a whole number of milliseconds >= 0",
                )
            )
        if (
            not isinstance(self.sample_rate, (int, float))
            or isinstance(self.sample_rate, bool)
            or not 0.0 <= self.sample_rate <= 1.0
        ):
            problems.append(
                Problem("sample_rate", repr(self.sample_rate), "expected a ratio between 0 and 1")
            )
        if problems:
            raise ConfigError(problems)

    # ----- derived views ---------------------------------------------------------------

    def exporter_for(self, signal: SignalType) -> ExporterKind:
        """Where ``signal`` goes: the per-signal OTEL_* choice, else the global one, else
        OTLP when an endpoint is configured for it (its own or the all-signals one) and the
        console when not."""
        specific = getattr(self, f"{signal.value}_exporter")
        if self.exporter is not None:
            return self.exporter if specific is not ExporterKind.NONE else specific
        if specific is not None:
            return specific
        endpoint = self.overrides(signal).endpoint or self.endpoint
        return ExporterKind.OTLP if endpoint else ExporterKind.CONSOLE

    def overrides(self, signal: SignalType) -> SignalOverrides:
        """The OTLP settings ``signal`` has of its own (OTEL_EXPORTER_OTLP_<SIGNAL>_*)."""
        overrides: SignalOverrides = getattr(self, per_signal.group(signal))
        return overrides

    def for_signal(self, signal: SignalType) -> TelemetryConfig:
        """The configuration ``signal``'s exporter uses: its own OTLP settings in place of
        the all-signals ones (headers replaced, not merged, as OpenTelemetry specifies), and
        no per-signal settings left. (Its ``resolved_endpoint()`` is the endpoint with scheme
        and port; ``export_target()`` says what the exporter is given.)

        Its timeout is the shorter of the exporter's and the batch processor's export
        timeout (OTEL_BSP_EXPORT_TIMEOUT, OTEL_BLRP_EXPORT_TIMEOUT: see ``signal_batches``)."""
        own = self.overrides(signal)
        changes = own.as_changes()
        cap = signal_batches.export_timeout_cap(self, signal)
        if cap is not None and cap < (own.timeout if own.timeout is not None else self.timeout):
            changes["timeout"] = cap
        if not changes and not self.has_overrides:
            return self
        return self.replace(**changes, traces_otlp=NO_OVERRIDES, metrics_otlp=NO_OVERRIDES,
                            logs_otlp=NO_OVERRIDES)

    def batch_for(self, signal: SignalType) -> signal_batches.BatchSettings:
        """What ``signal``'s batch queue is built with: the shared batch settings, and for
        logs the log queue's own (OTEL_BLRP_*) where set."""
        return signal_batches.batch_settings(self, signal)

    @property
    def has_overrides(self) -> bool:
        return any(self.overrides(s) != NO_OVERRIDES for s in per_signal.SIGNALS)

    def export_target(self, signal: SignalType) -> str:
        """What ``signal``'s exporter is given: ``host:port`` for gRPC, a full URL for HTTP.

        Over HTTP the all-signals endpoint is a base URL the signal's path is appended to
        (a path already ending in ``/v1/<signal>`` is kept, for this signal), as OTLP
        specifies; a per-signal endpoint is the full URL and used as is, port included."""
        view = self.for_signal(signal)
        url = view.resolved_endpoint()
        if view.protocol is Protocol.GRPC:
            return url.split("://", 1)[1].split("/", 1)[0]
        own = self.overrides(signal).endpoint
        if own is not None:
            return _as_is(own.strip()) if "://" in own else url
        for path in _HTTP_PATHS.values():
            if url.endswith(path):
                return url[: -len(path)] + _HTTP_PATHS[signal]
        return f"{url}{_HTTP_PATHS[signal]}"

    def secret_values(self) -> list[str]:
        """Everything any signal sends that no message may show: header values (the API
        key's included), the API key secret, and each endpoint's ``user:password``."""
        values: list[str] = [*self.get_auth_headers().values(),
                             *url_secrets(self.endpoint or "")]
        for signal in per_signal.SIGNALS:
            view = self.for_signal(signal)
            values.extend(view.get_auth_headers().values())
            values.extend(url_secrets(view.endpoint or ""))
        if self.credentials is not None:
            values.append(self.credentials.key_secret)
        return list(dict.fromkeys(values))

    def signal_enabled(self, signal: SignalType) -> bool:
        on = getattr(self, f"enable_{signal.value}")
        return bool(on) and self.exporter_for(signal) is not ExporterKind.NONE

    @property
    def enabled_signals(self) -> tuple[SignalType, ...]:
        return tuple(
            s
            for s in (SignalType.TRACES, SignalType.METRICS, SignalType.LOGS)
            if self.signal_enabled(s)
        )

    @property
    def uses_tls(self) -> bool:
        """TLS unless asked not to or the endpoint says ``http://``; with no endpoint at all
        (OTLP to the local collector's default port) plain text, as OpenTelemetry does."""
        endpoint = (self.endpoint or "").lower()
        if endpoint.startswith(("https://", "grpcs://")):
            return True  # the scheme is explicit; an insecure flag cannot downgrade it
        if self.insecure is not None:
            return not self.insecure
        if not endpoint:
            return False
        return not endpoint.startswith(("http://", "grpc://"))

    def resolved_endpoint(self) -> str:
        """The endpoint the exporters connect to, with scheme and port, e.g.
        ``https://collector:4317``; never the ``user:password@`` of the configured URL
        (that goes as a header, see ``get_auth_headers``), so no library is handed a
        password inside the URL it quotes in its errors, and gRPC gets a valid target.

        A port left out is OTLP's (4317 gRPC, 4318 HTTP) for a bare ``host`` and the
        ``grpc://`` schemes, but the scheme's own (443, 80) for an ``https://``/``http://``
        URL: a URL means what it says, as in every OpenTelemetry SDK, and hosted backends
        are configured as ``https://api.example.com`` (port 443)."""
        raw = (self.endpoint or "localhost").strip()
        scheme, sep, rest = raw.partition("://")
        scheme = scheme.lower()
        default_port = _DEFAULT_PORTS[self.protocol]
        if not sep:
            scheme, rest = ("https" if self.uses_tls else "http"), raw
        elif scheme in ("grpc", "grpcs"):
            scheme = "https" if scheme == "grpcs" else "http"
        else:
            default_port = _URL_PORTS.get(scheme, default_port)
        hostport, slash, path = rest.partition("/")
        hostport = hostport.rpartition("@")[2]
        if not _has_port(hostport):
            hostport = f"{hostport}:{default_port}"
        return f"{scheme}://{hostport}{slash}{path}".rstrip("/")

    def endpoint_userinfo(self) -> tuple[str, str] | None:
        """``(user, password)`` of a ``user:password@`` endpoint, percent-decoded, or None."""
        raw = (self.endpoint or "").strip()
        authority = raw.partition("://")[2] if "://" in raw else raw
        userinfo, at, _ = authority.partition("/")[0].rpartition("@")
        if not at:
            return None
        from urllib.parse import unquote

        user, _, password = userinfo.partition(":")
        return unquote(user), unquote(password)

    def get_auth_headers(self) -> dict[str, str]:
        """Headers every export carries. Later sources replace earlier ones of the same name
        (compared case-insensitively, as HTTP and gRPC metadata do): the endpoint's
        ``user:password@`` as HTTP Basic authorization, then the configured extra headers,
        then the API key's."""
        merged: dict[str, tuple[str, str]] = {}
        userinfo = self.endpoint_userinfo()
        if userinfo is not None:
            import base64

            token = base64.b64encode(":".join(userinfo).encode("utf-8")).decode("ascii")
            merged["authorization"] = ("Authorization", f"Basic {token}")
        for name, value in self.headers:
            merged[name.lower()] = (name, value)
        if self.credentials is not None:
            for name, value in self.credentials.auth_headers().items():
                merged[name.lower()] = (name, value)
        return dict(merged.values())

    # ----- copies ------------------------------------------------------------------------

    def with_grpc(self) -> TelemetryConfig:
        return self.replace(protocol=Protocol.GRPC)

    def with_http(self) -> TelemetryConfig:
        return self.replace(protocol=Protocol.HTTP)

    def with_signals(
        self, *, metrics: bool | None = None, logs: bool | None = None, traces: bool | None = None
    ) -> TelemetryConfig:
        changes = {
            f"enable_{name}": value
            for name, value in (("metrics", metrics), ("logs", logs), ("traces", traces))
            if value is not None
        }
        return self.replace(**changes)

    # ----- from the environment ------------------------------------------------------------

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, *, strict: bool = True
    ) -> TelemetryConfig:
        """The config the environment describes. With ``strict`` any problem raises one
        ``ConfigError`` listing all of them; otherwise use ``load_config``."""
        config, reading = load_config(environ)
        if strict and reading.problems:
            raise ConfigError(reading.problems)
        return config


def _as_is(url: str) -> str:
    """A per-signal OTLP/HTTP URL as given, minus its ``user:password@`` (sent as a header,
    see ``get_auth_headers``); ``grpc(s)://`` read as ``http(s)://``, as for the endpoint."""
    scheme, _, rest = url.partition("://")
    scheme = {"grpc": "http", "grpcs": "https"}.get(scheme.lower(), scheme)
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def _has_port(hostport: str) -> bool:
    hostport = hostport.rpartition("@")[2]  # user:password@ is not a port
    if hostport.startswith("["):
        return "]:" in hostport
    return ":" in hostport


_NON_CONFIG_FIELDS = frozenset({"api_key_id", "api_key_secret", "collector_id"})
_CREDENTIAL_VARS = {
    "key_id": "TELEMETRYFLOW_API_KEY_ID",
    "key_secret": "TELEMETRYFLOW_API_KEY_SECRET",
}


def load_config(
    environ: Mapping[str, str] | None = None, default_service_name: str | None = None
) -> tuple[TelemetryConfig, EnvironmentReading]:
    """Config from the environment plus the reading (problems, warnings, sources).

    Never raises for bad input: a malformed value is reported in ``reading.problems`` and its
    default is used, so a program can always run (instrumented as well as possible).
    """
    env = os.environ if environ is None else environ
    reading = read_environment(env)
    values = {k: v for k, v in reading.values.items() if k not in _NON_CONFIG_FIELDS}
    for key in ("protocol",):
        if key in values:
            values[key] = Protocol(values[key])
    _signal_overrides(values)
    for key in ("exporter", "traces_exporter", "metrics_exporter", "logs_exporter"):
        if key in values:
            values[key] = ExporterKind(values[key])
    if "sample_rate" in values and reading.sources.get("sample_rate") != "OTEL_TRACES_SAMPLER_ARG":
        values.setdefault("sampler", "parentbased_traceidratio")
    if "service_name" not in values:
        from_resource = dict(values.get("resource_attributes", ())).get("service.name")
        if from_resource:
            values["service_name"] = from_resource
            reading.sources["service_name"] = reading.sources["resource_attributes"]
        else:
            values["service_name"] = default_service_name or DEFAULT_SERVICE_NAME
            reading.sources["service_name"] = "derived" if default_service_name else "default"
    values["credentials"] = _credentials(reading)
    try:
        config = TelemetryConfig(**values)
    except ConfigError as exc:  # cross-field problems the per-variable parsers cannot see
        reading.problems.extend(exc.problems)
        config = TelemetryConfig(service_name=values["service_name"])
    config = config_checks.grpc_header_names(config, reading)
    config_checks.cross_field_warnings(config, reading)
    return config, reading


def _signal_overrides(values: dict[str, Any]) -> None:
    """The reading's ``<signal>_otlp.<setting>`` values gathered into ``SignalOverrides``."""
    given: dict[str, dict[str, Any]] = {}
    for key in [key for key in values if "." in key]:
        name, _, setting = key.partition(".")
        given.setdefault(name, {})[setting] = values.pop(key)
    for name, settings in given.items():
        if "protocol" in settings:
            settings["protocol"] = Protocol(settings["protocol"])
        values[name] = SignalOverrides(**settings)


def _credentials(reading: EnvironmentReading) -> Credentials | None:
    key_id = reading.values.get("api_key_id")
    secret = reading.values.get("api_key_secret")
    if key_id is None and secret is None:
        return None
    if key_id is None or secret is None:
        missing = "TELEMETRYFLOW_API_KEY_ID" if key_id is None else "TELEMETRYFLOW_API_KEY_SECRET"
        given = "TELEMETRYFLOW_API_KEY_SECRET" if key_id is None else "TELEMETRYFLOW_API_KEY_ID"
        if not any(problem.source == missing for problem in reading.problems):  # set but malformed
            reading.problems.append(
                Problem(missing, "(unset)", f"must be set together with {given}")
            )
        return None
    try:
        return Credentials(key_id, secret, reading.values.get("collector_id"))
    except CredentialsError as exc:
        for problem in exc.problems:
            reading.problems.append(
                Problem(_CREDENTIAL_VARS[problem.source], problem.shown_value, problem.expected)
            )
        return None
