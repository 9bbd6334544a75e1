"""A program that knows nothing of telemetryflow: inside a span of its own it fetches a URL
with requests and prints the status code.

Run by hand: ``telemetryflow-run python tests/apps/http_client_app.py http://127.0.0.1:8000/``.
"""

import sys

import requests
from opentelemetry import trace

tracer = trace.get_tracer("http_client_app")

with tracer.start_as_current_span("fetch-page"):
    response = requests.get(sys.argv[1], timeout=10)

print(response.status_code)
