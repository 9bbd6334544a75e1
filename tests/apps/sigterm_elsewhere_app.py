"""A program whose main thread cannot run a Python signal handler when SIGTERM comes.

    python sigterm_elsewhere_app.py [fork]

It makes one span, starts a thread of its own that leaves SIGTERM unblocked, blocks
SIGTERM on the main thread, prints its threads' signal masks as JSON (one line) and sleeps
for 60 s. A SIGTERM sent to the process then lands on its own thread; Python notes it but
can run the handler only on the main thread, which never gets back to Python code: the
situation of a main thread that went into a blocking C call just as the signal came. Bare,
the default action kills it at once. With ``fork``, the parent forks first and the child
does all this (the parent prints the child's pid, waits for it and reports how it ended).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from opentelemetry import trace


def masks() -> dict[str, bool]:
    """Thread name:id -> SIGTERM blocked, from /proc (every thread, ours and C ones; a C
    thread goes by its comm)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out = {}
    for task in sorted(os.listdir("/proc/self/task")):
        with open(f"/proc/self/task/{task}/status") as status:
            fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
        with open(f"/proc/self/task/{task}/comm") as comm:
            name = comm.read().strip()
        blocked = int(fields["SigBlk"].strip(), 16)
        main = int(task) == os.getpid()
        name = "main" if main else names.get(int(task), name)
        out[f"{name}:{task}"] = bool(blocked & (1 << (signal.SIGTERM - 1)))
    return out


def victim() -> None:
    with trace.get_tracer("sigterm").start_as_current_span("before-sigterm"):
        pass
    threading.Thread(target=time.sleep, args=(60,), name="app-thread", daemon=True).start()
    time.sleep(0.5)  # our exporter threads are up
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print(json.dumps(masks()), flush=True)
    time.sleep(60)
    print("survived", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["fork"]:
        pid = os.fork()
        if pid == 0:
            victim()
            os._exit(0)
        print(json.dumps({"child": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status)}), flush=True)
    else:
        victim()
