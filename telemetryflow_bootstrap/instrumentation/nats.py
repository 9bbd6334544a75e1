"""nats-py (the asyncio NATS client, JetStream included): messaging spans and duration
metrics after the OpenTelemetry messaging semantic conventions, with the trace context
carried in the NATS message headers so a consumer's work joins the producer's trace.

Spans (``messaging.system=nats``; the name is ``{messaging.operation.name} {subject}``, or
the operation name alone for a temporary subject: an ``_INBOX.`` reply subject, the client's
own inbox prefix, a JetStream ``$JS.ACK.`` subject)
    ``Client.publish``          PRODUCER ``publish {subject}`` (``msg.respond()`` is one)
    ``Client.request``          CLIENT ``request {subject}``: it waits for the reply, so
                                ``CLIENT`` as the conventions ask of a producer that waits
                                for a response; the message it sends carries its context, so
                                the responder's ``process`` span is its child
    ``JetStreamContext.publish`` PRODUCER ``publish {subject}`` (the broker's ack included)
    ``JetStreamContext.publish_async``
                                PRODUCER ``publish {subject}`` from the call until the ack
                                settles the returned future: ended with ``error.type`` when
                                the ack is an error or the future is cancelled (a future
                                that never settles, its connection closed, leaves its span
                                unended, so unexported)
    subscription callbacks      CONSUMER ``process {subject}`` per message (see below)
    ``Subscription.next_msg``, ``async for msg in sub.messages``
                                CLIENT ``receive {subject}`` per message received (a wait
                                that times out with none makes no span)
    ``PullSubscription.fetch``  CLIENT ``receive {subject}`` per fetch, linked to each message
    ``Msg.ack/nak/term/in_progress/ack_sync``
                                CLIENT ``ack {subject}`` etc. (``messaging.operation.type``
                                ``settle``)
Attributes: ``messaging.system``, ``messaging.operation.name`` (publish, request, process,
receive, ack...), ``messaging.operation.type`` (send, process, receive, settle),
``messaging.destination.name`` (the subject), ``messaging.destination.temporary`` (reply
inboxes), ``messaging.destination.template`` (a wildcard subscription's subject: the
process span is named after it), ``messaging.consumer.group.name`` (queue group),
``messaging.message.body.size``, ``messaging.batch.message_count`` (fetch),
``server.address``/``server.port`` (host and port only: a ``nats://user:pass@host`` URL's
credentials are never read), ``error.type`` and the exception on failure. Payloads and
header values are never recorded.

Subjects that name something made without bound get a template (NATS wildcards) as the
span name and ``messaging.destination.template``, the full subject staying in
``messaging.destination.name`` on the span only: key-value keys (``$KV.{bucket}.>``),
object store chunks and objects (``$O.{bucket}.C.*``, ``$O.{bucket}.M.*``), JetStream API
requests naming a consumer (``$JS.API.CONSUMER.INFO.{stream}.>``: ephemeral consumers are
named by the server) and direct gets (``$JS.API.DIRECT.GET.{stream}.>``).

Metrics (histograms, seconds): ``messaging.client.operation.duration`` (publish, request,
receive, settle) and ``messaging.process.duration`` (callbacks), with the span's
attributes but for the destination of temporary subjects, wildcard subscriptions and
templated subjects (high cardinality: the template is kept instead). Counters
(``{message}``, same attributes): ``messaging.client.sent.messages`` (publish, request,
JetStream publishes; ``error.type`` on failure) and ``messaging.client.consumed.messages``
(each message a callback, ``next_msg``/iteration or a fetch delivered; see
``_messaging_counts``).

Trace structure. The context is injected (global propagator) into a copy of the caller's
headers, only when the server announced header support (NATS 2.2+). A callback's
``process`` span has the message's creation context as its *parent* and also as a *link*:
the conventions recommend the parent when one message is processed on its own (a NATS
callback gets exactly one) and ask for the link in every case; the user's work inside the
callback becomes its children. A message without trace headers starts a new trace: the
context a subscription was made in (nats-py's delivery task copies it) says nothing about
the messages it delivers later. ``receive`` spans are children of the caller's context,
linked to the message's creation context (known only once it arrived: the span gets the
time the wait began as its start).

Inner calls stand aside: a request's, a JetStream publish's or an ack's own
``publish``/``subscribe`` make no span of their own (a publish still carries the outer
span's context), and nats-py's internal reply subscriptions get no process spans.

Environment: none of its own; nothing is traced while instrumentation is suppressed.
Not traced: ``old_style`` requests' reply wait beyond the request span, KV/object store
operations as such (their publishes, API requests and watches show as templated spans),
the ``nats.micro`` service framework beyond its publishes and callbacks.

The consumer side lives in ``_nats_consumers.py``, what both sides share in
``_nats_telemetry.py``.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, set_span_in_context

from telemetryflow_bootstrap.infrastructure.current_context import attach, get_current, reset
from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper, wrap_once
from telemetryflow_bootstrap.instrumentation._nats_consumers import (
    _fetching,
    _receiving,
    _subscribe,
)
from telemetryflow_bootstrap.instrumentation._nats_telemetry import (
    _CLIENT,
    _INJECT,
    _INNER,
    _PRODUCER,
    _QUIET,
    BODY_SIZE,
    _argument,
    _now,
    _Op,
    _suppressed,
    _Telemetry,
    _with_trace_headers,
)

# ----- producers ---------------------------------------------------------------------------


def _publish(telemetry: _Telemetry) -> Callable[..., Any]:
    async def publish(wrapped: Any, client: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        current = get_current()
        if _suppressed(current):
            return await wrapped(*args, **kwargs)
        inner = current.get(_INNER)
        if inner is not None:
            if inner == _INJECT:
                with suppress(Exception):
                    args, kwargs = _with_trace_headers(client, args, kwargs, 3, current)
            return await wrapped(*args, **kwargs)
        span = None
        try:
            subject = _argument(args, kwargs, 0, "subject")
            payload = _argument(args, kwargs, 1, "payload", b"")
            op = telemetry.op("publish", "send", client, subject)
            attributes = {**op.attributes, BODY_SIZE: len(payload)}
            span = telemetry.start(op, _PRODUCER, attributes)
            args, kwargs = _with_trace_headers(client, args, kwargs, 3, current, span)
        except Exception:
            if span is not None:
                span.end()
            return await wrapped(*args, **kwargs)
        return await _run(telemetry, op, span, wrapped, args, kwargs)

    return publish


async def _run(telemetry: _Telemetry, op: _Op, span: Any, wrapped: Any,
               args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    start = _now()
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        telemetry.failed(op, span, exc, _now() - start)
        raise
    telemetry.ended(op, span, _now() - start)
    return result


def _outer(telemetry: _Telemetry, kind: str, kind_type: str, span_kind: SpanKind,
           inner: int, subject_of: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any],
           client_of: Callable[[Any], Any], size_index: int | None = None
           ) -> Callable[..., Any]:
    """A wrapper for a call made of other nats-py calls (a request, a JetStream publish,
    an ack): its span is current while it runs, with ``inner`` telling those calls what to
    do (see ``_INNER``)."""

    async def call(wrapped: Any, instance: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:
        current = get_current()
        if _suppressed(current) or current.get(_INNER) is not None:
            return await wrapped(*args, **kwargs)
        try:
            client = client_of(instance)
            op = telemetry.op(kind, kind_type, client, subject_of(instance, args, kwargs))
            attributes = None
            if size_index is not None:
                payload = _argument(args, kwargs, size_index, "payload", b"")
                attributes = {**op.attributes, BODY_SIZE: len(payload)}
            span = telemetry.start(op, span_kind, attributes)
            token = attach(Context(set_span_in_context(span, current), **{_INNER: inner}))
        except Exception:
            return await wrapped(*args, **kwargs)
        try:
            return await _run(telemetry, op, span, wrapped, args, kwargs)
        finally:
            reset(token)

    return call


def _publish_async(telemetry: _Telemetry) -> Callable[..., Any]:
    """``JetStreamContext.publish_async``: a PRODUCER ``publish {subject}`` span from the
    call until the broker's acknowledgement settles the future it returns, as
    ``js.publish``'s span covers its ack (the conventions' send operation ends when the
    broker has the message; the span's status and ``error.type``, and the duration point,
    say how the ack went: an ``APIError``, no stream, a cancelled future). The message it
    sends carries the span's context; nats-py's own reply subscription stands aside."""

    async def publish_async(wrapped: Any, instance: Any, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        current = get_current()
        if _suppressed(current) or current.get(_INNER) is not None:
            return await wrapped(*args, **kwargs)
        try:
            op = telemetry.op("publish", "send", instance._nc,
                              _argument(args, kwargs, 0, "subject"))
            payload = _argument(args, kwargs, 1, "payload", b"")
            span = telemetry.start(op, _PRODUCER, {**op.attributes, BODY_SIZE: len(payload)})
            token = attach(Context(set_span_in_context(span, current), **{_INNER: _INJECT}))
        except Exception:
            return await wrapped(*args, **kwargs)
        start = _now()
        try:
            future = await wrapped(*args, **kwargs)
        except BaseException as exc:
            telemetry.failed(op, span, exc, _now() - start)
            raise
        finally:
            reset(token)
        try:
            future.add_done_callback(_acknowledged(telemetry, op, span, start))
        except Exception:  # (not a future: the span ends with the call)
            telemetry.ended(op, span, _now() - start)
        return future

    return publish_async


def _acknowledged(telemetry: _Telemetry, op: _Op, span: Any, start: float
                  ) -> Callable[[Any], None]:
    """The done callback that ends a ``publish_async`` span with its ack's outcome.

    The exception is read from the future's ``_exception`` (asyncio's C and Python futures
    both have it), not ``exception()``, which would mark it retrieved and silence the
    "Future exception was never retrieved" report a program that drops the future gets."""

    def done(future: Any) -> None:
        elapsed = _now() - start
        if future.cancelled():
            telemetry.failed(op, span, asyncio.CancelledError(), elapsed)
            return
        try:
            exc = future._exception
        except AttributeError:  # another kind of future
            try:
                exc = future.exception()
            except Exception as odd:
                exc = odd
        if exc is None:
            telemetry.ended(op, span, elapsed)
        else:
            telemetry.failed(op, span, exc, elapsed)

    return done


def _first_subject(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _argument(args, kwargs, 0, "subject")


def _message_subject(message: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return message.subject


# ----- patching ----------------------------------------------------------------------------


def patch(module: Any, context: Any) -> None:
    """Wrap nats-py's client, subscription, message and JetStream methods (once)."""
    from nats.aio import client as client_module
    from nats.aio import msg as msg_module
    from nats.aio import subscription as subscription_module

    client_class = client_module.Client
    if our_wrapper(client_class, "publish") is not None:
        return  # patched already (two bootstraps)
    telemetry = _Telemetry(context)
    jetstream = _jetstream()
    # nats-py's own reply subscriptions: their callbacks are not the program's processing
    internal = tuple(found for found in (
        getattr(client_class, "_request_sub_callback", None),
        getattr(getattr(jetstream, "JetStreamContext", None), "_handle_async_reply", None))
        if found is not None)
    wrap_once(client_class, "publish", _publish(telemetry))
    wrap_once(client_class, "request", _outer(
        telemetry, "request", "send", _CLIENT, _INJECT, _first_subject, _self, 1))
    wrap_once(client_class, "subscribe", _subscribe(telemetry, internal))
    subscription = subscription_module.Subscription
    from nats.errors import TimeoutError as NoMessage

    _wrap(subscription, "next_msg", _receiving(telemetry, _self, (NoMessage,)))
    _wrap(getattr(subscription_module, "_SubscriptionMessageIterator", None), "__anext__",
          _receiving(telemetry, _iterated, (StopAsyncIteration,)))
    for name in ("ack", "ack_sync", "nak", "term", "in_progress"):
        _wrap(msg_module.Msg, name, _outer(
            telemetry, name, "settle", _CLIENT, _QUIET, _message_subject, _message_client))
    if jetstream is not None:
        context_class = jetstream.JetStreamContext
        _wrap(context_class, "publish", _outer(
            telemetry, "publish", "send", _PRODUCER, _INJECT, _first_subject, _js_client, 1))
        _wrap(context_class, "publish_async", _publish_async(telemetry))
        _wrap(getattr(context_class, "PullSubscription", None), "fetch",
              _fetching(telemetry, (NoMessage,)))


def _wrap(owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
    """Wrap a method the publish/request/subscribe spans can do without, when this
    nats-py has it (another version may have moved it): the rest stays traced."""
    if owner is not None and name in vars(owner):
        wrap_once(owner, name, wrapper)


def _jetstream() -> Any:
    try:
        from nats.js import client as jetstream
    except ImportError:  # a nats-py without JetStream
        return None
    return jetstream


def _self(instance: Any) -> Any:
    return instance


def _iterated(iterator: Any) -> Any:
    return iterator._sub


def _message_client(message: Any) -> Any:
    return message._client


def _js_client(context: Any) -> Any:
    return context._nc
