"""A Flask app measuring, inside one process, what telemetryflow-run's Flask instrumentation
adds to a request (for scripts/bench/per_request_ab.py).

    telemetryflow-run python tests/apps/bench_flask_ab.py [--pairs N] [--batch-size N] [--floor]

It serves ``/hello`` through the Flask test client in batches, alternating the instrumented
``wsgi_app`` with the original one the patch keeps (``_telemetryflow_original``) in ABBA
order, and prints one JSON line: the median, over pairs of adjacent batches, of the
difference in main-thread CPU µs per request. Both sides share the process, its warm caches
and the machine's load at that moment, so the difference is steadier than one between two
processes (what per_request.py measures). The exporter thread's work is left out: a sampled
request's export is not counted here. ``--floor`` measures a minimal hand-written wrapper
instead of ours: a lower bound for what counting an unsampled request can cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import flask

parser = argparse.ArgumentParser()
parser.add_argument("--pairs", type=int, default=30)
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--warmup", type=int, default=300)
parser.add_argument("--floor", action="store_true",
                    help="measure _floor_wsgi_app (below) instead of the patched wsgi_app")
args = parser.parse_args()

app = flask.Flask(__name__)


@app.route("/hello")
def hello() -> str:
    return "Hello, World!"


instrumented = flask.Flask.wsgi_app
original = getattr(instrumented, "_telemetryflow_original", None)
if original is None:
    raise SystemExit("Flask.wsgi_app is not patched: run under telemetryflow-run")
client = app.test_client()


class _FloorBody:
    """The least a request's end can be noticed with: the body, closed by the server."""

    __slots__ = ("_body", "_started", "_status")

    def __init__(self, body: Any, started: float, status: list[str | None]) -> None:
        self._body, self._started, self._status = body, started, status

    def __iter__(self) -> Any:
        return iter(self._body)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            close()
        _floor_points.append((time.perf_counter() - self._started, self._status[0]))


_floor_points: list[tuple[float, str | None]] = []


def _floor_wsgi_app(self: flask.Flask, environ: dict[str, Any],
                    start_response: Any) -> Any:
    """A lower bound for what counting an unsampled request can cost (``--floor``): a start
    time, a context made beforehand set while the application runs, the status, the body
    wrapped to see its end, and (duration, status) appended to a list. No histogram, route,
    trace ids, suppression check or exception handling."""
    started = time.perf_counter()
    status: list[str | None] = [None]

    def noting_start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
        status[0] = line
        if exc_info is None:
            return start_response(line, headers)
        return start_response(line, headers, exc_info)

    token = attach(_FLOOR_CONTEXT)
    try:
        body = original(self, environ, noting_start_response)
    finally:
        reset(token)
    return _FloorBody(body, started, status)


if args.floor:
    from opentelemetry.trace import INVALID_SPAN, set_span_in_context

    from telemetryflow_bootstrap.infrastructure.current_context import attach, reset

    _FLOOR_CONTEXT = set_span_in_context(INVALID_SPAN)
    instrumented = _floor_wsgi_app


def batch(n: int, wsgi_app: object) -> float:
    """Main-thread CPU µs per request with ``wsgi_app`` in place."""
    flask.Flask.wsgi_app = wsgi_app  # type: ignore[method-assign]
    started = time.thread_time()
    for _ in range(n):
        response = client.get("/hello")
        if response.status_code != 200:
            raise SystemExit(f"/hello answered {response.status_code}")
        response.close()
    return (time.thread_time() - started) / n * 1e6


batch(args.warmup, original)
batch(args.warmup, instrumented)
added = []
for i in range(args.pairs):
    order = (instrumented, original) if i % 2 else (original, instrumented)
    first, second = batch(args.batch_size, order[0]), batch(args.batch_size, order[1])
    added.append(first - second if order[0] is instrumented else second - first)
flask.Flask.wsgi_app = instrumented  # type: ignore[method-assign]
print(json.dumps({"added_us": statistics.median(added), "pairs": added}))
