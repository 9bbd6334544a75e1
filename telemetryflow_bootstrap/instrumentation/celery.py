"""Celery (5.3+): a trace from the code that sends a task, through the broker, to the worker
that runs it, after the OpenTelemetry messaging conventions.

Spans (``messaging.system=celery``)
    ``send {task name}`` (PRODUCER) around each ``Celery.send_task``, which
    ``task.delay()``, ``apply_async()``, canvas primitives and ``self.retry()`` all go
    through: routing, the message and its publish (the broker client's own spans, a
    redis ``LPUSH`` say, are its children). Its context goes into the task message's
    headers (global propagator: ``traceparent``, ``tracestate``, ``baggage``), written at
    Celery's ``before_task_publish`` signal into the very headers sent. A message that
    already carries a ``traceparent`` (a retry's copy of the request it retries, or one
    the caller gave in ``headers=``) gets this span's instead, and the span links to the
    one it replaced.
    ``process {task name}`` (CONSUMER) around each execution of a task by a worker, from
    ``task_prerun`` to ``task_postrun`` (the task body, its result being stored, its
    callbacks being sent), current meanwhile: the task's own spans and HTTP calls are its
    children. Its parent is the message's creation context (the send span), so producer
    and worker are one trace, and it links to it; with no context in the message it starts
    a trace of its own (and links to the span current in the worker, if any: pika's rule).
    In eager mode (``task.apply()``, ``task_always_eager``) the task runs inside the
    caller's call: its process span is the caller's current span's child, no send span.
Span names use the task name where the conventions put the destination: in Celery every
task usually shares one queue (``celery``), and the task is what says which work it is.
Attributes
    ``messaging.operation.name``/``.type`` (``send``, ``process``),
    ``messaging.destination.name`` (the routing key the message was published with: the
    queue, for Celery's direct exchanges; a worker reads it from the delivery info),
    ``messaging.message.id`` (the task id), ``celery.task_name``, ``celery.retries`` (how
    many times it was retried before, when > 0), ``celery.state`` (process: ``SUCCESS``,
    ``FAILURE``, ``RETRY``, ``REJECTED``, ``IGNORED``), ``server.address``/``server.port``
    (of the broker URL; nothing else of it is read: a password never is).
Failure and retry
    A task that raises: ``error.type`` (the exception's full class name), an ``exception``
    event (its message only for Celery's, billiard's and kombu's own exceptions: a task's
    may quote its arguments) and ERROR status; so does a send that raises (the exception
    propagates unchanged). ``self.retry()`` is not a failure: the process span ends with
    ``celery.state=RETRY``, ``celery.retry.reason`` (the class name of the exception the
    retry was for, else ``celery.exceptions.Retry``) and no error status; the retry's own
    send span is its child, and the next run is that send span's child: one trace
    through all the attempts. Task arguments, results and message bodies are never
    recorded.
Metrics (seconds, the conventions' buckets)
    ``messaging.client.operation.duration`` (send) and ``messaging.process.duration``
    (process; with ``celery.state``), with the span's attributes minus the per-message
    ones (id, retries), plus ``error.type`` on failure. Counters (``{message}``):
    ``messaging.client.sent.messages`` (each send, the send point's attributes,
    ``error.type`` when it raised) and ``messaging.client.consumed.messages`` (each task
    run a worker got from the broker, not an eager one: the process point's attributes
    without ``celery.state``, known only at the end); see ``_messaging_counts``.
Processes
    Prefork pool children are forks of the worker, made after the patch: they inherit the
    signal receivers, the SDK restarts its export threads in them (``os.register_at_fork``)
    and they flush before billiard ends them with ``os._exit`` (``lifecycle``). A child
    killed outright (hard time limit, SIGKILL) loses the spans it had not exported.
Quiet: with the Redis broker, the transport's bookkeeping (acks, putting back unacknowledged
messages, queue bindings, the PING when a channel opens) runs with instrumentation
suppressed; the redis instrumentation made each a trace of its own around every task.
Not traced: the worker's own machinery (consuming, acks, heartbeats, events), task
protocol 1 messages' context (the send span is made, the worker does not continue it),
results fetched by ``AsyncResult.get``.
Environment: none of its own (the propagators: ``OTEL_PROPAGATORS``).
"""

