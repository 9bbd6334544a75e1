"""Registry entries for the HTTP client instrumentations (see registry.Instrumentation).

The names double as the keys of ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS`` and
``TELEMETRYFLOW_PREFER_CONTRIB``; they match the contrib instrumentors' entry point names
(``requests``, ``urllib3``, ``httpx``, ``aiohttp-client``), except ``http_client``, whose
contrib counterpart is ``urllib`` (see contrib.py).
"""

from __future__ import annotations

from .registry import Instrumentation

_PACKAGE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation(name="http_client", modules=("http.client",),
                    patch=f"{_PACKAGE}.http_client:patch"),
    Instrumentation(name="urllib3", modules=("urllib3",), patch=f"{_PACKAGE}.urllib3:patch",
                    distribution="urllib3", versions=">=1.25"),
    Instrumentation(name="requests", modules=("requests",), patch=f"{_PACKAGE}.requests:patch",
                    distribution="requests", versions=">=2.20"),
    Instrumentation(name="httpx", modules=("httpx",), patch=f"{_PACKAGE}.httpx:patch",
                    distribution="httpx", versions=">=0.18"),
    Instrumentation(name="aiohttp-client", modules=("aiohttp",),
                    patch=f"{_PACKAGE}.aiohttp_client:patch", distribution="aiohttp",
                    versions=">=3.9"),
)
