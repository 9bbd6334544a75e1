"""The consumer side of the NATS instrumentation: subscription callbacks (``process``
spans), ``Subscription.next_msg`` and the messages iterator, ``PullSubscription.fetch``
(``receive`` spans). See ``nats.py`` for what is recorded and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Link, get_current_span, set_span_in_context

from telemetryflow_bootstrap.infrastructure.current_context import attach, get_current, reset
from telemetryflow_bootstrap.instrumentation._nats_headers import creation_context
from telemetryflow_bootstrap.instrumentation._nats_telemetry import (
    _CLIENT,
    _CONSUMER,
    _INNER,
    _QUIET,
    BATCH_COUNT,
    BODY_SIZE,
    GROUP,
    _argument,
    _now,
    _replace,
    _suppressed,
    _Telemetry,
)


def _subscribe(telemetry: _Telemetry, internal: tuple[Any, ...]) -> Callable[..., Any]:
    async def subscribe(wrapped: Any, client: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
        current = get_current()
        cb = _argument(args, kwargs, 2, "cb")
        if cb is None or _suppressed(current) or current.get(_INNER) is not None \
                or getattr(cb, "__func__", None) in internal or not _coroutine(cb):
            return await wrapped(*args, **kwargs)
        try:
            traced = _processing(telemetry, client, _argument(args, kwargs, 0, "subject"),
                                 _argument(args, kwargs, 1, "queue", "") or "", cb)
            args, kwargs = _replace(args, kwargs, 2, "cb", traced)
        except Exception:
            pass
        return await wrapped(*args, **kwargs)

    return subscribe


def _coroutine(cb: Any) -> bool:
    """nats-py's own test of a callback (a coroutine function, or a partial of one): one it
    refuses is left as it is, so the program gets nats-py's error, not a later one."""
    return iscoroutinefunction(cb) or (hasattr(cb, "func")
                                       and iscoroutinefunction(cb.func))


def _processing(telemetry: _Telemetry, client: Any, pattern: str, queue: str,
                cb: Any) -> Callable[[Any], Any]:
    """``cb`` inside a ``process`` span per message (see the module on its parent)."""
    tracer = telemetry.tracer

    async def traced(msg: Any) -> Any:
        try:
            if _suppressed(get_current()):
                return await cb(msg)
            op = telemetry.process_op(client, pattern, queue, msg.subject)
            telemetry.counts.consumed(op.key)
            parent = creation_context(msg.headers)
            created = _span_context(parent)
            attributes = {**op.attributes, BODY_SIZE: len(msg.data)}
            span = tracer.start_span(op.name, context=parent, kind=_CONSUMER,
                                     attributes=attributes,
                                     links=(Link(created),) if created is not None else ())
            token = attach(set_span_in_context(span, parent))
        except Exception:
            return await cb(msg)
        start = _now()
        try:
            result = await cb(msg)
        except BaseException as exc:
            telemetry.failed(op, span, exc, _now() - start, process=True)
            raise
        finally:
            reset(token)
        telemetry.ended(op, span, _now() - start, process=True)
        return result

    traced.__wrapped__ = cb  # type: ignore[attr-defined]
    return traced


def _span_context(context: Context) -> Any:
    found = get_current_span(context).get_span_context()
    return found if found.is_valid else None


def _receiving(telemetry: _Telemetry, subscription_of: Callable[[Any], Any],
               nothing: tuple[type[BaseException], ...]) -> Callable[..., Any]:
    """``Subscription.next_msg`` / the messages iterator: a ``receive`` span made once the
    message is there, started when the wait began. ``nothing``: the exceptions that say no
    message came (a timeout, the end of the iteration): no span and no point, as a poll
    that got nothing is no operation on a message, and a program polling with a timeout
    would otherwise fill its traces with failed receives."""
    tracer = telemetry.tracer

    async def receive(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        current = get_current()
        # (inside a fetch of ours, whose span covers the wait: a fetch of one message
        # waits with next_msg)
        if _suppressed(current) or current.get(_INNER) is not None:
            return await wrapped(*args, **kwargs)
        started, start = time.time_ns(), _now()
        try:
            msg = await wrapped(*args, **kwargs)
        except BaseException as exc:
            if not isinstance(exc, nothing):
                _received(telemetry, tracer, subscription_of(instance), None, started,
                          _now() - start, exc)
            raise
        _received(telemetry, tracer, subscription_of(instance), [msg], started,
                  _now() - start)
        return msg

    return receive


def _fetching(telemetry: _Telemetry, nothing: tuple[type[BaseException], ...]
              ) -> Callable[..., Any]:
    """``PullSubscription.fetch``: one ``receive`` span per fetch, linked to each message;
    the fetch's own requests stand aside; a fetch that times out empty makes none (see
    ``_receiving``)."""
    tracer = telemetry.tracer

    async def fetch(wrapped: Any, instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        current = get_current()
        if _suppressed(current) or current.get(_INNER) is not None:
            return await wrapped(*args, **kwargs)
        started, start = time.time_ns(), _now()
        token = attach(Context(current, **{_INNER: _QUIET}))
        try:
            msgs = await wrapped(*args, **kwargs)
        except BaseException as exc:
            reset(token)
            if isinstance(exc, nothing):
                raise
            _received(telemetry, tracer, getattr(instance, "_sub", None), None, started,
                      _now() - start, exc)
            raise
        reset(token)
        _received(telemetry, tracer, getattr(instance, "_sub", None), msgs, started,
                  _now() - start)
        return msgs

    return fetch


def _received(telemetry: _Telemetry, tracer: Any, subscription: Any, msgs: Any,
              started: int, elapsed: float, exc: BaseException | None = None) -> None:
    """The ``receive`` span and point of a wait that ended; never raises."""
    try:
        client = subscription._conn
        # (a batch all from one subject is named after it, not after the fetch's inbox)
        subject = msgs[0].subject if msgs and all(
            msg.subject == msgs[0].subject for msg in msgs) else subscription._subject
        op = telemetry.op("receive", "receive", client, subject)
        attributes = dict(op.attributes)
        if subscription._queue:
            attributes[GROUP] = subscription._queue
        links = []
        for msg in msgs or ():
            created = _span_context(creation_context(msg.headers))
            if created is not None:
                links.append(Link(created))
        if msgs is not None and len(msgs) != 1:
            attributes[BATCH_COUNT] = len(msgs)
        elif msgs:
            attributes[BODY_SIZE] = len(msgs[0].data)
        span = tracer.start_span(op.name, kind=_CLIENT, attributes=attributes, links=links,
                                 start_time=started)
        if exc is not None:
            telemetry.failed(op, span, exc, elapsed)
            return
        if msgs:
            telemetry.counts.consumed(op.key, len(msgs))
        telemetry.ended(op, span, elapsed)
    except Exception:
        pass
