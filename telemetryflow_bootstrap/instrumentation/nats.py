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

Metrics (histograms, seconds): ``messaging.client.operation.duration`` (publish, request,
receive, settle) and ``messaging.process.duration`` (callbacks), with the span's
attributes but for the destination of temporary subjects and of wildcard subscriptions
(high cardinality: the template is kept instead).

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
operations as such (their API requests show as ``request $JS.API...`` spans), the
``nats.micro`` service framework beyond its publishes and callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from inspect import iscoroutinefunction
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import (
    Link,
    NoOpTracer,
    SpanKind,
    Status,
    StatusCode,
    get_current_span,
    set_span_in_context,
)

from telemetryflow_bootstrap.infrastructure.current_context import attach, get_current, reset
from telemetryflow_bootstrap.instrumentation._error_type import error_type
from telemetryflow_bootstrap.instrumentation._http_common import DURATION_BUCKETS
from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper, wrap_once
from telemetryflow_bootstrap.instrumentation._nats_headers import (
    creation_context,
    headers_supported,
    with_context,
)

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
TEMPLATE = "messaging.destination.template"
TEMPORARY = "messaging.destination.temporary"
GROUP = "messaging.consumer.group.name"
OPERATION = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
BODY_SIZE = "messaging.message.body.size"
BATCH_COUNT = "messaging.batch.message_count"
ADDRESS = "server.address"
PORT = "server.port"
ERROR_TYPE = "error.type"
CLIENT_DURATION = "messaging.client.operation.duration"
PROCESS_DURATION = "messaging.process.duration"

# Set in the context of a call of ours whose inner nats-py calls must not trace themselves
# (a request's publish, an ack's publish): _INJECT, the inner publish still carries the
# current context; _QUIET, it sends nothing extra.
_INNER = "telemetryflow.nats.inner"
_INJECT = 1
_QUIET = 2
_TEMPORARY_PREFIXES = ("_INBOX.", "$JS.ACK.")
_MAX_OPS = 1024
_now = time.perf_counter
_PRODUCER, _CLIENT, _CONSUMER = SpanKind.PRODUCER, SpanKind.CLIENT, SpanKind.CONSUMER


