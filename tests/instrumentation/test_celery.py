"""Celery under the instrumentation: send spans whose context travels in the task message's
headers, process spans around task runs (a solo worker in a thread of this process, on the
local Redis), failures, retries, eager runs, the duration metrics."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import celery
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from ..e2e.launcher import REPO

pytestmark = [
    pytest.mark.service("redis"),
    # (the machines run the tests as root; the solo worker says so, not our concern)
    pytest.mark.filterwarnings("ignore:You're running the worker with superuser privileges"),
    # (celery's redis result backend on redis-py 8)
    pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning"),
]

BROKER = "redis://127.0.0.1:6379/13"
QUEUE = f"tf-celery-{uuid.uuid4().hex[:12]}"
OPERATION = "messaging.client.operation.duration"
PROCESS = "messaging.process.duration"
SENT = "messaging.client.sent.messages"
CONSUMED = "messaging.client.consumed.messages"
PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


class Recorded:
    """In-memory span and metric exporters behind a hand-made PatchContext; celery is
    patched with it once per session (patching is global and permanent)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation import celery as ours
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.tracer_provider.get_tracer("tests.app")
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.context = PatchContext(
            tracer=self.tracer_provider.get_tracer("tests.celery"),
            meter=self.meter_provider.get_meter("tests.celery"),
            logger_provider=None, config=TelemetryConfig(), handler=None)
        ours.patch(celery, self.context)

    def spans(self, kind: SpanKind | None = None) -> list[Any]:
        found = self.exporter.get_finished_spans()
        return [s for s in found if kind is None or s.kind is kind]

    def wait(self, ready: Callable[[list[Any]], bool], timeout: float = 20) -> list[Any]:
        """The finished spans once ``ready`` says so (the worker thread ends them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if ready(spans):
                return spans
            time.sleep(0.05)
        raise AssertionError([(s.name, s.kind, dict(s.attributes)) for s in self.spans()])

    def points(self, name: str, **attributes: Any) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    found += [p for p in metric.data.data_points
                              if all(p.attributes.get(k) == v for k, v in attributes.items())]
        return found

    def all_text(self) -> str:
        """Every span name, attribute, event, status and metric attribute."""
        parts = []
        for span in self.spans():
            parts.append(f"{span.name} {dict(span.attributes)!r} {span.status.description!r}")
            parts += [f"{e.name} {dict(e.attributes)!r}" for e in span.events]
        for name in (OPERATION, PROCESS):
            parts += [repr(dict(p.attributes)) for p in self.points(name)]
        return "\n".join(parts)


_session: list[Recorded] = []


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    if not _session:
        _session.append(Recorded())
    session = _session[0]
    session.exporter.clear()
    yield session
    session.exporter.clear()


@pytest.fixture(scope="module")
def tasks() -> Iterator[Any]:
    """tests/apps/celery_tasks.py on a queue of this run's own, and a solo worker for it
    in a thread; the queue's keys are removed from Redis afterwards."""
    if not _session:
        _session.append(Recorded())
    saved = {k: os.environ.get(k) for k in ("TF_CELERY_QUEUE", "TF_CELERY_BROKER")}
    os.environ.update(TF_CELERY_QUEUE=QUEUE, TF_CELERY_BROKER=BROKER)
    try:
        module = importlib.import_module("tests.apps.celery_tasks")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert module.app.conf.task_default_queue == QUEUE
    tracer = _session[0].tracer

    @module.app.task(name="tf.traced")
    def traced(x: int) -> int:
        with tracer.start_as_current_span("task-work"):
            return x * 2

    module.traced = traced
    worker = module.app.Worker(pool="solo", concurrency=1, queues=[QUEUE], quiet=True,
                               without_heartbeat=True, without_mingle=True,
                               without_gossip=True, loglevel="WARNING")
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    yield module
    worker.stop(in_sighandler=False)
    thread.join(10)
    import redis

    client = redis.Redis.from_url(BROKER)
    with suppress_instrumentation():
        client.delete(QUEUE, f"_kombu.binding.{QUEUE}", f"_kombu.binding_permanent.{QUEUE}")
        client.close()


