"""A plain program (OpenTelemetry API only) that records metric points while it exits,
after the exit's last metric collection has been made: a background worker finishing its
job as the program ends. Leaves the way argv[1] says:

- ``daemon``: the end of the program (atexit); a daemon thread records late.
- ``os_exit``: ``os._exit(0)`` (no atexit: the flush before it); a daemon thread records
  late.
- ``sigterm``: says ``exiting`` and waits for the SIGTERM (left at its default) that ends
  it; a daemon thread records late (the first collection is the exit's: the export
  interval is 60 s).
- ``atexit``: the end of the program; the program's own atexit function records (it was
  registered after the hook's, so it runs before it: nothing is late).

Before leaving it records ``jobs.done{queue=default}`` = 2. What is late: one more job on
that series (3) and one on a new series ``jobs.done{queue=late}`` (1). The daemon thread
waits for the exit's collection (the observable gauge ``app.exiting`` is read then: the
first reading once the main thread is gone, or after ``os._exit`` was called), then
``LATE_AFTER`` seconds (0.2), and records. So there are 2 points before the late ones
(``jobs.done`` and ``app.exiting``; runtime metrics off) and one late series more.

Run by hand:
``telemetryflow-run python tests/apps/metrics_late_app.py [daemon|os_exit|sigterm|atexit]``
(against a collector that answers slowly, e.g. 1 s, the late points fall within the exit).
"""

import atexit
import os
import sys
import threading
import time

from opentelemetry import metrics

LATE_AFTER = 0.2

how = sys.argv[1] if len(sys.argv) > 1 else "daemon"
meter = metrics.get_meter("metrics_late_app")
jobs = meter.create_counter("jobs.done")
leaving = threading.Event()  # (os_exit: set just before os._exit)
collected_at_exit = threading.Event()


def exiting(options):
    """Read at every collection: 1 once the program is leaving (and says so to the
    worker: this is the exit's collection)."""
    gone = how == "sigterm" or leaving.is_set() or not threading.main_thread().is_alive()
    if gone:
        collected_at_exit.set()
    return [metrics.Observation(1 if gone else 0)]


meter.create_observable_gauge("app.exiting", callbacks=[exiting])


def record_late():
    jobs.add(1, {"queue": "default"})
    jobs.add(1, {"queue": "late"})


def worker():
    collected_at_exit.wait()
    time.sleep(LATE_AFTER)
    record_late()
    print("recorded late", file=sys.stderr, flush=True)


jobs.add(2, {"queue": "default"})
if how == "atexit":
    atexit.register(record_late)
else:
    threading.Thread(target=worker, daemon=True).start()

print("exiting", flush=True)
if how == "os_exit":
    leaving.set()
    os._exit(0)
if how == "sigterm":
    threading.Event().wait(60)