from __future__ import annotations

import sys
import traceback
import weakref
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, set_value
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, get_current_span

from .. import _diagnostics
from ..infrastructure.current_context import attach, get_current, reset
from . import _messaging_common as messaging
from ._error_type import error_type
from ._http_common import SPAN_KEY, suppressed
from ._import_hooks import when_imported
from ._messaging_counts import with_error
from ._method_wrappers import wrap_once

SYSTEM = "celery"
TASK_NAME = "celery.task_name"
STATE = "celery.state"
RETRIES = "celery.retries"
RETRY_REASON = "celery.retry.reason"
MESSAGE_ID = messaging.MESSAGE_ID
DESTINATION = messaging.DESTINATION
ERROR_TYPE = messaging.ERROR_TYPE

# Keys of ours in the OpenTelemetry context: the send under way (for the publish signal)
# and the task run (for the failure, retry and postrun signals).
_SEND_KEY = "telemetryflow.celery.send"
_RUN_KEY = "telemetryflow.celery.run"
_UID = "telemetryflow.celery"
_W3C_KEYS = ("traceparent", "tracestate", "baggage")
_OURS = ("celery.", "billiard.", "kombu.")  # exceptions whose message may be recorded
_MAX_CACHED = 512
_EMPTY = Context()
_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
_now = messaging.now


def patch(module: Any, context: Any) -> None:
    from celery import signals
    from celery.app.base import Celery

    tracing = _Tracing(context)
    wrap_once(Celery, "send_task", tracing.send_wrapper())
    # (strong references, one connection each however often this runs: the dispatch_uid)
    signals.before_task_publish.connect(tracing.before_publish, weak=False,
                                        dispatch_uid=f"{_UID}.publish")
    signals.task_prerun.connect(tracing.prerun, weak=False, dispatch_uid=f"{_UID}.prerun")
    signals.task_failure.connect(tracing.failure, weak=False, dispatch_uid=f"{_UID}.failure")
    signals.task_retry.connect(tracing.retry, weak=False, dispatch_uid=f"{_UID}.retry")
    signals.task_postrun.connect(tracing.postrun, weak=False, dispatch_uid=f"{_UID}.postrun")
    when_imported("kombu.transport.redis", _quiet_redis_transport)


# The Redis transport's own bookkeeping: acks and rejects (a MULTI pipeline each), putting
# back unacknowledged messages (a mutex SET, ZRANGE, EVALSHA), queue bindings, sizes,
# purges, the connection check when a channel opens (PING). A worker does it outside any
# task, so the redis instrumentation made each a trace of its own: noise around every task.
# Publishing (``_put``) stays traced: it happens inside the send span, as its child.
_REDIS_BOOKKEEPING = {
    "QoS": ("append", "restore_unacked", "ack", "reject", "restore_visible",
            "restore_by_tag"),
    "Channel": ("__init__", "_do_restore_message", "_restore", "_restore_at_beginning",
                "_get", "_size", "_new_queue", "_queue_bind", "_delete", "_has_queue",
                "get_table", "_purge", "sweep_bindings", "maybe_refresh_binding_expiry",
                "_refresh_bindings"),
}


def _quiet_redis_transport(module: Any) -> None:
    """Run the Redis transport's bookkeeping with instrumentation suppressed (a hook: never
    raises into the program's import)."""
    try:
        for class_name, names in _REDIS_BOOKKEEPING.items():
            owner = getattr(module, class_name)
            for name in names:
                if name in vars(owner):
                    wrap_once(owner, name, _suppressed_call)
    except Exception as exc:
        _diagnostics.warn(f"could not quiet kombu's redis transport ({type(exc).__name__}: "
                          f"{exc}); its bookkeeping shows as redis spans")


def _suppressed_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, get_current()))
    try:
        return wrapped(*args, **kwargs)
    finally:
        reset(token)


