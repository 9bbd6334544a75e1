"""Queries (the read side): records without fields (see ``domain._values``; equal to each
other and shown as ``GetHealthQuery()``, as the slotted dataclasses they were)."""

from __future__ import annotations

from ..domain._values import Record


class GetHealthQuery(Record):
    """Is the SDK running and exporting?"""

    __slots__ = ()


class GetSDKStatusQuery(Record):
    """Counts and settings, as ``TelemetryFlowClient.get_status()`` returns them."""

    __slots__ = ()
