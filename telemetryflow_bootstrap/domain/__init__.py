"""Domain layer: configuration, credentials, errors. Standard library only, so the launcher
can validate the environment before exec without importing OpenTelemetry."""

from .config import TelemetryConfig, load_config
from .credentials import Credentials
from .errors import (
    BuilderError,
    ConfigError,
    CredentialsError,
    NotInitializedError,
    Problem,
    TelemetryFlowError,
)
from .signals import ExporterKind, Protocol, SignalType

__all__ = [
    "BuilderError",
    "ConfigError",
    "Credentials",
    "CredentialsError",
    "ExporterKind",
    "NotInitializedError",
    "Problem",
    "Protocol",
    "SignalType",
    "TelemetryConfig",
    "TelemetryFlowError",
    "load_config",
]