class _Operation:
    """Span name and attribute dicts of one operation, and the message counts' key (the
    metric attributes as a tuple), built once, shared read-only."""

    __slots__ = ("attributes", "key", "metric", "name")

    def __init__(self, name: str, attributes: dict[str, Any], metric: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric = metric
        self.key = tuple(metric.items())


class _Send:
    """A ``send_task`` under way (``operation``: the destination's, once the publish signal
    named it)."""

    __slots__ = ("name", "operation", "server", "span")

    def __init__(self, span: Any, name: str, server: tuple[Any, Any],
                 operation: _Operation) -> None:
        self.span = span
        self.name = name
        self.server = server
        self.operation = operation


class _Run:
    """A task execution between its prerun and postrun signals."""

    __slots__ = ("error", "metric", "reason", "span", "stack", "start", "task_id", "token")

    def __init__(self, span: Any, task_id: Any, metric: dict[str, Any]) -> None:
        self.span = span
        self.task_id = task_id
        self.metric = metric
        self.token: Any = None
        self.error: BaseException | None = None
        self.stack = ""
        self.reason: str | None = None
        self.start = _now()


class _Tracing:
    """What the wrapper and the signal receivers share, fetched once at patch time."""

    def __init__(self, context: Any) -> None:
        telemetry = messaging.Telemetry(context)
        self._tracer = telemetry.tracer
        self._sends = telemetry.operation
        self._processes = telemetry.process
        self._counts = telemetry.counts
        self._injector = messaging.Injector()
        self._operations: dict[Any, _Operation] = {}
        self._servers: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = \
            weakref.WeakKeyDictionary()

    # ----- shared --------------------------------------------------------------------------

    def _operation(self, verb: str, task_name: str, destination: str,
                   server: tuple[Any, Any]) -> _Operation:
        key = (verb, task_name, destination, server)
        found = self._operations.get(key)
        if found is None:
            metric: dict[str, Any] = {messaging.MESSAGING_SYSTEM: SYSTEM,
                                      messaging.OPERATION_NAME: verb,
                                      messaging.OPERATION_TYPE: verb,
                                      TASK_NAME: task_name}
            if destination:
                metric[DESTINATION] = destination
            host, port = server
            if host:
                metric[messaging.SERVER_ADDRESS] = host
            if type(port) is int:
                metric[messaging.SERVER_PORT] = port
            found = _Operation(f"{verb} {task_name}", dict(metric), metric)
            if len(self._operations) >= _MAX_CACHED:
                self._operations.clear()  # (rare: cheaper than LRU bookkeeping)
            self._operations[key] = found
        return found

    def _server(self, app: Any) -> tuple[Any, Any]:
        """Host and port of ``app``'s broker URL, read once per app."""
        try:
            return self._servers[app]
        except (KeyError, TypeError):
            pass
        server = _server_of(app)
        with suppress(TypeError):  # (an app that takes no weak reference: read each time)
            self._servers[app] = server
        return server

    # ----- send ------------------------------------------------------------------------------

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
            start = _now()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException as exc:
                with suppress(Exception):
                    reset(token)
                sent = state.operation
                kind = _failed(span, histogram, sent.metric, exc, _now() - start)
                if kind is not None:
                    with suppress(Exception):
                        counts.sent(with_error(sent.key, kind))
                raise
            elapsed = _now() - start
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
                replaced = _span_context({"traceparent": previous})
                if replaced is not None:
                    span.add_link(replaced)
        except Exception:
            pass

    # ----- process ---------------------------------------------------------------------------

    def prerun(self, sender: Any = None, task_id: Any = None, task: Any = None,
               **_: Any) -> None:
        if suppressed():
            return
        try:
            request = task.request
            name = task.name
            eager = bool(request.is_eager)
            info = request.delivery_info
            destination = info.get("routing_key") if isinstance(info, dict) else None
            process = self._operation("process", name,
                                      destination if type(destination) is str else "",
                                      self._server(task.app))
            attributes = {**process.attributes, MESSAGE_ID: str(task_id)}
            retries = request.retries
            if type(retries) is int and retries > 0:
                attributes[RETRIES] = retries
            current = get_current()
            links: list[Link] = []
            if eager:
                parent = current
            else:
                self._counts.consumed(process.key)
                parent = propagate.extract(vars(request), context=_EMPTY)
                found = get_current_span(parent).get_span_context()
                if found.is_valid:
                    links.append(Link(found))
                else:
                    parent = _EMPTY
                ambient = get_current_span(current).get_span_context()
                if ambient.is_valid and not ambient.is_remote:
                    links.append(Link(ambient))
            span = self._tracer.start_span(process.name, context=parent, kind=_CONSUMER,
                                           attributes=attributes, links=links)
            run = _Run(span, task_id, process.metric)
            run.token = attach(Context(parent, **{SPAN_KEY: span, _RUN_KEY: run}))
        except Exception:
            pass

    def failure(self, sender: Any = None, task_id: Any = None, exception: Any = None,
                **_: Any) -> None:
        """The task raised: keep the exception and its stack now (Celery clears the
        traceback's frames right after this signal)."""
        run = _run_of(task_id)
        if run is None or not isinstance(exception, BaseException):
            return
        with suppress(Exception):
            run.error = exception
            run.stack = "".join(traceback.format_tb(exception.__traceback__))

    def retry(self, sender: Any = None, request: Any = None, reason: Any = None,
              **_: Any) -> None:
        run = _run_of(getattr(request, "id", None))
        if run is None:
            return
        with suppress(Exception):
            cause = getattr(reason, "exc", None)
            run.reason = error_type(cause if isinstance(cause, BaseException) else reason)

    def postrun(self, sender: Any = None, task_id: Any = None, state: Any = None,
                **_: Any) -> None:
        run = _run_of(task_id)
        if run is None:
            return
        elapsed = _now() - run.start
        with suppress(Exception):  # (made in this call of trace_task: same context)
            reset(run.token)
        span = run.span
        try:
            metric = run.metric
            error = run.error if state == "FAILURE" else None
            if state is None:  # a BaseException on its way out (postrun runs in a finally)
                error = sys.exc_info()[1]
            if type(state) is str:
                span.set_attribute(STATE, state)
                metric = {**metric, STATE: state}
            if run.reason is not None and state == "RETRY":
                span.set_attribute(RETRY_REASON, run.reason)
            if error is not None:
                _failed(span, self._processes, metric, error, elapsed, run.stack)
                return
            self._processes.record(elapsed, metric)
            span.end()
        except Exception:
            pass


def _run_of(task_id: Any) -> _Run | None:
    run = get_current().get(_RUN_KEY)
    return run if run is not None and run.task_id == task_id else None


def _span_context(carrier: dict[str, str]) -> Any:
    found = get_current_span(propagate.extract(carrier, context=_EMPTY)).get_span_context()
    return found if found.is_valid else None


def _server_of(app: Any) -> tuple[Any, Any]:
    """(host, port) of the app's broker URL (the first of a failover list); its user and
    password are never read."""
    try:
        conf = app.conf
        url = conf.broker_write_url or conf.broker_url
        if isinstance(url, (list, tuple)):
            url = url[0] if url else None
        if not isinstance(url, str) or "://" not in url:
            return None, None
        parts = urlsplit(url.split(";", 1)[0].strip())
        port = parts.port
        return parts.hostname, port
    except Exception:
        return None, None


def _failed(span: Any, histogram: Any, metric: dict[str, Any], exc: BaseException,
            elapsed: float, stack: str | None = None) -> str | None:
    """End ``span`` as failed and record its point with ``error.type``; the error type
    (None if that failed). Never raises."""
    try:
        kind = error_type(exc)
        ours = type(exc).__module__.startswith(_OURS)
        if stack is None:
            stack = "".join(traceback.format_tb(exc.__traceback__))
        event = {"exception.type": kind,
                 "exception.stacktrace": f"Traceback (most recent call last):\n{stack}{kind}"}
        if ours:
            event["exception.message"] = str(exc)
        span.set_attribute(ERROR_TYPE, kind)
        span.add_event("exception", event)
        span.set_status(Status(StatusCode.ERROR, f"{kind}: {exc}" if ours else kind))
        span.end()
        histogram.record(elapsed, {**metric, ERROR_TYPE: kind})
    except Exception:
        return None
    return kind
