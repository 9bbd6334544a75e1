"""A program that monkey-patches with gevent as its first statement, after our hook has
started the SDK's threads (for tests/e2e/test_gevent_e2e.py).

    telemetryflow-run python tests/apps/gevent_patched_app.py [N]

N greenlets (default 20) each make a span ``outer-{i}`` with a child ``inner-{i}`` across
cooperative sleeps, and count ``gevent_app.work``; prints one JSON line of the threads left.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import gevent  # noqa: E402
from opentelemetry import metrics, trace  # noqa: E402

tracer = trace.get_tracer("gevent_app")
work = metrics.get_meter("gevent_app").create_counter("gevent_app.work")


def one(i: int) -> None:
    with tracer.start_as_current_span(f"outer-{i}"):
        gevent.sleep(0.01)
        with tracer.start_as_current_span(f"inner-{i}"):
            gevent.sleep(0.01)
        work.add(1)


count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
gevent.joinall([gevent.spawn(one, i) for i in range(count)])
print(json.dumps({"threads": sorted(t.name for t in threading.enumerate())}))
