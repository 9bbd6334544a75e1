"""Domain layer: configuration, credentials, errors. Standard library only, so the launcher
can validate the environment before exec without importing OpenTelemetry.

Names are loaded from their modules on first use: the launcher imports ``domain.errors``
on every launch, and the configuration parser only when it must validate before exec.
"""

from __future__ import annotations

from .errors import (
    BuilderError,
    ConfigError,
    CredentialsError,
    NotInitializedError,
    Problem,
    TelemetryFlowError,
)

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from .config import TelemetryConfig, load_config
    from .credentials import Credentials
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

_WHERE = {
    "TelemetryConfig": "config",
    "load_config": "config",
    "Credentials": "credentials",
    "ExporterKind": "signals",
    "Protocol": "signals",
    "SignalType": "signals",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
