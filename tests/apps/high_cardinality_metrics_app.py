"""A program recording a high-cardinality counter: 50,000 attribute sets (a request counted
per user), spread over 25 counters of 2,000 sets each (the SDK folds the sets of one
instrument past 2,000 into one overflow series). Its one collection, exported at exit, is
an OTLP request of ~3 MiB: past what a backend with a lower limit takes. It prints how many
sets it recorded.

Run by hand against a collector::

    telemetryflow-run python tests/apps/high_cardinality_metrics_app.py

or with fewer counters (a test's: 5, 10,000 sets)::

    telemetryflow-run python tests/apps/high_cardinality_metrics_app.py 5

Every data point must arrive exactly once, in requests the backend takes, each under its
own counter's name, unit and temporality.
"""

import sys

from opentelemetry import metrics

COUNTERS = int(sys.argv[1]) if len(sys.argv) > 1 else 25
SETS = 2000

meter = metrics.get_meter("high_cardinality_metrics_app")
for c in range(COUNTERS):
    counter = meter.create_counter(f"app.requests.{c}", unit="{request}",
                                   description="requests served, per user")
    for n in range(SETS):
        counter.add(n + 1, {"user.id": f"user-{c}-{n:05d}", "route": "/items/{id}"})
print(f"recorded {COUNTERS * SETS} attribute sets", flush=True)
