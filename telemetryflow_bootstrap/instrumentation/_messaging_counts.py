"""The message counters of the messaging conventions, shared by the pika, NATS, Celery and
paho-mqtt instrumentations: ``messaging.client.sent.messages`` (messages a producer tried
to send, ``error.type`` when that failed) and ``messaging.client.consumed.messages``
(messages delivered to the program: received, or dispatched to its callback), unit
``{message}``, with the attributes of the operation's duration point.

Why observable counters fed by tallies, not ``Counter.add``: the SDK's synchronous add
validates, copies and hashes the attribute set and runs the exemplar filter on every call,
~20 us measured here, more than the rest of a traced publish; a tally under a lock costs
~0.5 us. The SDK reads the tallies at each collection and exports them as the same
monotonic sum a counter makes (cumulative or delta, as the reader asks); what is lost is
only exemplars, which the conventions do not ask of these counters.

Keys are the attribute sets as tuples of items, computed once per prepared operation by
the callers. New keys past the SDK's default cardinality limit go to the overflow set, as
the SDK itself would. A forked child starts from zero (it counts its own messages).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"
_LIMIT = 2000
_OVERFLOW = (("otel.metric.overflow", True),)

Key = tuple[tuple[str, Any], ...]


class MessageCounts:
    """The two counters on one meter; ``sent``/``consumed`` are the hot-path calls."""

    __slots__ = ("__weakref__", "_consumed", "_lock", "_sent")

    def __init__(self, meter: Any) -> None:
        self._lock = threading.Lock()
        self._sent: dict[Key, int] = {}
        self._consumed: dict[Key, int] = {}
        if meter is None:
            return
        meter.create_observable_counter(
            SENT, callbacks=[self._observe_sent], unit="{message}",
            description="Number of messages producer attempted to send to the broker.")
        meter.create_observable_counter(
            CONSUMED, callbacks=[self._observe_consumed], unit="{message}",
            description="Number of messages that were delivered to the application.")

    def sent(self, key: Key, count: int = 1) -> None:
        with self._lock:
            _add(self._sent, key, count)

    def consumed(self, key: Key, count: int = 1) -> None:
        with self._lock:
            _add(self._consumed, key, count)

    def forked(self) -> None:
        """In a forked child: zero, with a new lock (the parent's may have been held by a
        thread the child does not have)."""
        self._lock = threading.Lock()
        self._sent = {}
        self._consumed = {}

    def _observe_sent(self, options: Any = None) -> Iterable[Any]:
        return self._observe(self._sent)

    def _observe_consumed(self, options: Any = None) -> Iterable[Any]:
        return self._observe(self._consumed)

    def _observe(self, tally: dict[Key, int]) -> list[Any]:
        from opentelemetry.metrics import Observation

        with self._lock:
            items = list(tally.items())
        return [Observation(value, dict(key)) for key, value in items]


def _add(tally: dict[Key, int], key: Key, count: int) -> None:
    found = tally.get(key)
    if found is None and len(tally) >= _LIMIT:
        key = _OVERFLOW
        found = tally.get(key)
    tally[key] = (found or 0) + count


def with_error(key: Key, kind: str) -> Key:
    """``key`` of a failed operation (failures only: built per call)."""
    return (*key, ("error.type", kind))


_by_meter: dict[int, tuple[Any, MessageCounts]] = {}
_guard = threading.Lock()


def counts_for(meter: Any) -> MessageCounts:
    """The one ``MessageCounts`` of ``meter`` (the messaging instrumentations share the
    project's meter: two instruments of one name on it would be a duplicate registration)."""
    with _guard:
        found = _by_meter.get(id(meter))
        if found is not None and found[0] is meter:
            return found[1]
        made = MessageCounts(meter)
        _by_meter[id(meter)] = (meter, made)
        return made


def _forked() -> None:
    global _guard
    _guard = threading.Lock()
    for _meter, counts in list(_by_meter.values()):
        counts.forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
