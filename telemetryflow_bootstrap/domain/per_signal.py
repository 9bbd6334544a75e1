"""Per-signal OTLP settings, ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*`` (stdlib only).

The OpenTelemetry specification lets each OTLP exporter setting be overridden for one
signal, and users coming from ``opentelemetry-instrument`` rely on it: traces to Tempo,
metrics to a Prometheus OTLP receiver, logs to Loki, each with its own credentials. Per
signal and per setting the most specific value wins::

    OTEL_EXPORTER_OTLP_<SIGNAL>_<X>  >  TELEMETRYFLOW_<X>  >  OTEL_EXPORTER_OTLP_<X>  >  default

Two rules of the specification differ from the all-signals variables: a per-signal OTLP/HTTP
endpoint is the full URL and is used as is (no ``/v1/<signal>`` appended), and per-signal
headers replace the all-signals headers for that signal instead of adding to them. The API
key's headers still go with every signal: they are the key, not a header setting.
"""

from __future__ import annotations

from . import parsers
from ._values import FrozenValue
from .errors import Problem
from .redaction import redact_url
from .signals import Protocol, SignalType

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from .config import TelemetryConfig
    from .environment import EnvironmentReading

SIGNALS = (SignalType.TRACES, SignalType.METRICS, SignalType.LOGS)
_PROTOCOLS = frozenset(protocol.value for protocol in Protocol)

# Config field -> the variable suffix and our all-signals variable that it overrides.
SETTINGS: dict[str, tuple[str, str]] = {
    "endpoint": ("ENDPOINT", "TELEMETRYFLOW_ENDPOINT"),
    "protocol": ("PROTOCOL", "TELEMETRYFLOW_PROTOCOL"),
    "insecure": ("INSECURE", "TELEMETRYFLOW_INSECURE"),
    "certificate_file": ("CERTIFICATE", "TELEMETRYFLOW_CERTIFICATE"),
    "headers": ("HEADERS", "TELEMETRYFLOW_HEADERS"),
    "compression": ("COMPRESSION", "TELEMETRYFLOW_COMPRESSION"),
    "timeout": ("TIMEOUT", "TELEMETRYFLOW_TIMEOUT"),
}


def variable(signal: SignalType, setting: str) -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` for ``(TRACES, "endpoint")``."""
    return f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_{SETTINGS[setting][0]}"


def group(signal: SignalType) -> str:
    """The ``TelemetryConfig`` field holding ``signal``'s overrides (``traces_otlp``)."""
    return f"{signal.value}_otlp"


class SignalOverrides(FrozenValue):
    """One signal's OTLP settings that differ from the all-signals ones; ``None`` means
    "not set for this signal": the all-signals value applies. (Headers set to ``()`` is a
    setting: send none of the all-signals headers to this signal.) A frozen value object
    (``_values``: not a dataclass, for start-up's sake)."""

    _FIELDS = ("endpoint", "protocol", "insecure", "certificate_file", "headers",
               "compression", "timeout")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS
    _NOT_SHOWN = frozenset({"headers"})

    def __init__(
        self,
        endpoint: str | None = None,
        protocol: Protocol | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        headers: tuple[tuple[str, str], ...] | None = None,
        compression: str | None = None,
        timeout: float | None = None,
    ) -> None:
        # A protocol given as text becomes the enum; anything else is left for
        # ``problems_of`` to report, as the config's own fields are.
        word = str(protocol).lower()
        if not isinstance(protocol, Protocol) and word in _PROTOCOLS:
            protocol = Protocol(word)
        _set = object.__setattr__
        _set(self, "endpoint", endpoint)
        _set(self, "protocol", protocol)
        _set(self, "insecure", insecure)
        _set(self, "certificate_file", certificate_file)
        _set(self, "headers", headers)
        _set(self, "compression", compression)
        _set(self, "timeout", timeout)

    def given(self) -> tuple[str, ...]:
        """The settings set for this signal, in table order."""
        return tuple(name for name in self._FIELDS if getattr(self, name) is not None)

    def as_changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.given()}


NO_OVERRIDES = SignalOverrides()


def problems_of(own: object, signal: SignalType) -> list[Problem]:
    """``own`` checked as ``TelemetryConfig`` checks the all-signals settings (values read from
    the environment are parsed already; values given in code are not)."""
    name = group(signal)
    if not isinstance(own, SignalOverrides):
        return [Problem(name, repr(own), "expected SignalOverrides")]
    problems = []
    if own.protocol is not None and not isinstance(own.protocol, Protocol):
        problems.append(Problem(f"{name}.protocol", repr(own.protocol), "expected grpc or http"))
    if own.endpoint is not None:
        try:
            parsers.endpoint(own.endpoint)
        except (ValueError, AttributeError) as exc:
            problems.append(
                Problem(
                    f"{name}.endpoint",
                    repr(redact_url(str(own.endpoint))),
                    str(exc) or "expected an endpoint",
                )
            )
    if own.compression is not None and own.compression not in ("gzip", "none"):
        problems.append(
            Problem(f"{name}.compression", repr(own.compression), "expected gzip or none")
        )
    timeout = own.timeout
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0
    ):
        problems.append(
            Problem(f"{name}.timeout", repr(timeout), "expected a positive number of seconds")
        )
    return problems


def source_of(
    config: TelemetryConfig, reading: EnvironmentReading, signal: SignalType, setting: str
) -> str | None:
    """The variable that set ``setting`` for ``signal``, for messages: its own variable
    when it has one, else the all-signals variable that was read, else None (the default)."""
    if getattr(config.overrides(signal), setting) is not None:
        return variable(signal, setting)
    return reading.sources.get(setting)
