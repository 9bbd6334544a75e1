"""Three rounds, each of 5 Flask requests, 5 counter increments and 5 histogram points,
each round in an export of its own (metric export interval 100 ms): for the temporality and
histogram-aggregation tests."""

import time

import flask

from telemetryflow_bootstrap import get_client

app = flask.Flask(__name__)


@app.route("/x")
def x() -> str:
    return "x"


http = app.test_client()
client = get_client()
for _round in range(3):
    for _ in range(5):
        assert http.get("/x").data == b"x"  # (read: the request ends with its body)
        client.increment_counter("app.jobs")
        client.record_histogram("app.size", 2.0)
    time.sleep(0.5)
print("done", flush=True)
