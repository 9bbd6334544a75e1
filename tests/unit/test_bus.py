"""Command and query buses: one dict lookup on the message's exact type."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from telemetryflow_bootstrap.application.bus import CommandBus, QueryBus
from telemetryflow_bootstrap.application.commands import (
    FlushTelemetryCommand,
    RecordCounterCommand,
    ShutdownSDKCommand,
)
from telemetryflow_bootstrap.application.queries import GetHealthQuery, GetSDKStatusQuery
from telemetryflow_bootstrap.domain.errors import TelemetryFlowError


def test_command_is_dispatched_to_its_handler_and_result_returned() -> None:
    """dispatch calls the handler registered for the command's type with the command."""
    bus = CommandBus()
    seen: list[object] = []
    bus.register(RecordCounterCommand, lambda c: seen.append(c) or "counted")
    bus.register(FlushTelemetryCommand, lambda c: "flushed")
    command = RecordCounterCommand("orders", 2)
    assert bus.dispatch(command) == "counted"
    assert seen == [command]
    assert bus.dispatch(FlushTelemetryCommand()) == "flushed"


def test_dispatch_uses_the_exact_type_not_subclasses() -> None:
    """A subclass of a registered command is not routed to the base class's handler."""

    @dataclass
    class _Special(ShutdownSDKCommand):
        pass

    bus = CommandBus()
    bus.register(ShutdownSDKCommand, lambda c: "shutdown")
    with pytest.raises(TelemetryFlowError, match="_Special"):
        bus.dispatch(_Special())


def test_unregistered_command_names_it_and_lists_registered_ones() -> None:
    """An unknown command raises TelemetryFlowError naming it and the registered types."""
    bus = CommandBus()
    bus.register(ShutdownSDKCommand, lambda c: None)
    bus.register(FlushTelemetryCommand, lambda c: None)
    with pytest.raises(TelemetryFlowError) as caught:
        bus.dispatch(RecordCounterCommand("x"))
    message = str(caught.value)
    assert "command RecordCounterCommand" in message
    assert "registered: FlushTelemetryCommand, ShutdownSDKCommand" in message


def test_empty_bus_says_nothing_is_registered() -> None:
    """With no handlers at all the error says so."""
    with pytest.raises(TelemetryFlowError, match="registered: none"):
        CommandBus().dispatch(FlushTelemetryCommand())


def test_query_bus_dispatches_and_reports_unknown_queries() -> None:
    """The query bus routes queries the same way and calls its messages queries."""
    bus = QueryBus()
    bus.register(GetHealthQuery, lambda q: {"healthy": True})
    assert bus.dispatch(GetHealthQuery()) == {"healthy": True}
    with pytest.raises(TelemetryFlowError) as caught:
        bus.dispatch(GetSDKStatusQuery())
    assert "query GetSDKStatusQuery" in str(caught.value)
    assert "GetHealthQuery" in str(caught.value)


def test_registering_again_replaces_the_handler() -> None:
    """The last handler registered for a type is the one used."""
    bus = QueryBus()
    bus.register(GetHealthQuery, lambda q: "old")
    bus.register(GetHealthQuery, lambda q: "new")
    assert bus.dispatch(GetHealthQuery()) == "new"
