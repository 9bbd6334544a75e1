"""What names an MQTT span and metric point (see ``paho_mqtt``): the operations prepared once
per topic or subscription filter (``Operations``: span name and attribute sets, with the
bound on how many topics may name them), and the filters each client subscribed to
(``Subscriptions``, kept by the wrapped ``subscribe``/``unsubscribe``), which name the
process spans of ``on_message``.

Hazards: a client's subscriptions are changed by the program's threads and read by paho's
network thread (a lock around matching and changes; a topic matched before is looked up
without it). Topic cardinality: MQTT topics often carry ids, so a topic names spans and
points only until ``_MAX_TOPICS`` topics have (see ``paho_mqtt``'s module docstring);
filters are the program's, not limited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from ._messaging_common import (
    DESTINATION,
    OPERATION_NAME,
    OPERATION_TYPE,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from ._messaging_common import MESSAGING_SYSTEM as SYSTEM

SYSTEM_NAME = "mqtt"
TEMPLATE = "messaging.destination.template"
GROUP = "messaging.consumer.group.name"
STATE = "_telemetryflow_mqtt_subscriptions"  # a Client's recorded subscriptions

_MAX_TOPICS = 256  # topics that may name spans and metric points (see the module)
_MAX_OPS = 1024
_MAX_MATCHED = 512
_UNMATCHED: Any = object()  # not looked up yet (None: matches no filter)


class Op:
    """One operation on one destination through one server: the span name and the
    attribute sets, built once and shared read-only (a message adds its own); the message
    counts' key (the metric attributes as a tuple) and whether it sends, made once too."""

    __slots__ = ("attributes", "key", "metric", "name", "sends")

    def __init__(self, name: str, attributes: dict[str, Any], metric: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric = metric
        self.key = tuple(metric.items())
        self.sends = attributes.get(OPERATION_TYPE) == "send"


class Operations:
    """The prepared operations of one PatchContext, by topic or by filter."""

    def __init__(self) -> None:
        self._ops: dict[tuple[Any, ...], Op] = {}
        self._topics = 0

    def topic_op(self, kind: str, kind_type: str, host: Any, port: Any, topic: str) -> Op:
        """An operation on a topic no filter stands for: named after it while fewer than
        ``_MAX_TOPICS`` topics were, else the bare operation (see the module)."""
        key = (kind, host, port, topic)
        found = self._ops.get(key)
        if found is not None:
            return found
        if self._topics >= _MAX_TOPICS:
            return self._unnamed(kind, kind_type, host, port)
        self._topics += 1
        attributes = base(kind, kind_type, host, port)
        metric = {**attributes, DESTINATION: topic}
        return self._keep(key, Op(f"{kind} {topic}", attributes, metric))

    def filter_op(self, host: Any, port: Any, pattern: str, group: str) -> Op:
        """``process`` of a message delivered for a subscription to ``pattern``."""
        key = ("filter", host, port, pattern, group)
        found = self._ops.get(key)
        if found is not None:
            return found
        attributes = base("process", "process", host, port)
        if group:
            attributes[GROUP] = group
        metric = dict(attributes)
        if "+" in pattern or "#" in pattern:
            attributes[TEMPLATE] = metric[TEMPLATE] = pattern
        else:
            metric[DESTINATION] = pattern
        return self._keep(key, Op(f"process {pattern}", attributes, metric))

    def _unnamed(self, kind: str, kind_type: str, host: Any, port: Any) -> Op:
        key = (kind, host, port)
        found = self._ops.get(key)
        if found is None:
            attributes = base(kind, kind_type, host, port)
            found = self._keep(key, Op(kind, attributes, dict(attributes)))
        return found

    def _keep(self, key: tuple[Any, ...], op: Op) -> Op:
        if len(self._ops) < _MAX_OPS:  # past it (a program making filters without end):
            self._ops[key] = op        # built at each call, not kept
        return op


def base(kind: str, kind_type: str, host: Any, port: Any) -> dict[str, Any]:
    """``messaging.system``, the operation and the server (host and port only)."""
    attributes: dict[str, Any] = {SYSTEM: SYSTEM_NAME, OPERATION_NAME: kind,
                                  OPERATION_TYPE: kind_type}
    if host and isinstance(host, str):
        attributes[SERVER_ADDRESS] = host
    if type(port) is int and port > 0:
        attributes[SERVER_PORT] = port
    return attributes


class Subscriptions:
    """The filters one client subscribed to, for naming the process spans of
    ``on_message``: filter → (filter, shared subscription group)."""

    __slots__ = ("_lock", "_matched", "_matcher")

    def __init__(self, matcher_class: Any) -> None:
        self._matcher = matcher_class()
        self._matched: dict[str, tuple[str, str] | None] = {}
        self._lock = threading.Lock()

    def match(self, topic: str) -> tuple[str, str] | None:
        # one lock-free read: a membership test then an index could see the dict cleared
        # between them (another thread matching its 512th topic) and raise KeyError in
        # paho's network thread
        matched = self._matched
        found = matched.get(topic, _UNMATCHED)
        if found is not _UNMATCHED:
            return found
        with self._lock:
            found = next(iter(self._matcher.iter_match(topic)), None)
            if len(matched) >= _MAX_MATCHED:
                matched.clear()
            matched[topic] = found
        return found

    def change(self, filters: Iterable[str], add: bool) -> None:
        with self._lock:
            for given in filters:
                pattern, group = _unshared(given)
                if add:
                    self._matcher[pattern] = (pattern, group)
                else:
                    with suppress(KeyError):
                        del self._matcher[pattern]
            self._matched = {}


def _unshared(given: str) -> tuple[str, str]:
    """(filter, group) of ``$share/{group}/{filter}``; (given, "") otherwise."""
    if given.startswith("$share/"):
        parts = given.split("/", 2)
        if len(parts) == 3:
            return parts[2], parts[1]
    return given, ""


def _filters(topic: Any) -> list[str]:
    """The filters of ``subscribe``/``unsubscribe``'s first argument: a string, a (filter,
    QoS or options) tuple, or a list of either."""
    if isinstance(topic, str):
        return [topic]
    if isinstance(topic, tuple):
        return [topic[0]] if topic and isinstance(topic[0], str) else []
    if isinstance(topic, list):
        found = []
        for item in topic:
            found.extend(_filters(item))
        return found
    return []


def subscribing(matcher_class: Any, add: bool) -> Callable[..., Any]:
    """The wrapper of ``Client.subscribe`` (``add``) or ``unsubscribe``: records the filters
    in the client's ``Subscriptions`` after paho's call (even one paho refused: the
    program meant them)."""
    def subscription(wrapped: Any, client: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> Any:
        result = wrapped(*args, **kwargs)
        try:
            filters = _filters(args[0] if args else kwargs.get("topic"))
            if filters:
                state = client.__dict__.get(STATE)
                if state is None:
                    state = client.__dict__.setdefault(STATE, Subscriptions(matcher_class))
                state.change(filters, add)
        except Exception:
            pass
        return result

    return subscription
