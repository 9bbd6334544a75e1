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
Code: ``_celery_send`` (producer side), ``_celery_process`` (worker side),
``_celery_redis`` (the quiet transport), ``_celery_common`` (what both sides share).
"""

from __future__ import annotations

from typing import Any

from ._celery_process import WorkerSide
from ._celery_redis import quiet_redis_transport
from ._celery_send import ProducerSide
from ._import_hooks import when_imported
from ._method_wrappers import wrap_once

_UID = "telemetryflow.celery"


class _Tracing(ProducerSide, WorkerSide):
    """Both sides' telemetry, one operation cache: what ``patch`` connects."""


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
    when_imported("kombu.transport.redis", quiet_redis_transport)
