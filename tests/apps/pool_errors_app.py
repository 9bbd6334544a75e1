"""What a program sees of a process pool's failures, under a span: tasks that cannot be
pickled, a task that raises (the traceback the worker sends back), and which trace a task
sees in its worker, submitted under the span or under none. Prints one line per case, memory
addresses blanked, so a run with and without telemetryflow-run can be compared.

    python tests/apps/pool_errors_app.py fork|spawn|forkserver
"""

import concurrent.futures
import multiprocessing
import re
import sys
import threading

from opentelemetry import trace

tracer = trace.get_tracer("pool_errors_app")


class Locked:
    def __init__(self) -> None:
        self.lock = threading.Lock()

    def method(self, n: int) -> int:
        return n


def fails(n: int) -> int:
    raise ValueError(f"task {n} failed")


def local_function():
    def inner(n: int) -> int:
        return n

    return inner


def current_trace(_: int) -> str:
    return format(trace.get_current_span().get_span_context().trace_id, "032x")


def show(case: str, call) -> None:
    try:
        outcome = f"returned {call()!r}"
    except Exception as exc:
        cause = f" (cause: {exc.__cause__})" if exc.__cause__ is not None else ""
        outcome = f"raised {type(exc).__module__}.{type(exc).__qualname__}: {exc}{cause}"
    print(case, re.sub(r" at 0x[0-9a-f]+", " at 0x?", outcome).replace("\n", "\\n"), flush=True)


if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    pool = context.Pool(2)
    executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=context)
    try:
        show("outside a span, pool", lambda: pool.apply(current_trace, (0,)))
        show("outside a span, executor", lambda: executor.submit(current_trace, 0).result())
        with tracer.start_as_current_span("request"):
            show("a task sees the submitter's trace, pool",
                 lambda: pool.apply(current_trace, (0,)) == current_trace(0))
            show("a task sees the submitter's trace, executor",
                 lambda: executor.submit(current_trace, 0).result() == current_trace(0))
            show("lambda, pool.map", lambda: pool.map(lambda n: n, [1]))
            show("local function, pool.apply", lambda: pool.apply(local_function(), (1,)))
            show("method of a locked object, pool.map", lambda: pool.map(Locked().method, [1]))
            show("raising task, pool.map", lambda: pool.map(fails, [1]))
            show("raising task, pool.apply_async",
                 lambda: pool.apply_async(fails, (2,)).get())
            show("lambda, executor.submit", lambda: executor.submit(lambda: 1).result())
            show("lambda, executor.map", lambda: list(executor.map(lambda n: n, [1])))
            show("method of a locked object, executor.submit",
                 lambda: executor.submit(Locked().method, 1).result())
            show("raising task, executor.submit", lambda: executor.submit(fails, 3).result())
    finally:
        pool.close()
        pool.join()
        executor.shutdown()
