"""Commands (the write side). Built once per client call, so they are slotted records with
a hand-written ``__init__``: cheap to create, no per-call reflection, and no ``@dataclass``
to compile in every instrumented process at start-up (``domain._values``: equality and
``repr`` as a dataclass's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..domain._values import Record

if TYPE_CHECKING:
    from ..domain.config import TelemetryConfig

Attributes = Mapping[str, Any] | None


class InitializeSDKCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("config",)

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config


class ShutdownSDKCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("timeout_seconds",)

    def __init__(self, timeout_seconds: float = 5.0) -> None:
        self.timeout_seconds = timeout_seconds


class FlushTelemetryCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("timeout_seconds",)

    def __init__(self, timeout_seconds: float = 5.0) -> None:
        self.timeout_seconds = timeout_seconds


class RecordCounterCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("name", "value", "attributes", "unit", "description")

    def __init__(self, name: str, value: int | float = 1, attributes: Attributes = None,
                 unit: str = "", description: str = "") -> None:
        self.name = name
        self.value = value
        self.attributes = attributes
        self.unit = unit
        self.description = description


class RecordGaugeCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("name", "value", "attributes", "unit", "description")

    def __init__(self, name: str, value: int | float, attributes: Attributes = None,
                 unit: str = "", description: str = "") -> None:
        self.name = name
        self.value = value
        self.attributes = attributes
        self.unit = unit
        self.description = description


class RecordHistogramCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("name", "value", "attributes", "unit", "description")

    def __init__(self, name: str, value: int | float, attributes: Attributes = None,
                 unit: str = "", description: str = "") -> None:
        self.name = name
        self.value = value
        self.attributes = attributes
        self.unit = unit
        self.description = description


class EmitLogCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("message", "severity", "attributes")

    def __init__(self, message: str, severity: str = "info",
                 attributes: Attributes = None) -> None:
        self.message = message
        self.severity = severity
        self.attributes = attributes


class StartSpanCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("name", "kind", "attributes", "make_current")

    def __init__(self, name: str, kind: str = "internal", attributes: Attributes = None,
                 make_current: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.make_current = make_current


class EndSpanCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("span_id", "error")

    def __init__(self, span_id: str, error: BaseException | None = None) -> None:
        self.span_id = span_id
        self.error = error


class AddSpanEventCommand(Record):
    _FIELDS = __slots__ = __match_args__ = ("span_id", "name", "attributes")

    def __init__(self, span_id: str, name: str, attributes: Attributes = None) -> None:
        self.span_id = span_id
        self.name = name
        self.attributes = attributes


Command = (
    InitializeSDKCommand
    | ShutdownSDKCommand
    | FlushTelemetryCommand
    | RecordCounterCommand
    | RecordGaugeCommand
    | RecordHistogramCommand
    | EmitLogCommand
    | StartSpanCommand
    | EndSpanCommand
    | AddSpanEventCommand
)
