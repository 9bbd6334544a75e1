"""Header capture and query redaction on the server side, against real servers: a Flask app
behind our WSGI middleware on a real werkzeug server on loopback, and a plain ASGI app behind
our ASGI middleware driven by Starlette's TestClient. The capture settings use the
opentelemetry-python-contrib syntax (regexes, case-insensitive), the tester's own example:
``.*`` / ``X-.*`` captured, ``x-api-key,.*session.*`` sanitized."""

from __future__ import annotations

import http.client
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from werkzeug.serving import make_server

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.middleware import FlaskTelemetryMiddleware

from .server_fixtures import ServerTelemetry, no_client_spans, server_telemetry

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["server_telemetry"]

SECRETS = ("SESSTOK", "APIKEYSECRET", "TOPSECRET", "RESPSESSION", "COOKIESECRET")
SENT = {"X-Request-Id": "r-1", "X-Session-Token": "SESSTOK", "X-Api-Key": "APIKEYSECRET",
        "Authorization": "Bearer TOPSECRET"}
PRESIGNED = ("X-Amz-Credential=AKIAEXAMPLE%2F20261127%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20261127T000000Z&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE"
             "&X-Amz-Signature=0123456789abcdef&page=2")
REDACTED_QUERY = ("X-Amz-Credential=REDACTED&X-Amz-Date=20261127T000000Z"
                  "&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED&page=2")


@pytest.fixture
def capture_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Capture settings as the tester wrote them (read when a middleware is built)."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
                       "X-.*,set-cookie")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",
                       "x-api-key,.*session.*")


def _check(attributes: dict[str, Any]) -> None:
    """The captured headers the tester's settings ask for, with every secret REDACTED."""
    assert attributes["http.request.header.x-request-id"] == ("r-1",)
    for name in ("x-session-token", "x-api-key", "authorization"):
        assert attributes[f"http.request.header.{name}"] == ("REDACTED",)
    assert "http.request.header.host" in attributes  # .* takes everything
    assert attributes["http.response.header.x-resp-id"] == ("r1",)
    assert attributes["http.response.header.x-resp-session"] == ("REDACTED",)
    assert attributes["http.response.header.set-cookie"] == ("REDACTED",)
    assert "http.response.header.content-type" not in attributes  # X-.* is a whole-name match
    recorded = repr(attributes)
    assert [s for s in SECRETS if s in recorded] == []


@pytest.fixture
def flask_server(server_telemetry: ServerTelemetry, capture_env: None) -> Iterator[str]:
    """A Flask app behind our middleware, served by werkzeug on a loopback port."""
    app = flask.Flask("capture")

    @app.get("/h")
    def h() -> flask.Response:
        response = flask.Response("ok", headers={"X-Resp-Id": "r1",
                                                 "X-Resp-Session": "RESPSESSION"})
        response.set_cookie("sid", "COOKIESECRET")
        return response

    FlaskTelemetryMiddleware(app, client=server_telemetry.context)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _get(host: str, target: str) -> int:
    connection = http.client.HTTPConnection(host, timeout=5)
    try:
        with no_client_spans():
            connection.request("GET", target, headers=SENT)
            response = connection.getresponse()
            response.read()
        return response.status
    finally:
        connection.close()


def _served_span(telemetry: ServerTelemetry) -> Any:
    """The one server span, once the server thread has ended it (it ends when the server
    closes the response body, which may be after the client has read the response)."""
    deadline = time.monotonic() + 10
    while not telemetry.server_spans() and time.monotonic() < deadline:
        time.sleep(0.01)
    return telemetry.one_server_span()


def test_wsgi_server_captures_and_sanitizes_with_regexes(server_telemetry: ServerTelemetry,
                                                         flask_server: str) -> None:
    """On a real server, .* captures every request header and X-.* the X- response headers,
    while x-api-key and .*session.* (and Authorization, Set-Cookie) are REDACTED."""
    assert _get(flask_server, "/h") == 200
    _check(dict(_served_span(server_telemetry).attributes))


def test_wsgi_server_redacts_presigned_url_credentials(server_telemetry: ServerTelemetry,
                                                       flask_server: str) -> None:
    """url.query keeps its keys but not the SigV4 signature, credential or session token."""
    assert _get(flask_server, f"/h?{PRESIGNED}") == 200
    assert _served_span(server_telemetry).attributes["url.query"] == REDACTED_QUERY


async def _asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"), (b"x-resp-id", b"r1"),
        (b"x-resp-session", b"RESPSESSION"), (b"set-cookie", b"sid=COOKIESECRET")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_asgi_server_captures_and_sanitizes_with_regexes(server_telemetry: ServerTelemetry,
                                                         capture_env: None) -> None:
    """The same settings through the ASGI layer (headers arrive as bytes there)."""
    app = TelemetryASGIMiddleware(_asgi_app, client=server_telemetry.context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = TestClient(app)
    with no_client_spans():
        assert client.get("/h", headers=SENT).status_code == 200
        assert client.get(f"/h?{PRESIGNED}").status_code == 200
    first, second = sorted(server_telemetry.server_spans(), key=lambda s: s.start_time)
    _check(dict(first.attributes))
    assert second.attributes["url.query"] == REDACTED_QUERY
