"""A program that knows nothing of telemetryflow: inside a span of its own it fetches a URL
that answers 503 with a requests session whose adapter retries 503 twice (urllib3 ``Retry``),
then opens a WebSocket with Starlette's TestClient, then (given a second URL) fetches it
with urllib.request passing a traceparent header of its own, and prints what it got.

Run by hand: ``telemetryflow-run python tests/apps/http_retries_app.py
http://127.0.0.1:8000/status/503 [http://127.0.0.1:8000/]``.
"""

import sys
import urllib.request

import requests
import urllib3
from opentelemetry import trace
from requests.adapters import HTTPAdapter
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.testclient import TestClient

tracer = trace.get_tracer("http_retries_app")


async def hello(websocket):
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


session = requests.Session()
session.mount("http://", HTTPAdapter(max_retries=urllib3.Retry(
    total=2, status_forcelist=[503], backoff_factor=0, raise_on_status=False)))

with tracer.start_as_current_span("fetch-with-retries"):
    response = session.get(sys.argv[1], timeout=10)
print(response.status_code)

with tracer.start_as_current_span("websocket"), TestClient(
        Starlette(routes=[WebSocketRoute("/ws", hello)])).websocket_connect("/ws") as ws:
    print(ws.receive_text())

if len(sys.argv) > 2:  # (a stale parent of its own, as code that propagates by hand has)
    stale = "00-11111111111111111111111111111111-2222222222222222-01"
    request = urllib.request.Request(sys.argv[2], headers={"traceparent": stale})
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status)
