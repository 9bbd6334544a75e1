"""Command and query buses: dispatch is one dict lookup on the message's exact type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain.errors import TelemetryFlowError

Handler = Callable[[Any], Any]


class _Bus:
    _kind = "message"

    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}

    def register(self, message_type: type, handler: Handler) -> None:
        self._handlers[message_type] = handler

    def dispatch(self, message: Any) -> Any:
        try:
            handler = self._handlers[type(message)]
        except KeyError:
            raise TelemetryFlowError(
                f"no handler registered for {self._kind} {type(message).__name__}; registered: "
                + (", ".join(sorted(t.__name__ for t in self._handlers)) or "none")
            ) from None
        return handler(message)


class CommandBus(_Bus):
    _kind = "command"


class QueryBus(_Bus):
    _kind = "query"
