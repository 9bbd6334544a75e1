"""Work handed to other threads under a span (for tests/e2e/test_threads_e2e.py).

    telemetryflow-run python tests/apps/threads_app.py

Every ``work(tag)`` makes a span named ``in-{tag}``; the handler spans around the hand-overs
are named ``handler-{tag}``. Prints one JSON line of what the threads saw besides spans.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import multiprocessing.pool
import sys
import threading

from opentelemetry import trace

tracer = trace.get_tracer("threads_app")
programs_own = contextvars.ContextVar("programs_own", default="unset")
seen: dict[str, object] = {}


def work(tag: str) -> str:
    with tracer.start_as_current_span(f"in-{tag}"):
        return tag


class Worker(threading.Thread):
    def run(self) -> None:
        seen["own variable in a thread"] = programs_own.get()
        work("subclass")


def failing() -> None:
    raise LookupError("from a thread")


caught: list[str] = []
threading.excepthook = lambda hook_args: caught.append(hook_args.exc_type.__name__)

programs_own.set("set by the main thread")
pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

with tracer.start_as_current_span("handler-thread"):
    thread = threading.Thread(target=work, args=("thread",))
    thread.start()
    thread.join()
    seen["run left on the thread"] = "run" in vars(thread)
with tracer.start_as_current_span("handler-timer"):
    timer = threading.Timer(0, work, args=("timer",))
    timer.start()
    timer.join()
with tracer.start_as_current_span("handler-subclass"):
    worker = Worker()
    worker.start()
    worker.join()
    try:
        worker.start()
    except RuntimeError as exc:
        seen["started twice"] = str(exc)
with tracer.start_as_current_span("handler-failing"):
    broken = threading.Thread(target=failing)
    broken.start()
    broken.join()
    seen["excepthook saw"] = caught
with tracer.start_as_current_span("handler-pool-1"):
    pool.submit(work, "pool-1").result()  # starts the pool's one worker thread
with tracer.start_as_current_span("handler-pool-2"):
    pool.submit(work, "pool-2").result()  # the same worker thread, another request
pool.submit(work, "pool-outside").result()  # no span current: a trace of its own
with tracer.start_as_current_span("handler-map"):
    seen["map"] = list(pool.map(work, ["map-a", "map-b"]))
seen["pool task called by"] = pool.submit(lambda: sys._getframe(1).f_code.co_name).result()


class InterpreterLike(concurrent.futures.ThreadPoolExecutor):
    """Stands for Python 3.14's InterpreterPoolExecutor (tasks pickled into other
    interpreters): its tasks must go as given."""


InterpreterLike.__module__ = "concurrent.futures.interpreter"
with InterpreterLike(max_workers=1) as elsewhere:
    seen["interpreter pool task called by"] = elsewhere.submit(
        lambda: sys._getframe(1).f_code.co_name).result()
try:
    pool.submit(failing).result()
except LookupError as exc:
    seen["task error"] = str(exc)


thread_pool = multiprocessing.pool.ThreadPool(1)
with tracer.start_as_current_span("handler-threadpool-1"):
    thread_pool.apply(work, ("threadpool-1",))
with tracer.start_as_current_span("handler-threadpool-2"):
    seen["threadpool map"] = thread_pool.map(work, ["threadpool-2"])
thread_pool.apply(work, ("threadpool-outside",))
thread_pool.close()
thread_pool.join()


async def main() -> None:
    with tracer.start_as_current_span("handler-executor"):
        await asyncio.get_running_loop().run_in_executor(None, work, "executor")


asyncio.run(main())
pool.shutdown()
print(json.dumps(seen))
