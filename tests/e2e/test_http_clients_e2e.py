"""HTTP client instrumentation end to end: ``telemetryflow-run`` on a program that uses
requests, a real loopback server, the real OTLP receiver."""

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
