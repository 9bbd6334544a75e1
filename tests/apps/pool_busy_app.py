"""A Pool whose workers are busy for a long time when the process group gets SIGTERM
(``python pool_busy_app.py START_METHOD``): prints "ready" once the tasks run."""

import multiprocessing
import sys
import time

from opentelemetry import trace


def work(n: int) -> int:
    with trace.get_tracer("pool-busy").start_as_current_span(f"task-{n}"):
        pass
    time.sleep(60)
    return n


if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(2) as pool:
        result = pool.map_async(work, range(4))
        time.sleep(1.0)  # (the workers are started and in their tasks)
        print("ready", flush=True)
        print(result.get())