def _by_name(spans: list[Any], name: str) -> list[Any]:
    return [s for s in spans if s.name == name]


# ----- through the broker -------------------------------------------------------------------


def test_delay_is_a_send_span_whose_trace_the_worker_continues(recorded, tasks):
    """delay() under a span of the program: a PRODUCER send span (its child) with the
    queue, task name and id; the worker's CONSUMER process span is the send span's child
    and links to it; the task's own span is the process span's child; both durations
    are recorded."""
    with recorded.tracer.start_as_current_span("request") as request:
        result = tasks.traced.delay(2)
    spans = recorded.wait(lambda s: _by_name(s, "process tf.traced"))
    send = recorded.spans(PRODUCER)[0]
    process = _by_name(spans, "process tf.traced")[0]
    adding = _by_name(spans, "task-work")[0]
    assert send.name == "send tf.traced" and process.kind is CONSUMER
    assert send.parent.span_id == request.get_span_context().span_id
    assert process.context.trace_id == send.context.trace_id == adding.context.trace_id
    assert process.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert adding.parent.span_id == process.context.span_id
    common = {"messaging.system": "celery", "messaging.destination.name": QUEUE,
              "messaging.message.id": result.id, "celery.task_name": "tf.traced",
              "server.address": "127.0.0.1", "server.port": 6379}
    assert dict(send.attributes) == {**common, "messaging.operation.name": "send",
                                     "messaging.operation.type": "send"}
    assert dict(process.attributes) == {**common, "messaging.operation.name": "process",
                                        "messaging.operation.type": "process",
                                        "celery.state": "SUCCESS"}
    assert send.status.status_code is process.status.status_code is StatusCode.UNSET
    assert recorded.points(OPERATION, **{"celery.task_name": "tf.traced",
                                         "messaging.destination.name": QUEUE})
    [point] = recorded.points(PROCESS, **{"celery.task_name": "tf.traced"})
    assert point.attributes["celery.state"] == "SUCCESS"
    assert "messaging.message.id" not in point.attributes


def test_a_failing_task_is_an_error_without_its_arguments_or_message(recorded, tasks):
    """The task raises: the process span has error.type, an exception event without the
    message (it quotes the argument) and ERROR status; the metric point has error.type;
    nothing anywhere shows the argument."""
    tasks.fail.delay("s3cret-arg-77")
    spans = recorded.wait(lambda s: _by_name(s, "process tf.fail"))
    process = _by_name(spans, "process tf.fail")[0]
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes["error.type"] == "ValueError"
    assert process.attributes["celery.state"] == "FAILURE"
    [event] = process.events
    assert event.name == "exception" and event.attributes["exception.type"] == "ValueError"
    assert "exception.message" not in event.attributes
    assert "in fail" in event.attributes["exception.stacktrace"]
    assert recorded.points(PROCESS, **{"celery.task_name": "tf.fail",
                                       "error.type": "ValueError"})
    assert "s3cret-arg-77" not in recorded.all_text()


def test_a_retry_is_recorded_as_a_retry_and_the_attempts_are_one_trace(recorded, tasks):
    """self.retry(): the first process span ends with celery.state=RETRY and the
    reason's class, no error status; the retry's send span is its child, and the second
    run (celery.retries=1, SUCCESS) is that send span's child."""
    tasks.flaky.delay()
    spans = recorded.wait(lambda s: len(_by_name(s, "process tf.flaky")) == 2)
    first, second = sorted(_by_name(spans, "process tf.flaky"), key=lambda s: s.start_time)
    sends = sorted(_by_name(spans, "send tf.flaky"), key=lambda s: s.start_time)
    assert len(sends) == 2
    assert first.parent.span_id == sends[0].context.span_id
    assert sends[1].parent.span_id == first.context.span_id
    assert second.parent.span_id == sends[1].context.span_id
    assert len({s.context.trace_id for s in (*sends, first, second)}) == 1
    assert first.attributes["celery.state"] == "RETRY"
    assert first.attributes["celery.retry.reason"] == "ConnectionError"
    assert first.status.status_code is StatusCode.UNSET and "error.type" not in first.attributes
    assert second.attributes["celery.state"] == "SUCCESS"
    assert second.attributes["celery.retries"] == 1
    # the retried message carried the first send's context: replaced, and linked
    assert [link.context.span_id for link in sends[1].links] == [sends[0].context.span_id]
    assert recorded.points(PROCESS, **{"celery.task_name": "tf.flaky", "celery.state": "RETRY"})


