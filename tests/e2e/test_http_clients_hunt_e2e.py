"""HTTP client behaviours a demanding user hits, end to end: ``telemetryflow-run`` on a
program using requests with urllib3 retries and Starlette's TestClient WebSocket, against
a real loopback server and the real OTLP receiver."""

from __future__ import annotations

from typing import Any

import pytest

from ..instrumentation.http_fixtures import EchoServer, echo_server, trace_header_server
from ..otlp_receiver import OTLPReceiver
from .launcher import app, python, receiver_env, run

__all__ = ["echo_server", "trace_header_server"]

pytestmark = pytest.mark.e2e


def test_retried_requests_are_one_span_each_and_a_websocket_handshake_no_error(
        otlp_receiver: OTLPReceiver, echo_server: EchoServer, trace_header_server: Any
) -> None:
    """A requests call whose adapter retries a 503 twice arrives as three CLIENT spans under
    the program's span (resend counts none, 1, 2), each request on the wire carrying its own
    span's traceparent, and three duration points naming the protocol version; a TestClient
    WebSocket handshake arrives as a CLIENT span without error; a urllib.request call given a
    traceparent of the program's own sends one traceparent, its span's, not both."""
    url = f"{echo_server.url}/status/503"
    before = len(echo_server.seen)
    env = receiver_env(otlp_receiver, "http", NO_PROXY="127.0.0.1,localhost",
                       no_proxy="127.0.0.1,localhost")
    plain = f"http://127.0.0.1:{trace_header_server.server_address[1]}/plain"
    proc = run(python(app("http_retries_app.py"), url, plain), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["503", "hi", "200"]
    [parent] = otlp_receiver.wait_for_spans(1, name="fetch-with-retries")
    [ws_parent] = otlp_receiver.wait_for_spans(1, name="websocket")
    clients = sorted((s for s in otlp_receiver.wait_for_spans(5, name="GET")
                      if s.kind == "CLIENT"), key=lambda s: s.start_ns)
    attempts = [s for s in clients if s.parent_span_id == parent.span_id]
    assert [s.attributes.get("http.request.resend_count") for s in attempts] == [None, 1, 2]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503] * 3
    sent = [r.headers["traceparent"].split("-")[2] for r in echo_server.seen[before:]]
    assert sent == [s.span_id for s in attempts]
    [handshake] = [s for s in clients if s.parent_span_id == ws_parent.span_id]
    assert handshake.attributes["url.full"] == "ws://testserver/ws"
    assert "error.type" not in handshake.attributes
    assert handshake.status_code == "UNSET"
    [plain_span] = [s for s in clients if s.attributes["url.full"] == plain]
    [lines] = trace_header_server.lines[-1:]
    assert [value.split("-")[2] for _, value in lines] == [plain_span.span_id]
    points = [p for p in otlp_receiver.wait_for_metric("http.client.request.duration")
              if p.attributes.get("server.port") == echo_server.port]
    assert sum(p.count for p in points) == 3
    assert {p.attributes["network.protocol.version"] for p in points} == {"1.1"}
