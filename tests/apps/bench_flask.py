"""A Flask app timing its own requests through the Flask test client (for scripts/bench).

    python tests/apps/bench_flask.py --route hello|outbound [--upstream URL]
        [--batches N] [--batch-size N] [--warmup N] [--freeze] [--mark]

``/hello`` returns a constant; ``/outbound`` makes one ``requests.get`` to ``--upstream``
(a local HTTP server). Prints one JSON line: the median over batches of the wall µs and
the process-CPU µs per request, and every batch's values. Knows nothing of any
instrumentation: run it bare, under telemetryflow-run or under opentelemetry-instrument.
``--freeze`` calls ``gc.freeze()`` after the warm-up (scripts/bench/instructions.py: a full
collection then walks only what the measured requests made, so its cost grows with their
number instead of landing wherever the collector's counters happen to fall). ``--mark``
calls ``os.getloadavg()`` right before and right after the measured batches: a C function
nothing else here calls, which instructions.py has callgrind dump its counts at, so the
measured requests are counted apart from start-up and exit.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time

import flask
import requests

parser = argparse.ArgumentParser()
parser.add_argument("--route", choices=("hello", "outbound"), default="hello")
parser.add_argument("--upstream", default="")
parser.add_argument("--batches", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=50)
parser.add_argument("--warmup", type=int, default=200)
parser.add_argument("--settle", type=float, default=0.0,
                    help="seconds to sleep after the warm-up, before the measured batches")
parser.add_argument("--freeze", action="store_true", help="gc.freeze() after the warm-up")
parser.add_argument("--mark", action="store_true",
                    help="call os.getloadavg() around the measured batches (instructions.py)")
args = parser.parse_args()

app = flask.Flask(__name__)


@app.route("/hello")
def hello() -> str:
    return "Hello, World!"


@app.route("/outbound")
def outbound() -> str:
    upstream = requests.get(args.upstream, timeout=10)
    return f"upstream said {upstream.status_code}"


client = app.test_client()
path = f"/{args.route}"


def batch(n: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per request; the CPU time includes every thread of the
    process (an exporter's worker too) and leaves out time spent waiting for a core."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
        response.close()  # as every WSGI server does (PEP 3333): ends the request
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


if args.warmup:
    batch(args.warmup)
if args.settle:
    time.sleep(args.settle)
if args.freeze:
    gc.freeze()
if args.mark:
    os.getloadavg()
batches = [batch(args.batch_size) for _ in range(args.batches)]
if args.mark:
    os.getloadavg()
print(json.dumps({"route": args.route,
                  "median_us": statistics.median(b[0] for b in batches),
                  "median_cpu_us": statistics.median(b[1] for b in batches),
                  "batches_us": [b[0] for b in batches],
                  "batches_cpu_us": [b[1] for b in batches]}))
