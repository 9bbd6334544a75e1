"""Each batch queue's settings: the log queue's own ``OTEL_BLRP_*`` variables, and the batch
processors' export timeouts ``OTEL_BSP_EXPORT_TIMEOUT``/``OTEL_BLRP_EXPORT_TIMEOUT``
(stdlib only).

Spans and logs share ``TELEMETRYFLOW_BATCH_TIMEOUT``, ``TELEMETRYFLOW_BATCH_MAX_SIZE`` and
``TELEMETRYFLOW_MAX_QUEUE_SIZE`` (or their ``OTEL_BSP_*`` fallbacks). Users coming from
``opentelemetry-instrument`` give logs a batch of their own with ``OTEL_BLRP_*``; as for the
per-signal OTLP settings (``per_signal``), the more specific variable wins, for logs only::

    logs:   OTEL_BLRP_<X>  >  TELEMETRYFLOW_<X>  >  OTEL_BSP_<X>  >  default
    spans:                    TELEMETRYFLOW_<X>  >  OTEL_BSP_<X>  >  default

``OTEL_BSP_*`` keeps sizing the log queue too when no ``OTEL_BLRP_*`` is set: it always has
here, and changing that would change the log batching of everyone who set it. A batch size
above the queue size is accepted, as it is for spans (the SDK refuses it): that queue is
exported at each schedule delay, a full queue not waking the export early.

The export timeouts are the batch processor's bound on one export (OpenTelemetry's default
is 30 s). Here a batch is exported by one call of the exporter, which gives up, retries
included, at its own timeout (``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT``, else
``TELEMETRYFLOW_TIMEOUT``, else ``OTEL_EXPORTER_OTLP_TIMEOUT``): both bounds apply, so the
shorter one does. Such a variable can shorten its signal's exports, never lengthen them
(the SDK that ``opentelemetry-instrument`` runs reads these and ignores them: a value copied
from its configuration must not make exports here wait longer than before).
"""

from __future__ import annotations

from collections.abc import Iterable

from ._values import FrozenValue
from .errors import Problem
from .signals import SignalType

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from .config import TelemetryConfig

# Config field of the log queue -> (its variable, the shared field, the shared variable).
LOG_SETTINGS: dict[str, tuple[str, str, str]] = {
    "log_batch_timeout_ms": (
        "OTEL_BLRP_SCHEDULE_DELAY", "batch_timeout_ms", "TELEMETRYFLOW_BATCH_TIMEOUT"),
    "log_batch_max_size": (
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "batch_max_size", "TELEMETRYFLOW_BATCH_MAX_SIZE"),
    "log_max_queue_size": (
        "OTEL_BLRP_MAX_QUEUE_SIZE", "max_queue_size", "TELEMETRYFLOW_MAX_QUEUE_SIZE"),
}
# Config field -> (its variable, the signal whose exports it bounds), in seconds.
EXPORT_TIMEOUTS: dict[str, tuple[str, SignalType]] = {
    "span_export_timeout": ("OTEL_BSP_EXPORT_TIMEOUT", SignalType.TRACES),
    "log_export_timeout": ("OTEL_BLRP_EXPORT_TIMEOUT", SignalType.LOGS),
}
_SHARED_QUEUE_SIZE = LOG_SETTINGS["log_max_queue_size"][2]


class BatchSettings(FrozenValue):
    """What one signal's batch queue is built with (a frozen value object, see ``_values``).
    ``queue_size_variable``: what a full queue's warning tells to raise, the variable that
    sized this queue."""

    _FIELDS = ("schedule_delay_ms", "max_batch_size", "max_queue_size", "queue_size_variable")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS

    def __init__(self, schedule_delay_ms: int, max_batch_size: int, max_queue_size: int,
                 queue_size_variable: str = _SHARED_QUEUE_SIZE) -> None:
        _set = object.__setattr__
        _set(self, "schedule_delay_ms", schedule_delay_ms)
        _set(self, "max_batch_size", max_batch_size)
        _set(self, "max_queue_size", max_queue_size)
        _set(self, "queue_size_variable", queue_size_variable)


def batch_settings(config: TelemetryConfig, signal: SignalType) -> BatchSettings:
    """``signal``'s queue: the shared settings, with the log queue's own in their place."""
    if signal is not SignalType.LOGS:
        return BatchSettings(config.batch_timeout_ms, config.batch_max_size,
                             config.max_queue_size)
    own_size = config.log_max_queue_size
    return BatchSettings(
        _first(config.log_batch_timeout_ms, config.batch_timeout_ms),
        _first(config.log_batch_max_size, config.batch_max_size),
        _first(own_size, config.max_queue_size),
        LOG_SETTINGS["log_max_queue_size"][0] if own_size is not None else _SHARED_QUEUE_SIZE,
    )


def export_timeout_field(signal: SignalType) -> str | None:
    """The config field bounding ``signal``'s exports as a batch processor's export
    timeout, or None (metrics are not batched)."""
    return next((name for name, (_var, of) in EXPORT_TIMEOUTS.items() if of is signal), None)


def export_timeout_cap(config: TelemetryConfig, signal: SignalType) -> float | None:
    """The batch processor's export timeout of ``signal`` in seconds, when one is set."""
    name = export_timeout_field(signal)
    value: float | None = getattr(config, name) if name is not None else None
    return value


def cleared_by(shared: Iterable[str]) -> dict[str, None]:
    """The per-signal fields to clear when code sets the ``shared`` fields: the builder's
    explicit settings are every signal's (``with_batch_settings(max_queue_size=...)`` sizes
    the log queue too, over OTEL_BLRP_MAX_QUEUE_SIZE; ``with_timeout()`` is not shortened by
    OTEL_BSP_EXPORT_TIMEOUT), as they are over the per-signal OTLP variables."""
    given = set(shared)
    cleared = {own: None for own, (_var, of, _ours) in LOG_SETTINGS.items() if of in given}
    if "timeout" in given:
        cleared.update(dict.fromkeys(EXPORT_TIMEOUTS))
    return cleared


def problems_of(config: TelemetryConfig) -> list[Problem]:
    """The log queue's own settings and the export timeouts checked as ``TelemetryConfig``
    checks the shared ones (``None``: not set, the shared value applies)."""
    problems = []
    for name in ("log_batch_max_size", "log_max_queue_size"):
        value = getattr(config, name)
        if value is not None and not _whole(value, 1):
            problems.append(Problem(name, repr(value), "expected a whole number >= 1"))
    delay = config.log_batch_timeout_ms
    if delay is not None and not _whole(delay, 0):
        problems.append(Problem("log_batch_timeout_ms", repr(delay),
                                "expected a whole number of milliseconds >= 0"))
    for name in EXPORT_TIMEOUTS:
        value = getattr(config, name)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
        ):
            problems.append(Problem(name, repr(value), "expected a positive number of seconds"))
    return problems


def _whole(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _first(own: int | None, shared: int) -> int:
    return shared if own is None else own