class _Op:
    """One operation on one subject through one server: span name and attribute sets,
    built once and shared read-only."""

    __slots__ = ("attributes", "metric", "name")

    def __init__(self, name: str, attributes: dict[str, Any], metric: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric = metric


class _Telemetry:
    """The tracer and histograms, fetched once at patch time, and the prepared operations."""

    def __init__(self, context: Any) -> None:
        from telemetryflow_bootstrap.infrastructure.fast_histogram import fast_histogram
        from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafTracer

        self.tracer = context.tracer if context.tracer is not None else NoOpTracer()
        self.leaf = LeafTracer.for_tracer(self.tracer)
        meter = context.meter
        self.client_duration = self.process_duration = None
        if meter is not None:
            self.client_duration = fast_histogram(meter.create_histogram(
                CLIENT_DURATION, unit="s",
                description="Duration of messaging operation initiated by a producer or "
                            "consumer client.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
            self.process_duration = fast_histogram(meter.create_histogram(
                PROCESS_DURATION, unit="s", description="Duration of processing operation.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
        self._ops: dict[tuple[Any, ...], _Op] = {}

    def op(self, kind: str, kind_type: str, client: Any, subject: str) -> _Op:
        uri = _uri(client)
        key = (kind, subject, uri)
        found = self._ops.get(key)
        if found is not None:
            return found
        attributes = _server(uri)
        attributes[OPERATION] = kind
        attributes[OPERATION_TYPE] = kind_type
        metric = dict(attributes)
        attributes[DESTINATION] = subject
        if _is_temporary(client, subject):
            attributes[TEMPORARY] = True
            return _Op(kind, attributes, metric)  # one-off subject: not cached
        metric[DESTINATION] = subject
        return self._keep(key, _Op(f"{kind} {subject}", attributes, metric))

    def process_op(self, client: Any, pattern: str, queue: str, subject: str) -> _Op:
        """A message on ``subject`` delivered to a subscription to ``pattern``."""
        uri = _uri(client)
        key = ("process", subject, uri, pattern, queue)
        found = self._ops.get(key)
        if found is not None:
            return found
        attributes = _server(uri)
        attributes[OPERATION] = "process"
        attributes[OPERATION_TYPE] = "process"
        if queue:
            attributes[GROUP] = queue
        metric = dict(attributes)
        attributes[DESTINATION] = subject
        if ("*" in pattern or ">" in pattern) and not _is_temporary(client, pattern):
            attributes[TEMPLATE] = metric[TEMPLATE] = pattern
            name = f"process {pattern}"
        elif _is_temporary(client, subject):
            attributes[TEMPORARY] = True
            return _Op("process", attributes, metric)
        else:
            metric[DESTINATION] = subject
            name = f"process {subject}"
        return self._keep(key, _Op(name, attributes, metric))

    def _keep(self, key: tuple[Any, ...], op: _Op) -> _Op:
        if len(self._ops) >= _MAX_OPS:
            self._ops.clear()  # rare; cheaper than LRU bookkeeping
        self._ops[key] = op
        return op

    def start(self, op: _Op, kind: SpanKind, attributes: dict[str, Any] | None = None) -> Any:
        """A span for a call nothing of the program's runs inside (a leaf)."""
        leaf = self.leaf
        if leaf is not None:
            if attributes is None:
                return leaf.start(op.name, kind, op.attributes)
            return leaf.start(op.name, kind, attributes, shared=False)
        return self.tracer.start_span(op.name, kind=kind,
                                      attributes=op.attributes if attributes is None
                                      else attributes)

    def ended(self, op: _Op, span: Any, elapsed: float, process: bool = False) -> None:
        histogram = self.process_duration if process else self.client_duration
        try:
            if histogram is not None:
                histogram.record(elapsed, op.metric)
            span.end()
        except Exception:
            pass

    def failed(self, op: _Op, span: Any, exc: BaseException, elapsed: float,
               process: bool = False) -> None:
        # Runs inside the caller's ``except``: never raises, or the program would see our
        # error instead of its own.
        histogram = self.process_duration if process else self.client_duration
        try:
            kind = error_type(exc)
            span.set_attribute(ERROR_TYPE, kind)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, kind))
            span.end()
            if histogram is not None:
                histogram.record(elapsed, {**op.metric, ERROR_TYPE: kind})
        except Exception:
            pass


def _uri(client: Any) -> Any:
    server = getattr(client, "_current_server", None)
    return getattr(server, "uri", None)


def _server(uri: Any) -> dict[str, Any]:
    """``messaging.system`` and the server's host and port: never the URL's userinfo."""
    attributes: dict[str, Any] = {SYSTEM: "nats"}
    try:
        host, port = uri.hostname, uri.port
    except Exception:  # no server yet, or not a ParseResult
        return attributes
    if host:
        attributes[ADDRESS] = host
    if type(port) is int:
        attributes[PORT] = port
    return attributes


def _is_temporary(client: Any, subject: str) -> bool:
    if subject.startswith(_TEMPORARY_PREFIXES):
        return True
    prefix = getattr(client, "_inbox_prefix", None)
    try:
        return bool(prefix) and subject.startswith(bytes(prefix).decode() + ".")
    except Exception:
        return False


def _suppressed(current: Context) -> bool:
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation"))


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
              default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _replace(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
             value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with argument ``index``/``name`` set to ``value``."""
    if len(args) > index:
        return (*args[:index], value, *args[index + 1:]), kwargs
    return args, {**kwargs, name: value}


def _with_trace_headers(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        index: int, context: Context, span: Any = None
                        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``publish`` arguments whose headers (argument ``index``) carry ``span`` (default:
    ``context``'s) and ``context``'s baggage; unchanged when the server takes no headers."""
    if not headers_supported(client):
        return args, kwargs
    headers = with_context(_argument(args, kwargs, index, "headers"), context, span)
    return _replace(args, kwargs, index, "headers", headers)


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


def _first_subject(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _argument(args, kwargs, 0, "subject")


def _message_subject(message: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return message.subject


# ----- consumers ---------------------------------------------------------------------------


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
        if _suppressed(get_current()):
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
        subject = msgs[0].subject if msgs and len(msgs) == 1 else subscription._subject
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
        else:
            telemetry.ended(op, span, elapsed)
    except Exception:
        pass


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