def test_a_traceparent_given_in_headers_is_replaced_and_linked(recorded, tasks):
    """apply_async(headers={"traceparent": ...}): the worker continues the send span, which
    links to the context the caller gave."""
    given = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    tasks.add.apply_async((1, 1), headers={"traceparent": given})
    spans = recorded.wait(lambda s: _by_name(s, "process tf.add"))
    send = _by_name(spans, "send tf.add")[0]
    process = _by_name(spans, "process tf.add")[0]
    assert process.parent.span_id == send.context.span_id
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}")
            for link in send.links] == [("ab" * 16, "cd" * 8)]


def test_a_send_that_fails_is_an_error_and_its_exception_propagates(recorded):
    """An argument the serializer refuses: the send span ends with error.type and ERROR
    status, kombu's own exception reaches the caller, and the caller's span is current
    again."""
    from kombu.exceptions import EncodeError
    from opentelemetry import trace

    app = celery.Celery("tf_memory_refused", broker="memory://")
    with recorded.tracer.start_as_current_span("caller") as caller:
        with pytest.raises(EncodeError):
            app.send_task("tf.nowhere", (object(),))
        assert trace.get_current_span() is caller
    [send] = recorded.spans(PRODUCER)
    assert send.name == "send tf.nowhere"
    assert send.status.status_code is StatusCode.ERROR
    assert send.attributes["error.type"] == "kombu.exceptions.EncodeError"
    assert recorded.points(OPERATION, **{"celery.task_name": "tf.nowhere",
                                         "error.type": "kombu.exceptions.EncodeError"})


def test_sent_and_consumed_message_counters(recorded, tasks):
    """messaging.client.sent.messages counts each send (``{message}``, the send point's
    attributes, ``error.type`` for one that raised); messaging.client.consumed.messages
    counts each task run a worker got from the broker (the process point's attributes
    without celery.state), not an eager run."""
    from kombu.exceptions import EncodeError

    def value(name: str, **attributes: Any) -> int:
        return sum(p.value for p in recorded.points(name, **attributes)
                   if "error.type" in attributes or "error.type" not in p.attributes)

    add = {"celery.task_name": "tf.add"}
    sent_before, consumed_before = value(SENT, **add), value(CONSUMED, **add)
    tasks.add.delay(1, 2)
    tasks.add.delay(3, 4)
    recorded.wait(lambda s: len(_by_name(s, "process tf.add")) == 2)
    assert tasks.add.apply((5, 6)).get(disable_sync_subtasks=False) == 11
    app = celery.Celery("tf_memory_counted", broker="memory://")
    with pytest.raises(EncodeError):
        app.send_task("tf.refused-counted", (object(),))

    assert value(SENT, **add) - sent_before == 2
    assert value(CONSUMED, **add) - consumed_before == 2
    common = {"messaging.system": "celery", "celery.task_name": "tf.add",
              "messaging.destination.name": QUEUE, "server.address": "127.0.0.1",
              "server.port": 6379}
    [sent] = recorded.points(SENT, **add)
    assert dict(sent.attributes) == {**common, "messaging.operation.name": "send",
                                     "messaging.operation.type": "send"}
    [consumed] = recorded.points(CONSUMED, **add)
    assert dict(consumed.attributes) == {**common, "messaging.operation.name": "process",
                                         "messaging.operation.type": "process"}
    [failed] = recorded.points(SENT, **{"celery.task_name": "tf.refused-counted"})
    assert failed.value == 1
    assert failed.attributes["error.type"] == "kombu.exceptions.EncodeError"


# ----- in process -----------------------------------------------------------------------------


