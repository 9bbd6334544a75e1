"""Two "requests" (spans request-A, request-B) hand work to other processes: a
multiprocessing Pool or a ProcessPoolExecutor made once, before either request (as a
program does at start-up), or a Process started per request. Each task makes a span
``task-{request}-{n}``.

    telemetryflow-run python tests/apps/pool_requests_app.py spawn pool|executor|process
"""

import concurrent.futures
import multiprocessing
import os
import sys

from opentelemetry import trace

tracer = trace.get_tracer("pool_requests_app")


def task(request: str, n: int) -> int:
    with tracer.start_as_current_span(f"task-{request}-{n}") as span:
        span.set_attribute("task.pid", os.getpid())
        span.set_attribute("task.ppid", os.getppid())  # (forkserver: the server's)
    return n * n


def task_of_pair(pair: tuple[str, int]) -> int:
    return task(*pair)


def with_pool(pool, request: str) -> list[int]:
    results = pool.map(task_of_pair, [(request, n) for n in range(4)], chunksize=2)
    results.append(pool.apply_async(task, (request, 4)).get())
    results += pool.starmap(task, [(request, 5), (request, 6)])
    results += sorted(pool.imap_unordered(task_of_pair, [(request, 7), (request, 8)]))
    results += pool.imap(task_of_pair, [(request, 9), (request, 10)], chunksize=2)
    return results


def with_executor(executor, request: str) -> list[int]:
    results = [executor.submit(task, request, 0).result()]
    results += executor.map(task, [request] * 4, range(1, 5), chunksize=2)
    return results


def with_process(context, request: str) -> list[int]:
    process = context.Process(target=task, args=(request, 0))
    process.start()
    process.join()
    return [process.exitcode]


if __name__ == "__main__":
    method, kind = sys.argv[1], sys.argv[2]
    context = multiprocessing.get_context(method)
    if kind == "pool":
        pool = context.Pool(2)
        serve, done = with_pool, lambda: (pool.close(), pool.join())
    elif kind == "executor":
        pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=context)
        pool.submit(int).result()  # its first worker starts now, before any request
        serve, done = with_executor, pool.shutdown
    else:
        pool, serve, done = context, with_process, lambda: None
    try:
        for request in ("A", "B"):
            with tracer.start_as_current_span(f"request-{request}"):
                print(request, serve(pool, request), flush=True)
    finally:
        done()
