"""pika's asynchronous ``basic_get`` (receive spans that end when the broker answers) and
acknowledgements of both kinds of channel (settle spans): see ``pika.py`` for what is
recorded. A module of its own to keep ``pika.py`` to the publish and consume paths."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from opentelemetry.trace import SpanKind

from . import _messaging_common as common
from . import _messaging_rabbitmq as rabbitmq
from ._http_common import suppressed

_CLIENT = SpanKind.CLIENT
_now = common.now


def stands_aside(impl_of: Callable[[Any], Any] | None, instance: Any) -> bool:
    """Whether this call is the other half of a call traced once: a pika channel's call
    made by the BlockingChannel that owns it (pika sets the cookie), or a BlockingChannel's
    call when its channel is closed (pika has cleared the cookie, so the pika channel's
    call, which raises, is the one traced)."""
    if impl_of is None:
        return getattr(instance, "_cookie", None) is not None
    return getattr(impl_of(instance), "_cookie", True) is None




def receive_operation(receives: rabbitmq.Operations, impl: Any, queue: str
                      ) -> rabbitmq.Operation:
    """The receive operation of ``queue`` through ``impl``'s connection (cached)."""
    server = rabbitmq.server_of(impl.connection)
    key = (server, queue)
    return receives.get(key) or receives.keep(key, rabbitmq.operation(
        "receive", "receive", queue, server))

def async_get_wrapper(telemetry: common.Telemetry, gets: weakref.WeakKeyDictionary[Any, Any],
                      receives: rabbitmq.Operations) -> Any:
    """``Channel.basic_get`` (SelectConnection, AsyncioConnection...): a receive span
    from the request to the broker's answer, ended before the program's callback runs
    (GetOk) or when the broker says the queue is empty (``_on_getempty``). Stands aside
    for a BlockingChannel's own channel (traced by the blocking call)."""

    def basic_get(wrapped: Any, instance: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Any:
        if getattr(instance, "_cookie", None) is not None or suppressed():
            return wrapped(*args, **kwargs)
        try:
            queue = args[0] if args else kwargs.get("queue")
            callback = args[1] if len(args) > 1 else kwargs.get("callback")
            if type(queue) is not str or not callable(callback) \
                    or instance._on_getok_callback is not None:
                return wrapped(*args, **kwargs)  # (pika's own errors, as they were)
            receive = receive_operation(receives, instance, queue)
            span = telemetry.tracer.start_span(receive.name, kind=_CLIENT,
                                               attributes=receive.attributes)
            pending = _PendingGet(telemetry, receive, span)
            traced = pending.traced(callback)
            if len(args) > 1:
                args = (args[0], traced, *args[2:])
            else:
                kwargs = {**kwargs, "callback": traced}
        except Exception:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            pending.failed(exc)
            raise
        gets[instance] = pending
        return result

    return basic_get

def get_empty_wrapper(gets: weakref.WeakKeyDictionary[Any, Any]) -> Any:
    """``Channel._on_getempty``: the broker's answer to a Basic.Get on an empty queue
    ends that get's receive span (no message: nothing counted)."""
    def on_getempty(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        try:
            pending = gets.pop(instance, None)
            if pending is not None:
                pending.end(None)
        except Exception:
            pass
        return wrapped(*args, **kwargs)

    return on_getempty

# ----- settle --------------------------------------------------------------------------------

def settle_wrapper(telemetry: common.Telemetry, settles: rabbitmq.Operations, verb: str,
                   impl_of: Callable[[Any], Any] | None) -> Any:
    """``basic_ack``/``basic_nack``/``basic_reject`` of a BlockingChannel or a pika
    channel (which stands aside under a BlockingChannel, as for publishes): a CLIENT
    span ``{verb}`` (operation type ``settle``) with the delivery tag, a child of the
    current context (the process span, when the program settles inside its callback).
    """
    histogram = telemetry.operation

    def settle(wrapped: Any, instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        if stands_aside(impl_of, instance) or suppressed():
            return wrapped(*args, **kwargs)
        try:
            server = rabbitmq.server_of(
                (instance if impl_of is None else impl_of(instance)).connection)
            key = (server, verb)
            found = settles.get(key) or settles.keep(
                key, rabbitmq.settle_operation(verb, server))
            tag = args[0] if args else kwargs.get("delivery_tag", 0)
            attributes = found.attributes
            if type(tag) is int and tag:
                attributes = {**attributes, rabbitmq.DELIVERY_TAG: tag}
            if telemetry.leaf is not None:
                span = telemetry.leaf.start(found.name, _CLIENT, attributes,
                                            shared=attributes is found.attributes)
            else:
                span = telemetry.tracer.start_span(found.name, kind=_CLIENT,
                                                   attributes=attributes)
        except Exception:
            return wrapped(*args, **kwargs)
        start = _now()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            rabbitmq.failed(span, histogram, found.metric_attributes, exc, _now() - start)
            raise
        try:
            histogram.record(_now() - start, found.metric_attributes)
            span.end()
        except Exception:
            pass
        return result

    return settle


class _PendingGet:
    """One asynchronous Basic.Get: its receive span until the broker answers."""

    __slots__ = ("_ended", "_receive", "_span", "_start", "_telemetry")

    def __init__(self, telemetry: common.Telemetry, receive: rabbitmq.Operation,
                 span: Any) -> None:
        self._telemetry = telemetry
        self._receive = receive
        self._span = span
        self._start = _now()
        self._ended = False

    def end(self, result: tuple[Any, Any, Any] | None) -> None:
        """The broker answered: with a message (``result``), or the queue was empty."""
        if self._ended:
            return
        self._ended = True
        try:
            if result is not None and received(self._span, result):
                self._telemetry.counts.consumed(self._receive.metric_key)
            self._telemetry.operation.record(_now() - self._start,
                                             self._receive.metric_attributes)
            self._span.end()
        except Exception:
            pass

    def failed(self, exc: BaseException) -> None:
        if not self._ended:
            self._ended = True
            rabbitmq.failed(self._span, self._telemetry.operation,
                            self._receive.metric_attributes, exc, _now() - self._start)

    def traced(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """``callback`` called after this get's span ended (the program's work on the
        message is its own, not the receive's)."""

        def on_message(*args: Any, **kwargs: Any) -> Any:
            if len(args) == 4 and not kwargs:
                self.end((args[1], args[2], args[3]))
            return callback(*args, **kwargs)

        with suppress(Exception):
            functools.update_wrapper(on_message, callback, updated=())
        return on_message


def received(span: Any, result: Any) -> bool:
    """Adds the message's attributes and link to a receive span; whether there was one."""
    method, properties, body = result
    if method is None:
        return False
    if not span.is_recording():
        return True
    span.set_attributes(rabbitmq.message_attributes(properties, body, method.delivery_tag))
    if method.routing_key:
        span.set_attribute(rabbitmq.ROUTING_KEY, method.routing_key)
    found = rabbitmq.creation_context(properties)
    if found is not None:
        span.add_link(found[1])
    return True
