"""Registry entries for the RPC instrumentations (see registry.Instrumentation): gRPC clients
and servers, sync and asyncio.

Each entry is triggered by the grpc module that holds what it wraps, not by ``grpc`` itself:
``grpc._channel`` and ``grpc._server`` are imported by grpc only when the program makes its
first sync channel or server, and a program that never does loads nothing of ours for them.
(``grpc.aio`` is imported by ``import grpc``, so its two entries apply then.) The names are
those of the contrib instrumentor's entry points (opentelemetry-instrumentation-grpc), so
``TELEMETRYFLOW_PREFER_CONTRIB`` and disabling by name work per side, and an installed contrib
instrumentor never competes with ours.
"""

from __future__ import annotations

from .registry import Instrumentation

_BASE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation("grpc_client", ("grpc._channel",), f"{_BASE}.grpc_client:patch",
                    "grpcio", ">=1.60"),
    Instrumentation("grpc_aio_client", ("grpc.aio._channel",),
                    f"{_BASE}.grpc_client:patch_aio", "grpcio", ">=1.60"),
    Instrumentation("grpc_server", ("grpc._server",), f"{_BASE}.grpc_server:patch",
                    "grpcio", ">=1.60"),
    Instrumentation("grpc_aio_server", ("grpc.aio._server",),
                    f"{_BASE}.grpc_server:patch_aio", "grpcio", ">=1.60"),
)
