"""Small enumerations shared by every layer."""

from __future__ import annotations

from enum import Enum


class Protocol(str, Enum):
    GRPC = "grpc"
    HTTP = "http"


class SignalType(str, Enum):
    METRICS = "metrics"
    LOGS = "logs"
    TRACES = "traces"


class ExporterKind(str, Enum):
    OTLP = "otlp"
    CONSOLE = "console"
    NONE = "none"
