"""Commands (the write side). Built once per client call, so they are slotted dataclasses:
cheap to create, no per-call reflection."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.config import TelemetryConfig

Attributes = Mapping[str, Any] | None


@dataclass(slots=True)
class InitializeSDKCommand:
    config: TelemetryConfig


@dataclass(slots=True)
class ShutdownSDKCommand:
    timeout_seconds: float = 5.0


@dataclass(slots=True)
class FlushTelemetryCommand:
    timeout_seconds: float = 5.0


@dataclass(slots=True)
class RecordCounterCommand:
    name: str
    value: int | float = 1
    attributes: Attributes = None
    unit: str = ""
    description: str = ""


@dataclass(slots=True)
class RecordGaugeCommand:
    name: str
    value: int | float
    attributes: Attributes = None
    unit: str = ""
    description: str = ""


@dataclass(slots=True)
class RecordHistogramCommand:
    name: str
    value: int | float
    attributes: Attributes = None
    unit: str = ""
    description: str = ""


@dataclass(slots=True)
class EmitLogCommand:
    message: str
    severity: str = "info"
    attributes: Attributes = None


@dataclass(slots=True)
class StartSpanCommand:
    name: str
    kind: str = "internal"
    attributes: Attributes = None
    make_current: bool = False


@dataclass(slots=True)
class EndSpanCommand:
    span_id: str
    error: BaseException | None = None


@dataclass(slots=True)
class AddSpanEventCommand:
    span_id: str
    name: str
    attributes: Attributes = None


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
