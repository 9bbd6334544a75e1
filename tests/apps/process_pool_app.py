"""multiprocessing.Pool(4).map under a given start method; each task makes one span."""

import multiprocessing
import os
import sys

from opentelemetry import trace


def task(n: int) -> int:
    with trace.get_tracer("pool").start_as_current_span(f"task-{n}") as span:
        span.set_attribute("task.pid", os.getpid())
    return n * n


if __name__ == "__main__":
    method = sys.argv[1]
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(4) as pool:
        print(sum(pool.map(task, range(16))), flush=True)
