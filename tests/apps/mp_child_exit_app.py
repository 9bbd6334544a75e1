"""Starts one multiprocessing child (start method: argv[1]) whose target makes a span and
notes when it returned; prints how long the child took to end after that, in seconds."""

from __future__ import annotations

import multiprocessing
import sys
import time

from opentelemetry import trace


def target(ended: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    with trace.get_tracer("mp_child_exit_app").start_as_current_span("in-child"):
        pass
    ended.value = time.time()


if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    ended = context.Value("d", 0.0)
    child = context.Process(target=target, args=(ended,))
    child.start()
    child.join()
    print(f"{time.time() - ended.value:.3f}")
