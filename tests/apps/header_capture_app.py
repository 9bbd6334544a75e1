"""A program that knows nothing of telemetryflow: it serves a Flask app on a loopback port
and calls it twice, with requests and with httpx, sending headers that hold secrets (an API
key, a session token, a bearer token); the app answers with a session cookie and a header
of its own. Prints the two status codes.

Run by hand, with the capture settings of opentelemetry-python-contrib::

    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST='.*' \\
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST='X-.*' \\
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS='x-api-key,.*session.*' \\
    telemetryflow-run python tests/apps/header_capture_app.py
"""

import threading

import httpx
import requests
from flask import Flask, Response
from werkzeug.serving import make_server

app = Flask(__name__)


@app.get("/h")
def h() -> Response:
    response = Response("ok", headers={"X-Resp-Id": "r1"})
    response.set_cookie("sid", "COOKIESECRET")
    return response


server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/h"
secrets = {"X-Request-Id": "abc", "Authorization": "Bearer TOPSECRET",
           "X-Api-Key": "APIKEYSECRET", "X-Session-Token": "SESSTOK"}
first = requests.get(url, headers=secrets, timeout=10).status_code
second = httpx.get(url, headers=secrets, trust_env=False).status_code
server.shutdown()
print(first, second)
