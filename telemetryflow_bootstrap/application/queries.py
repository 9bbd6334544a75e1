"""Queries (the read side)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class GetHealthQuery:
    """Is the SDK running and exporting?"""


@dataclass(slots=True)
class GetSDKStatusQuery:
    """Counts and settings, as ``TelemetryFlowClient.get_status()`` returns them."""
