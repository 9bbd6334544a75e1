"""What both sides of the Celery instrumentation share (``celery`` says what it produces):
attribute names, the per-operation span name and attribute dicts, the broker's address,
and how a failed send or task run ends its span.
"""

from __future__ import annotations

import traceback
import weakref
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode, get_current_span

from . import _messaging_common as messaging
from ._error_type import error_type

SYSTEM = "celery"
TASK_NAME = "celery.task_name"
STATE = "celery.state"
RETRIES = "celery.retries"
RETRY_REASON = "celery.retry.reason"
MESSAGE_ID = messaging.MESSAGE_ID
DESTINATION = messaging.DESTINATION
ERROR_TYPE = messaging.ERROR_TYPE

_OURS = ("celery.", "billiard.", "kombu.")  # exceptions whose message may be recorded
_MAX_CACHED = 512
EMPTY = Context()
now = messaging.now


class Operation:
    """Span name and attribute dicts of one operation, and the message counts' key (the
    metric attributes as a tuple), built once, shared read-only."""

    __slots__ = ("attributes", "key", "metric", "name")

    def __init__(self, name: str, attributes: dict[str, Any], metric: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric = metric
        self.key = tuple(metric.items())


class CeleryTelemetry:
    """What the send wrapper and the signal receivers share, fetched once at patch time;
    ``_celery_send`` and ``_celery_process`` add the two sides' methods."""

    def __init__(self, context: Any) -> None:
        telemetry = messaging.Telemetry(context)
        self._tracer = telemetry.tracer
        self._sends = telemetry.operation
        self._processes = telemetry.process
        self._counts = telemetry.counts
        self._injector = messaging.Injector()
        self._operations: dict[Any, Operation] = {}
        self._servers: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = \
            weakref.WeakKeyDictionary()

    def _operation(self, verb: str, task_name: str, destination: str,
                   server: tuple[Any, Any]) -> Operation:
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
            found = Operation(f"{verb} {task_name}", dict(metric), metric)
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
        server = server_of(app)
        with suppress(TypeError):  # (an app that takes no weak reference: read each time)
            self._servers[app] = server
        return server


def span_context(carrier: dict[str, str]) -> Any:
    found = get_current_span(propagate.extract(carrier, context=EMPTY)).get_span_context()
    return found if found.is_valid else None


def server_of(app: Any) -> tuple[Any, Any]:
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


def failed(span: Any, histogram: Any, metric: dict[str, Any], exc: BaseException,
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
