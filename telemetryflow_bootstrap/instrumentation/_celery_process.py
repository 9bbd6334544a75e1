"""The worker side of the Celery instrumentation: the ``process {task name}`` span of a task
run, from the ``task_prerun`` signal to ``task_postrun``, with the failure and retry
signals in between (see ``celery``).
"""

from __future__ import annotations

import sys
import traceback
from contextlib import suppress
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, get_current_span

from ..infrastructure.current_context import attach, get_current, reset
from ._celery_common import (
    EMPTY,
    MESSAGE_ID,
    RETRIES,
    RETRY_REASON,
    STATE,
    CeleryTelemetry,
    failed,
    now,
)
from ._error_type import error_type
from ._http_common import SPAN_KEY, suppressed

# Our key in the OpenTelemetry context: the task run (for the failure, retry and postrun
# signals).
_RUN_KEY = "telemetryflow.celery.run"
_CONSUMER = SpanKind.CONSUMER


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
        self.start = now()


class WorkerSide(CeleryTelemetry):
    """The task signals' receivers."""

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
                parent = propagate.extract(vars(request), context=EMPTY)
                found = get_current_span(parent).get_span_context()
                if found.is_valid:
                    links.append(Link(found))
                else:
                    parent = EMPTY
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
        elapsed = now() - run.start
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
                failed(span, self._processes, metric, error, elapsed, run.stack)
                return
            self._processes.record(elapsed, metric)
            span.end()
        except Exception:
            pass


def _run_of(task_id: Any) -> _Run | None:
    run = get_current().get(_RUN_KEY)
    return run if run is not None and run.task_id == task_id else None
