"""HTTP client instrumentation end to end: ``telemetryflow-run`` on programs that use
requests and httpx, real loopback servers, the real OTLP receiver."""

from __future__ import annotations

import pytest

from ..instrumentation.http_fixtures import EchoServer, echo_server
from ..otlp_receiver import OTLPReceiver
from .launcher import app, python, receiver_env, run

__all__ = ["echo_server"]

pytestmark = pytest.mark.e2e


def test_requests_call_is_a_client_span_under_the_app_span(otlp_receiver: OTLPReceiver,
                                                           echo_server: EchoServer) -> None:
    """requests.get in an instrumented program arrives as a CLIENT span (url.full, status)
    under the program's own span, its context reaches the server, the duration metric
    arrives, and the exporter's own HTTP traffic is not traced."""
    url = f"{echo_server.url}/orders?page=1"
    env = receiver_env(otlp_receiver, "http", NO_PROXY="127.0.0.1,localhost",
                       no_proxy="127.0.0.1,localhost")
    proc = run(python(app("http_client_app.py"), url), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "200"
    [client] = otlp_receiver.wait_for_spans(1, name="GET")
    [parent] = otlp_receiver.wait_for_spans(1, name="fetch-page")
    assert client.kind == "CLIENT"
    assert client.attributes["url.full"] == url
    assert client.attributes["http.request.method"] == "GET"
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["server.port"] == echo_server.port
    assert client.parent_span_id == parent.span_id
    assert client.trace_id == parent.trace_id
    traceparent = echo_server.last().headers["traceparent"]
    assert traceparent.split("-")[1:3] == [client.trace_id, client.span_id]
    point = otlp_receiver.wait_for_metric("http.client.request.duration")[-1]
    assert point.count == 1
    assert point.attributes["server.port"] == echo_server.port
    assert "url.full" not in point.attributes
    client_spans = [s for s in otlp_receiver.spans() if s.kind == "CLIENT"]
    assert client_spans == [client]  # no span for the OTLP/HTTP exports themselves


def test_header_capture_regexes_redact_secrets_on_both_sides(otlp_receiver: OTLPReceiver
                                                             ) -> None:
    """With the contrib syntax (.* and X-.* captured, x-api-key and .*session.* sanitized), a
    program whose requests and httpx calls reach its own Flask server exports the headers on
    the client and server spans, and no secret value anywhere in them."""
    env = receiver_env(
        otlp_receiver, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST=".*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="X-.*,set-cookie",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST="X-.*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE=".*",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="x-api-key,.*session.*")
    proc = run(python(app("header_capture_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200", "200"]
    clients = otlp_receiver.wait_for_spans(2, name="GET")
    servers = otlp_receiver.wait_for_spans(2, name="GET /h")
    for client in clients:
        assert client.attributes["http.request.header.x-request-id"] == ["abc"]
        assert client.attributes["http.request.header.x-api-key"] == ["REDACTED"]
        assert client.attributes["http.request.header.x-session-token"] == ["REDACTED"]
        assert client.attributes["http.response.header.x-resp-id"] == ["r1"]
        assert client.attributes["http.response.header.set-cookie"] == ["REDACTED"]
    for server in servers:
        assert server.attributes["http.request.header.x-request-id"] == ["abc"]
        for name in ("x-api-key", "x-session-token", "authorization"):
            assert server.attributes[f"http.request.header.{name}"] == ["REDACTED"]
        assert server.attributes["http.response.header.x-resp-id"] == ["r1"]
        assert server.attributes["http.response.header.set-cookie"] == ["REDACTED"]
    exported = repr([s.attributes for s in otlp_receiver.spans()])
    assert [s for s in ("TOPSECRET", "APIKEYSECRET", "SESSTOK", "COOKIESECRET")
            if s in exported] == []
