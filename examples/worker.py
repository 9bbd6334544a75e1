"""A background worker: a loop that takes jobs, one span per job, and ``logging``.

    telemetryflow-run --service-name mailer python examples/worker.py --jobs 20

It uses only the OpenTelemetry API and the standard library, and runs (untraced) without the
launcher too. Each job is a ``process-job`` trace with a child span per step; a failed job records
the exception and sets the span's status to error; log lines written inside a job carry its
trace id once exported. ``--jobs 0`` runs until SIGTERM/Ctrl-C: the worker finishes the job
in hand and returns, and telemetryflow flushes what is buffered before the process exits —
what ``docker stop`` relies on (see examples/docker/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import time
from types import FrameType

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Status, StatusCode

log = logging.getLogger("worker")
tracer = trace.get_tracer("examples.worker")

_stopping = False


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Only set a flag: the job in hand completes, its span ends and gets exported.
    global _stopping
    _stopping = True
    log.info("received %s, finishing the current job", signal.Signals(signum).name)


def process(job_id: int, failure_rate: float) -> None:
    # A fresh context makes each job a trace of its own, instead of a child of the span
    # telemetryflow puts around the whole run of a script (TELEMETRYFLOW_PROCESS_SPAN):
    # a worker runs for days, its jobs are the units worth looking at.
    with tracer.start_as_current_span("process-job", context=Context()) as span:
        span.set_attribute("job.id", job_id)
        with tracer.start_as_current_span("fetch"):
            time.sleep(random.uniform(0.005, 0.02))
        try:
            with tracer.start_as_current_span("render"):
                if random.random() < failure_rate:
                    raise ValueError(f"template missing for job {job_id}")
                time.sleep(random.uniform(0.005, 0.02))
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            log.error("job %d failed: %s", job_id, exc)
            return
        log.info("job %d done", job_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        type=int,
        default=int(os.environ.get("WORKER_JOBS", "10")),
        help="jobs to run; 0 = until SIGTERM (default: $WORKER_JOBS or 10)",
    )
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between jobs")
    parser.add_argument("--failure-rate", type=float, default=0.1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _stop)  # telemetryflow chains its flush after this handler
    job_id = 0
    try:
        while not _stopping and (args.jobs == 0 or job_id < args.jobs):
            job_id += 1
            process(job_id, args.failure_rate)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        log.info("interrupted")
    log.info("worker stopped after %d job(s)", job_id)


if __name__ == "__main__":
    main()
