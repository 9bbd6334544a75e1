"""aio-pika's consuming side: the process span of each message a ``Queue.consume``
callback gets, a ``queue.iterator()`` yields or ``async with message.process()`` handles
(see ``aio_pika.py`` for what is recorded). A module of its own to keep ``aio_pika.py`` to
the publish, get and settle paths.

One message, one process span, whichever of these sees it first: the callback's (or the
iterator's) span is current inside ``message.process()``, which then only records how the
block ended; ``process()`` starts a span of its own only for a message none of them
delivered (one ``Queue.get`` returned). The span is found again through a private key of
the OpenTelemetry context it runs in (an ``IncomingMessage`` has ``__slots__``: no
attribute, no weak reference to hang it on).
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, get_current_span

from ..infrastructure.current_context import attach, get_current, reset
from . import _messaging_common as common
from . import _messaging_rabbitmq as rabbitmq
from ._http_common import SPAN_KEY, suppressed

_now = common.now
_EMPTY = Context()
# The context key under which a process span's context holds its _Delivery.
_DELIVERY_KEY = "telemetryflow.aio_pika.delivery"
# Who owns a delivery's span: ends it and decides when.
CALLBACK, ITERATOR, BLOCK = 0, 1, 2


class Deliveries:
    """The process operations by server and destination, and starting a delivery's span."""

    __slots__ = ("_operations", "telemetry")

    def __init__(self, telemetry: common.Telemetry) -> None:
        self.telemetry = telemetry
        self._operations = rabbitmq.Operations()

    def start(self, message: Any, queue: str, owner: int) -> _Delivery:
        """Start ``message``'s process span (parent: the producer's context it carries,
        linked to it and to the ambient span) and make it current."""
        exchange, routing_key = message.exchange or "", message.routing_key or ""
        server = server_of_message(message)
        key = (server, exchange, routing_key, queue)
        process = self._operations.get(key)
        if process is None:
            process = self._operations.keep(key, rabbitmq.operation(
                "process", "process",
                rabbitmq.consumer_destination(exchange, routing_key, queue), server,
                routing_key))
        telemetry = self.telemetry
        if owner != BLOCK:  # (a message Queue.get returned was counted there)
            telemetry.counts.consumed(process.metric_key)
        attributes = {**process.attributes,
                      **rabbitmq.message_attributes(message, message.body,
                                                    message.delivery_tag)}
        found = rabbitmq.creation_context(message)
        parent, links = (_EMPTY, []) if found is None else (found[0], [Link(found[1])])
        ambient = get_current_span(get_current()).get_span_context()
        if ambient.is_valid and not ambient.is_remote:
            links.append(Link(ambient))
        span = telemetry.tracer.start_span(process.name, context=parent,
                                           kind=SpanKind.CONSUMER, attributes=attributes,
                                           links=links)
        delivery = _Delivery(telemetry, message, owner, span, process.metric_attributes)
        delivery.token = attach(Context(parent, **{SPAN_KEY: span, _DELIVERY_KEY: delivery}))
        return delivery


class _Delivery:
    """One message's process span, from its start to its end (once)."""

    __slots__ = ("_metric_attributes", "_span", "_start", "_telemetry", "failure",
                 "message", "owner", "token")

    def __init__(self, telemetry: common.Telemetry, message: Any, owner: int, span: Any,
                 metric_attributes: dict[str, Any]) -> None:
        self._telemetry = telemetry
        self.message = message
        self.owner = owner
        self._span = span
        self._metric_attributes = metric_attributes
        self.token: Any = None
        # an exception a process() block ended with, which the callback then caught
        self.failure: BaseException | None = None
        self._start = _now()

    def end(self, exc: BaseException | None = None) -> None:
        """Leave and end the span (as failed with ``exc``, or the failure a process()
        block saw). Never raises; a second call does nothing."""
        token, self.token = self.token, None
        if token is None:
            return
        elapsed = _now() - self._start
        with suppress(Exception):  # (left in another context: nothing to undo here)
            reset(token)
        exc = exc or self.failure
        histogram = self._telemetry.process
        if exc is not None:
            rabbitmq.failed(self._span, histogram, self._metric_attributes, exc, elapsed)
            return
        try:
            histogram.record(elapsed, self._metric_attributes)
            self._span.end()
        except Exception:
            pass


def current_delivery(message: Any) -> _Delivery | None:
    """The delivery of ``message`` whose span is current, if any."""
    found = get_current().get(_DELIVERY_KEY)
    return found if found is not None and found.message is message else None


def server_of_message(message: Any) -> tuple[Any, Any]:
    """(host, port) of the connection a message came through (aiormq's URL, which has the
    port filled in); never anything else of the URL."""
    try:
        url = message._IncomingMessage__channel.connection.url
        return url.host, url.port
    except Exception:
        return None, None


# ----- Queue.consume -------------------------------------------------------------------------

