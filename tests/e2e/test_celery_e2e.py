"""A Celery producer script and a prefork worker, each under ``telemetryflow-run``, against
the local Redis: the tasks' runs, in the worker's forked pool child, join the producer's
traces, and reach the receiver although the worker is stopped with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import uuid

import pytest

from .launcher import LAUNCHER, REPO, app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("redis")]

BROKER = "redis://127.0.0.1:6379/13"


def _forget(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(BROKER)
    try:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    finally:
        client.close()


def test_worker_runs_join_the_producers_traces_from_the_pool_child(otlp_receiver):
    """celery_producer.py sends four tasks and waits for their results; a prefork worker
    (one child) runs them. Each send span's trace holds the worker's process span (its
    child), made in the pool child (another pid than the worker's), with the task's own
    span, its HTTP call and a retry's send span under it; the failure is an error
    without the argument. The worker exports only at exit (a batch delay far longer than
    the test) and is stopped with SIGTERM: every span the child made arrives all the
    same."""
    queue = f"tf-celery-e2e-{uuid.uuid4().hex[:12]}"
    env = receiver_env(otlp_receiver, TF_CELERY_QUEUE=queue, TF_CELERY_BROKER=BROKER)
    worker_env = {**env, "TELEMETRYFLOW_BATCH_TIMEOUT": "600000",
                  "TELEMETRYFLOW_SERVICE_NAME": "celery-worker"}
    worker = subprocess.Popen(
        [LAUNCHER, "celery", "-A", "tests.apps.celery_tasks", "worker", "--pool=prefork",
         "-c", "1", "-Q", queue, "-l", "WARNING", "--without-heartbeat", "--without-mingle",
         "--without-gossip"],
        env=worker_env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        produced = run(python(app("celery_producer.py")), env, timeout=90)
        assert produced.returncode == 0, (produced.stdout, produced.stderr)
        assert "add" in produced.stdout and " 5\n" in produced.stdout, produced.stdout
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        _forget(queue)

    def complete(receiver) -> bool:
        names = [s.name for s in receiver.spans()]
        return names.count("process tf.flaky") == 2 and all(
            f"process tf.{task}" in names for task in ("add", "fetch", "fail")) \
            and "adding" in names
    assert otlp_receiver.wait_for(complete, timeout=20), \
        sorted(s.name for s in otlp_receiver.spans())
    spans = otlp_receiver.spans()
    by_id = {s.span_id: s for s in spans}
    worker_pid = worker.pid  # (the launcher exec'd: the worker's main process)
    children = {s.resource.get("process.pid") for s in spans if s.kind == "CONSUMER"}
    assert children and worker_pid not in children, (worker_pid, children)

    for task in ("add", "fetch", "fail"):
        [send] = [s for s in spans if s.name == f"send tf.{task}"]
        [process] = [s for s in spans if s.name == f"process tf.{task}"]
        assert process.parent_span_id == send.span_id and process.trace_id == send.trace_id
        assert send.resource.get("service.name") != process.resource.get("service.name")
        assert process.attributes["messaging.destination.name"] == queue
        assert process.attributes["messaging.message.id"] == \
            send.attributes["messaging.message.id"]
    adding = next(s for s in spans if s.name == "adding")
    assert by_id[adding.parent_span_id].name == "process tf.add"
    # the HTTP call from the task (to the producer): its client span under the process span
    fetch = next(s for s in spans if s.name == "process tf.fetch")
    [get] = [s for s in spans if s.name == "GET" and s.parent_span_id == fetch.span_id
             and "http.request.method" in s.attributes]
    assert get.kind == "CLIENT" and get.attributes["http.response.status_code"] == 200
    failed = next(s for s in spans if s.name == "process tf.fail")
    assert failed.status_code == "ERROR" and failed.attributes["error.type"] == "ValueError"
    assert "s3cret-arg-31" not in repr([(s.attributes, s.events, s.status_message)
                                        for s in spans])
    first, second = sorted((s for s in spans if s.name == "process tf.flaky"),
                           key=lambda s: s.start_ns)
    retry_send = by_id[second.parent_span_id]
    assert retry_send.kind == "PRODUCER" and retry_send.parent_span_id == first.span_id
    assert first.attributes["celery.state"] == "RETRY" and first.status_code == "UNSET"
    assert second.attributes["celery.state"] == "SUCCESS"
    # the broker client's own traffic outside any task (acks, restoring unacked messages,
    # start-up checks) is no trace of its own
    noise = [(s.name, s.resource.get("service.name")) for s in spans
             if s.parent_span_id == "" and s.attributes.get("db.system.name") == "redis"]
    assert noise == [], noise
