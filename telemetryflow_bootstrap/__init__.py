"""telemetryflow_bootstrap: zero-code OpenTelemetry for any Python program.

Run ``telemetryflow-run python app.py``; or use the SDK directly::

    from telemetryflow_bootstrap import TelemetryFlowBuilder
    with TelemetryFlowBuilder().with_service("shop").build() as client:
        with client.span("checkout"):
            client.increment_counter("orders")

Names are loaded on first use so ``import telemetryflow_bootstrap`` stays cheap (the
launcher's hook imports it in every Python process).
"""

from __future__ import annotations

from ._version import __version__

# (typing.TYPE_CHECKING without importing typing, which the launcher would pay ~8 ms for)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .builder import TelemetryFlowBuilder
    from .client import TelemetryFlowClient, get_client
    from .domain import (
        BuilderError,
        ConfigError,
        Credentials,
        CredentialsError,
        NotInitializedError,
        Protocol,
        SignalType,
        TelemetryConfig,
        TelemetryFlowError,
    )

__all__ = [
    "BuilderError",
    "ConfigError",
    "Credentials",
    "CredentialsError",
    "NotInitializedError",
    "Protocol",
    "SignalType",
    "TelemetryConfig",
    "TelemetryFlowBuilder",
    "TelemetryFlowClient",
    "TelemetryFlowError",
    "__version__",
    "get_client",
]

_WHERE = {
    "TelemetryFlowBuilder": "builder",
    "TelemetryFlowClient": "client",
    "get_client": "client",
}


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from importlib import import_module

        module = import_module(f".{_WHERE.get(name, 'domain')}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'telemetryflow_bootstrap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
