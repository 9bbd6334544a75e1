"""A Celery app with a few tasks, for the tests and for a person to run by hand:

    telemetryflow-run celery -A tests.apps.celery_tasks worker --pool=prefork -c 1
    telemetryflow-run python tests/apps/celery_producer.py

Broker and result backend: the local Redis, database 13 (``TF_CELERY_BROKER``); the queue
is ``TF_CELERY_QUEUE`` (default ``tf-celery``), so parallel runs each use their own. No
remote control (no pidbox queues left behind in Redis).
"""

from __future__ import annotations

import os
import urllib.request

from celery import Celery
from opentelemetry import trace

BROKER = os.environ.get("TF_CELERY_BROKER", "redis://127.0.0.1:6379/13")
QUEUE = os.environ.get("TF_CELERY_QUEUE", "tf-celery")

app = Celery("tf_celery_tasks", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
    broker_connection_retry_on_startup=True,
    result_expires=300,
)
tracer = trace.get_tracer("celery_tasks")


@app.task(name="tf.add")
def add(x: int, y: int) -> int:
    with tracer.start_as_current_span("adding"):
        return x + y


@app.task(name="tf.fetch")
def fetch(url: str) -> int:
    """An HTTP call from the task body (its client span is the process span's child)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


@app.task(name="tf.fail")
def fail(secret: str) -> None:
    raise ValueError(f"refusing {secret}")


@app.task(bind=True, name="tf.flaky", max_retries=2, default_retry_delay=0)
def flaky(self: object) -> str:
    """Fails its first run with a retry, succeeds the second."""
    if self.request.retries == 0:  # type: ignore[attr-defined]
        raise self.retry(exc=ConnectionError("not yet"))  # type: ignore[attr-defined]
    return "done"
