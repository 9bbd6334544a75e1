"""Application layer: commands, queries and the buses that carry them to the handler."""

from .bus import CommandBus, QueryBus
from .commands import (
    AddSpanEventCommand,
    EmitLogCommand,
    EndSpanCommand,
    FlushTelemetryCommand,
    InitializeSDKCommand,
    RecordCounterCommand,
    RecordGaugeCommand,
    RecordHistogramCommand,
    ShutdownSDKCommand,
    StartSpanCommand,
)
from .queries import GetHealthQuery, GetSDKStatusQuery

__all__ = [
    "AddSpanEventCommand",
    "CommandBus",
    "EmitLogCommand",
    "EndSpanCommand",
    "FlushTelemetryCommand",
    "GetHealthQuery",
    "GetSDKStatusQuery",
    "InitializeSDKCommand",
    "QueryBus",
    "RecordCounterCommand",
    "RecordGaugeCommand",
    "RecordHistogramCommand",
    "ShutdownSDKCommand",
    "StartSpanCommand",
]