def test_an_eager_run_is_a_process_span_under_the_caller(recorded, tasks):
    """task.apply(): no send span; the process span is the caller's span's child and the
    task's own span its child."""
    with recorded.tracer.start_as_current_span("caller") as caller:
        assert tasks.traced.apply((4,)).get(disable_sync_subtasks=False) == 8
    assert recorded.spans(PRODUCER) == []
    [process] = recorded.spans(CONSUMER)
    [adding] = _by_name(recorded.spans(), "task-work")
    assert process.name == "process tf.traced"
    assert process.parent.span_id == caller.get_span_context().span_id
    assert adding.parent.span_id == process.context.span_id
    assert "messaging.destination.name" not in process.attributes


def test_broker_credentials_are_never_recorded(recorded):
    """A broker URL with a user and password (the in-memory transport, which ignores
    them): the send span has the host only, nothing shows either secret."""
    app = celery.Celery("tf_memory", broker="memory://tf-user:pa55-w0rd-9@localhost:5999//")
    app.send_task("tf.remote", ("payload-x",))
    [send] = recorded.spans(PRODUCER)
    assert send.attributes["server.address"] == "localhost"
    assert send.attributes["server.port"] == 5999
    text = recorded.all_text()
    assert "pa55-w0rd-9" not in text and "tf-user" not in text and "payload-x" not in text


def test_a_suppressed_send_is_neither_traced_nor_injected(recorded):
    """Inside suppress_instrumentation(): no span, and no traceparent in the message."""
    app = celery.Celery("tf_memory_suppressed", broker="memory://")
    seen: list[dict[str, Any]] = []

    def keep(headers: Any = None, **_: Any) -> None:
        seen.append(dict(headers))

    celery.signals.after_task_publish.connect(keep, weak=False)
    try:
        with suppress_instrumentation():
            app.send_task("tf.quiet", ())
    finally:
        celery.signals.after_task_publish.disconnect(keep)
    assert recorded.spans() == []
    assert seen and "traceparent" not in seen[0]


def test_patching_twice_traces_once(recorded):
    """A second patch (bootstrap run twice) adds no second wrapper nor receiver."""
    from telemetryflow_bootstrap.instrumentation import celery as ours

    ours.patch(celery, _session[0].context)
    app = celery.Celery("tf_memory_twice", broker="memory://")
    app.send_task("tf.once", ())
    assert [s.name for s in recorded.spans()] == ["send tf.once"]


# ----- the registry entry, in fresh interpreters ---------------------------------------------

_PROGRAM = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "twice":  # (celery imported before arming)
        import celery
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_messaging, registry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    registry.arm(context, _catalog_messaging.ENTRIES)
    if order == "twice":
        registry.arm(context, _catalog_messaging.ENTRIES)
    import celery
    if order == "twice":  # a second patch call must not trace a second time
        from telemetryflow_bootstrap.instrumentation import celery as ours
        ours.patch(celery, context)

    app = celery.Celery("contract", broker="memory://")

    @app.task(name="contract.noop")
    def noop():
        return None

    app.send_task("contract.remote", ())
    noop.apply()
    print(json.dumps({"spans": sorted(s.name for s in exporter.get_finished_spans()),
                      "status": registry.status().get("celery", ("", ""))[0]}))
""")
_SCENARIOS = {"twice": ("twice", ""), "disabled": ("arm-first", "celery")}


@pytest.fixture(scope="module")
def contract() -> dict[str, dict[str, Any]]:
    """Every scenario's outcome; the interpreters run side by side."""
    processes = {name: subprocess.Popen([sys.executable, "-c", _PROGRAM, *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, args in _SCENARIOS.items()}
    outcomes = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=90)
            assert process.returncode == 0, f"{name}: {stderr}"
            outcomes[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return outcomes


def test_the_registry_entry_patches_once_whenever_celery_is_imported(contract):
    """Armed after celery's import, armed twice and patched again by hand: one send span
    per send_task and one process span per run (armed before the import: the e2e test,
    under telemetryflow-run)."""
    assert contract["twice"] == {"spans": ["process contract.noop", "send contract.remote"],
                                  "status": "applied"}


def test_disabled_by_name_leaves_celery_alone(contract):
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=celery: no span at all."""
    assert contract["disabled"] == {"spans": [], "status": "disabled"}
