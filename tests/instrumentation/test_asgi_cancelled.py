"""ASGI requests that end before any response, in process: through Starlette's TestClient,
and through httpx's ``ASGITransport``, where the application runs in the client's own task (a
client that gives up cancels the request). The same app as the e2e tests
(``tests/apps/asgi_cancel_app.py``), patched FastAPI, in-memory exporters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import warnings

import httpx
import pytest
from opentelemetry.trace import StatusCode

from ..apps.asgi_cancel_app import app
from .server_fixtures import no_client_spans, server_telemetry

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["server_telemetry"]


def point_attributes(telemetry) -> list[dict[str, object]]:
    return [dict(point.attributes) for point in telemetry.duration_points()]


def test_testclient_app_cancellation_and_timeout_are_server_errors(server_telemetry):
    """Through the TestClient (which re-raises what escapes the app): a ``CancelledError``
    of the application's own making fails the request (ERROR, ``error.type``
    CancelledError, no status code: none was sent); a timeout that escapes is a 500
    ``TimeoutError``; both reach the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(app)
    with no_client_spans():
        # (the TestClient's portal hands the cancellation on as a concurrent.futures one)
        with pytest.raises(concurrent.futures.CancelledError):
            client.get("/cancelled/inner")
        with pytest.raises(TimeoutError):
            client.get("/timeout/anyio")
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    cancelled, timed_out = spans["/cancelled/inner"], spans["/timeout/anyio"]
    assert cancelled.status.status_code is StatusCode.ERROR
    assert cancelled.attributes["error.type"] == "asyncio.exceptions.CancelledError"
    assert "http.response.status_code" not in cancelled.attributes
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.attributes["error.type"] == "TimeoutError"
    assert timed_out.attributes["http.response.status_code"] == 500
    assert sorted(point_attributes(server_telemetry), key=str) == sorted([
        {"http.request.method": "GET", "url.scheme": "http",
         "http.route": "/cancelled/inner", "error.type": "asyncio.exceptions.CancelledError"},
        {"http.request.method": "GET", "url.scheme": "http", "http.route": "/timeout/anyio",
         "http.response.status_code": 500, "error.type": "TimeoutError"}], key=str)


def test_in_process_client_giving_up_cancels_the_request(server_telemetry):
    """httpx's ``ASGITransport`` runs the application in the caller's task: a client that
    stops waiting (``asyncio.wait_for``) cancels the handler before it answered. The request
    failed and was not answered: ERROR, ``error.type`` CancelledError, no status code (as a
    client gone mid-upload is recorded), one duration point saying so; the cancellation
    reaches the client as its timeout."""
    async def give_up() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await asyncio.wait_for(client.get("/slow", params={"seconds": "5"}), 0.2)

    with no_client_spans(), pytest.raises(TimeoutError):
        asyncio.run(give_up())
    span = server_telemetry.one_server_span()
    assert span.name == "GET /slow"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"
    assert "http.response.status_code" not in span.attributes
    assert point_attributes(server_telemetry) == [
        {"http.request.method": "GET", "url.scheme": "http", "http.route": "/slow",
         "error.type": "asyncio.exceptions.CancelledError"}]
