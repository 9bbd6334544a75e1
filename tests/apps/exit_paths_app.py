"""Leaves in the way argv[1] says, after making 50 spans: normal, sys_exit, raise, sigint
(waits for SIGINT with the default handler), own_handler (installs its own SIGTERM handler
that exits normally)."""

import signal
import sys
import time

from opentelemetry import trace

how = sys.argv[1]
tracer = trace.get_tracer("exit_paths")
for i in range(50):
    with tracer.start_as_current_span(f"unit-{i}"):
        pass
if how == "own_handler":
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
if how == "sigint":
    # Python's default handler even when SIGINT was ignored on entry (a shell's background
    # job inherits it ignored, and Python then leaves it so)
    signal.signal(signal.SIGINT, signal.default_int_handler)
print("ready", flush=True)
if how == "sys_exit":
    sys.exit(4)
if how == "raise":
    raise RuntimeError("unhandled on purpose")
if how in ("sigint", "own_handler"):
    time.sleep(60)