def consume_wrapper(deliveries: Deliveries, tools: Any, iterator_class: type) -> Any:
    """``Queue.consume``: the callback is given to aio-pika wrapped in a process span per
    message. A queue iterator's own callback (which only buffers the message for
    ``__anext__``) is left alone: the iterator's items get the spans.

    The wrapper keeps how aio-pika runs the callback: aio-pika 10 adapts any callback to a
    coroutine function (``tools.ensure_awaitable``, its deprecation warning included),
    which is then wrapped; aio-pika 9 runs a coroutine function in a task and calls any
    other callable directly (what it returns is not awaited), so that gets a plain
    wrapper."""
    adapt = getattr(tools, "ensure_awaitable", None)
    is_coroutine = getattr(tools, "iscoroutinepartial", inspect.iscoroutinefunction)

    async def consume(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        try:
            callback = args[0] if args else kwargs.get("callback")
            queue = instance.name
            if not callable(callback) or type(queue) is not str \
                    or isinstance(getattr(callback, "__self__", None), iterator_class):
                return await wrapped(*args, **kwargs)
            if adapt is not None:
                traced = _traced_coroutine(adapt(callback), callback, deliveries, queue)
            elif is_coroutine(callback):
                traced = _traced_coroutine(callback, callback, deliveries, queue)
            else:
                traced = _traced_function(callback, deliveries, queue)
        except Exception:
            return await wrapped(*args, **kwargs)
        if args:
            args = (traced, *args[1:])
        else:
            kwargs = {**kwargs, "callback": traced}
        return await wrapped(*args, **kwargs)

    return consume


def _traced_coroutine(awaitable: Callable[..., Any], callback: Callable[..., Any],
                      deliveries: Deliveries, queue: str) -> Callable[..., Any]:
    """``awaitable`` run inside a process span per message (in the task aio-pika makes
    for each delivery, so the span's context is that task's alone)."""

    async def on_message(message: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or suppressed():
            return await awaitable(message, *args, **kwargs)
        try:
            delivery = deliveries.start(message, queue, CALLBACK)
        except Exception:
            return await awaitable(message)
        try:
            result = await awaitable(message)
        except BaseException as exc:
            delivery.end(exc)
            raise
        delivery.end()
        return result

    return _named_after(on_message, callback)


def _traced_function(callback: Callable[..., Any], deliveries: Deliveries,
                     queue: str) -> Callable[..., Any]:
    """A plain callback (aio-pika 9) called inside a process span per message."""

    def on_message(message: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs or suppressed():
            return callback(message, *args, **kwargs)
        try:
            delivery = deliveries.start(message, queue, CALLBACK)
        except Exception:
            return callback(message)
        try:
            result = callback(message)
        except BaseException as exc:
            delivery.end(exc)
            raise
        delivery.end()
        return result

    return _named_after(on_message, callback)


def _named_after(wrapper: Callable[..., Any], callback: Callable[..., Any]
                 ) -> Callable[..., Any]:
    with suppress(Exception):  # (an odd callable: the wrapper keeps its own names)
        functools.update_wrapper(wrapper, callback, updated=())
    return wrapper


# ----- queue.iterator() ----------------------------------------------------------------------

class Iterators:
    """The delivery each queue iterator last yielded, until the next ``__anext__``, a
    ``process()`` block ending, or the iterator's ``close()``."""

    __slots__ = ("_current", "_deliveries")

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries
        self._current: weakref.WeakKeyDictionary[Any, _Delivery] = weakref.WeakKeyDictionary()

    def next_wrapper(self) -> Any:
        current = self._current
        deliveries = self._deliveries

        async def anext(wrapped: Any, instance: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
            with suppress(Exception):
                last = current.pop(instance, None)
                if last is not None:
                    last.end()
            message = await wrapped(*args, **kwargs)
            if not suppressed():
                with suppress(Exception):
                    current[instance] = deliveries.start(
                        message, instance._amqp_queue.name, ITERATOR)
            return message

        return anext

    def close_wrapper(self) -> Any:
        """``QueueIterator.close`` (also what ``__aexit__`` calls): the span of the message
        last yielded ends there, not when the program next reads the iterator."""
        current = self._current

        async def close(wrapped: Any, instance: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
            with suppress(Exception):
                last = current.pop(instance, None)
                if last is not None:
                    last.end()
            return await wrapped(*args, **kwargs)

        return close


# ----- message.process() ---------------------------------------------------------------------

class Blocks:
    """``ProcessContext.__aenter__``/``__aexit__``: see the module."""

    __slots__ = ("_deliveries", "_started")

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries
        # ProcessContext -> the delivery its __aenter__ found or started
        self._started: weakref.WeakKeyDictionary[Any, _Delivery] = weakref.WeakKeyDictionary()

    def enter_wrapper(self) -> Any:
        started = self._started
        deliveries = self._deliveries

        async def aenter(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
            result = await wrapped(*args, **kwargs)
            try:
                message = instance.message
                found = current_delivery(message)
                if found is None and not suppressed() and type(message.delivery_tag) is int:
                    # (no queue known here: the destination is the exchange and routing key)
                    found = deliveries.start(message, "", BLOCK)
                if found is not None:
                    started[instance] = found
            except Exception:
                pass
            return result

        return aenter

    def exit_wrapper(self) -> Any:
        started = self._started

        async def aexit(wrapped: Any, instance: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
            delivery = started.pop(instance, None)
            try:
                result = await wrapped(*args, **kwargs)  # (the ack or reject: settle spans)
            except BaseException as exc:
                if delivery is not None and delivery.owner != CALLBACK:
                    delivery.end(exc)
                raise
            if delivery is not None:
                exc = args[1] if len(args) > 1 and isinstance(args[1], BaseException) \
                    else None
                if delivery.owner == CALLBACK:
                    if exc is not None:
                        delivery.failure = exc
                else:
                    delivery.end(exc)
            return result

        return aexit
