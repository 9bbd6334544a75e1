"""The producer side of the Celery instrumentation: the ``send {task name}`` span around
``Celery.send_task`` and the context written into the task message's headers at the
``before_task_publish`` signal (see ``celery``).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from ..infrastructure.current_context import attach, get_current, reset
from ._celery_common import (
    DESTINATION,
    MESSAGE_ID,
    CeleryTelemetry,
    Operation,
    failed,
    now,
    span_context,
)
from ._http_common import SPAN_KEY, suppressed
from ._messaging_counts import with_error

# Our key in the OpenTelemetry context: the send under way (for the publish signal).
_SEND_KEY = "telemetryflow.celery.send"
_W3C_KEYS = ("traceparent", "tracestate", "baggage")
_PRODUCER = SpanKind.PRODUCER


class _Send:
    """A ``send_task`` under way (``operation``: the destination's, once the publish signal
    named it)."""

    __slots__ = ("name", "operation", "server", "span")

    def __init__(self, span: Any, name: str, server: tuple[Any, Any],
                 operation: Operation) -> None:
        self.span = span
        self.name = name
        self.server = server
        self.operation = operation


class ProducerSide(CeleryTelemetry):
    """``send_task``'s wrapper and the publish signal's receiver."""

    def send_wrapper(self) -> Any:
        tracer = self._tracer
        histogram = self._sends
        counts = self._counts
        operation = self._operation
        server_of = self._server

        def send_task(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
            if suppressed():
                return wrapped(*args, **kwargs)
            try:
                name = args[0] if args else kwargs.get("name")
                if type(name) is not str:
                    return wrapped(*args, **kwargs)
                server = server_of(instance)
                send = operation("send", name, "", server)
                span = tracer.start_span(send.name, kind=_PRODUCER,
                                         attributes=send.attributes)
                state = _Send(span, name, server, send)
                current = get_current()
                token = attach(Context(current, **{SPAN_KEY: span, _SEND_KEY: state}))
            except Exception:
                return wrapped(*args, **kwargs)
            start = now()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                with suppress(Exception):
                    reset(token)
                sent = state.operation
                kind = failed(span, histogram, sent.metric, exc, now() - start)
                if kind is not None:
                    with suppress(Exception):
                        counts.sent(with_error(sent.key, kind))
                raise
            elapsed = now() - start
            try:
                reset(token)
                sent = state.operation
                histogram.record(elapsed, sent.metric)
                counts.sent(sent.key)
                span.end()
            except Exception:
                pass
            return result

        return send_task

    def before_publish(self, sender: Any = None, headers: Any = None, exchange: Any = None,
                       routing_key: Any = None, **_: Any) -> None:
        """Inside our ``send_task``: the routing Celery chose, and the context into the
        message headers. Never raises (Celery would log it and publish anyway)."""
        try:
            current = get_current()
            state = current.get(_SEND_KEY)
            if state is None or state.name != sender or type(headers) is not dict:
                return
            span = state.span
            destination = routing_key if type(routing_key) is str and routing_key else (
                exchange if type(exchange) is str else "")
            if destination:
                state.operation = self._operation("send", state.name, destination,
                                                  state.server)
            attributes = {DESTINATION: destination} if destination else {}
            task_id = headers.get("id")
            if task_id:
                attributes[MESSAGE_ID] = str(task_id)
            if attributes:
                span.set_attributes(attributes)
            previous = headers.get("traceparent")
            for key in _W3C_KEYS:
                headers.pop(key, None)
            self._injector.inject(headers, span, current)
            if previous and previous != headers.get("traceparent"):
                replaced = span_context({"traceparent": previous})
                if replaced is not None:
                    span.add_link(replaced)
        except Exception:
            pass
