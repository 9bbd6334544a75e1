"""A Flask app for gunicorn's gevent and eventlet workers (tests/e2e/test_gevent_e2e.py).

    telemetryflow-run gunicorn -k gevent --worker-connections 100 tests.apps.gevent_flask_app:app

``/call?tag=T`` sleeps cooperatively, then GETs ``$DOWNSTREAM_URL?tag=T`` with requests, so
many requests are in flight at once in one worker; it answers with the ``traceparent`` the
downstream server saw, so the test can match each request with its outbound call.
"""

from __future__ import annotations

import os
import time

import requests
from flask import Flask, request

app = Flask(__name__)


@app.get("/call")
def call() -> str:
    tag = request.args["tag"]
    time.sleep(0.05)  # (patched: other requests run meanwhile)
    response = requests.get(os.environ["DOWNSTREAM_URL"], params={"tag": tag}, timeout=10)
    return response.text


@app.get("/ping")
def ping() -> str:
    return "pong"
