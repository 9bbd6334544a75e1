"""A program with its own SIGTERM handler that takes its time (a graceful shutdown).

It installs the handler, prints "ready", and waits; on SIGTERM the handler spends 1 s
"draining", prints "graceful" and exits 0. Under the launcher that must stay exactly so.
"""

import signal
import sys
import time


def _graceful(signum, frame):
    time.sleep(1.0)
    print("graceful", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, _graceful)
print("ready", flush=True)
for _ in range(600):
    time.sleep(0.1)
