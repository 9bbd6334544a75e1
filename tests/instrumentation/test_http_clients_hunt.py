"""HTTP client behaviours a demanding user hits: resends inside one urllib3 ``urlopen()``
(retries and same-pool redirects, also under requests) and Starlette's TestClient WebSocket
handshake. Same patched libraries and in-memory exporters as ``test_http_clients``."""

from __future__ import annotations

import http.client
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
import urllib3
from opentelemetry.trace import StatusCode
from requests.adapters import HTTPAdapter

from .http_fixtures import EchoServer, echo_server, refused_url, trace_header_server
from .test_http_clients import (
    Client,
    Telemetry,
    _patched,
    _traceparent_of,
    _unsampled_parent,
    each_client,
    telemetry,
)

__all__ = ["_patched", "echo_server", "telemetry", "trace_header_server"]


def _retry_503(total: int = 2) -> urllib3.Retry:
    return urllib3.Retry(total=total, status_forcelist=[503], backoff_factor=0,
                         raise_on_status=False)


def _assert_one_span_per_attempt(telemetry: Telemetry, echo_server: EchoServer,
                                 attempts: int, parent: Any) -> list[Any]:
    """``attempts`` CLIENT spans, resend counts None, 1, 2 ..., all children of ``parent``,
    each attempt carrying its own span's traceparent to the server."""
    spans = telemetry.client_spans()
    assert len(spans) == attempts, [dict(s.attributes) for s in spans]
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [
        None, *range(1, attempts)]
    assert {s.parent.span_id for s in spans} == {parent.get_span_context().span_id}
    sent = [r.headers["traceparent"] for r in echo_server.seen[-attempts:]]
    assert sent == [_traceparent_of(s) for s in spans]
    return spans


@pytest.mark.parametrize("via", ["pool-manager", "connection-pool"])
def test_each_urllib3_retry_is_a_span_with_its_own_traceparent(telemetry: Telemetry,
                                                               echo_server: EchoServer,
                                                               via: str) -> None:
    """A 503 retried twice by urllib3 inside one urlopen() is three CLIENT spans (resend
    counts none, 1, 2), one per request on the wire, each with its own traceparent, and three
    duration points."""
    url = f"{echo_server.url}/status/503"
    with telemetry.tracer.start_as_current_span("handler") as handler:
        if via == "pool-manager":
            status = urllib3.PoolManager().request("GET", url, retries=_retry_503()).status
        else:
            pool = urllib3.HTTPConnectionPool(echo_server.host, echo_server.port)
            status = pool.urlopen("GET", "/status/503", retries=_retry_503()).status
    assert status == 503
    spans = _assert_one_span_per_attempt(telemetry, echo_server, 3, handler)
    for span in spans:
        assert span.attributes["http.response.status_code"] == 503
        assert span.attributes["error.type"] == "503"
    assert sum(p.count for p in telemetry.duration_points()) == 3


def test_a_same_pool_redirect_is_a_span_of_its_own(telemetry: Telemetry,
                                                   echo_server: EchoServer) -> None:
    """A redirect an HTTPConnectionPool follows itself (redirect=True) is a second span with
    the target's URL, resend count 1 and its own traceparent."""
    pool = urllib3.HTTPConnectionPool(echo_server.host, echo_server.port)
    with telemetry.tracer.start_as_current_span("handler") as handler:
        assert pool.urlopen("GET", "/redirect", redirect=True).status == 200
    first, second = _assert_one_span_per_attempt(telemetry, echo_server, 2, handler)
    assert first.attributes["http.response.status_code"] == 302
    assert second.attributes["url.full"] == f"{echo_server.url}/status/200"
    assert second.attributes["http.response.status_code"] == 200


def test_each_retry_of_a_requests_adapter_is_a_span(telemetry: Telemetry,
                                                    echo_server: EchoServer) -> None:
    """requests with HTTPAdapter(max_retries=Retry(...)): urllib3 retries under the requests
    call, and each attempt is still its own CLIENT span (not one span over three requests
    with one traceparent), and the caller still gets the final response."""
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(max_retries=_retry_503()))
    with telemetry.tracer.start_as_current_span("handler") as handler:
        assert session.get(f"{echo_server.url}/status/503", timeout=5).status_code == 503
    spans = _assert_one_span_per_attempt(telemetry, echo_server, 3, handler)
    assert [s.attributes["http.response.status_code"] for s in spans] == [503] * 3


def test_each_connection_attempt_urllib3_retries_is_a_failed_span(telemetry: Telemetry
                                                                  ) -> None:
    """Connection refused, retried once: two failed spans (the first with the connection
    error, the last with the MaxRetryError the caller sees), resend count on the second."""
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        urllib3.PoolManager().request("GET", refused_url(), retries=urllib3.Retry(1))
    first, second = telemetry.client_spans()
    assert first.attributes["error.type"] == "urllib3.exceptions.NewConnectionError"
    assert second.attributes["error.type"] == "urllib3.exceptions.MaxRetryError"
    assert second.attributes["http.request.resend_count"] == 1
    assert first.status.status_code is second.status.status_code is StatusCode.ERROR


def test_without_resends_urllib3_under_requests_still_makes_one_span(telemetry: Telemetry,
                                                                     echo_server: EchoServer
                                                                     ) -> None:
    """The usual case stays one span per requests call, urllib3 standing aside."""
    session = requests.Session()
    session.trust_env = False
    for _ in range(3):
        assert session.get(f"{echo_server.url}/x", timeout=5).status_code == 200
    assert len(telemetry.client_spans()) == 3


_STALE = "00-11111111111111111111111111111111-2222222222222222-01"


def _urllib_request(url: str, name: str) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, headers={name: _STALE}), timeout=5) as r:
        r.read()


def _urllib3(url: str, name: str) -> None:
    urllib3.PoolManager().request("GET", url, headers={name: _STALE}, retries=False)


def _http_client(url: str, name: str) -> None:
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/", headers={name: _STALE})
        connection.getresponse().read()
    finally:
        connection.close()


def _requests(url: str, name: str) -> None:
    session = requests.Session()
    session.trust_env = False
    session.get(url, headers={name: _STALE}, timeout=5)


def _httpx(url: str, name: str) -> None:
    with httpx.Client(trust_env=False) as client:
        client.get(url, headers={name: _STALE})


@pytest.mark.parametrize("name", ["traceparent", "Traceparent", "TRACEPARENT"])
@pytest.mark.parametrize("send", [_urllib_request, _urllib3, _http_client, _requests, _httpx],
                         ids=["urllib.request", "urllib3", "http.client", "requests", "httpx"])
def test_a_traceparent_the_caller_set_is_replaced_not_repeated(
        telemetry: Telemetry, trace_header_server: Any, send: Callable[[str, str], None],
        name: str) -> None:
    """A request whose caller set a traceparent of its own (in any letter case; urllib.request
    always sends it as ``Traceparent``) goes out with one traceparent line, the client
    span's, not the caller's and ours side by side (which a server reads as garbage or as
    the stale one, breaking the trace)."""
    send(f"http://127.0.0.1:{trace_header_server.server_address[1]}/", name)
    span = telemetry.client_span()
    [lines] = trace_header_server.lines[-1:]
    assert [value for _, value in lines] == [_traceparent_of(span)]


def test_a_testclient_websocket_handshake_is_not_an_error(telemetry: Telemetry) -> None:
    """Starlette's TestClient raises its internal _Upgrade through httpx to hand over a
    WebSocket session: the handshake's CLIENT span is no error (no error.type, status UNSET,
    no exception event) and names the ws port; the session works as without us."""
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket

    async def hello(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    client = TestClient(Starlette(routes=[WebSocketRoute("/ws", hello)]))
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hi"
    span = telemetry.client_span()
    assert span.attributes["url.full"] == "ws://testserver/ws"
    assert span.attributes["server.port"] == 80
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events] == []
    [point] = telemetry.duration_points()
    assert "error.type" not in point.attributes


@each_client
@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "unsampled"])
def test_the_duration_point_names_the_protocol_version(telemetry: Telemetry,
                                                       echo_server: EchoServer, client: Client,
                                                       sampled: bool) -> None:
    """http.client.request.duration carries network.protocol.version (Recommended by the
    HTTP metric conventions), as the span does, whether or not the span is sampled."""
    from opentelemetry import context

    token = None if sampled else context.attach(_unsampled_parent())
    try:
        assert client.get(f"{echo_server.url}/x", None) == 200
    finally:
        if token is not None:
            context.detach(token)
    [point] = telemetry.duration_points()
    assert point.attributes["network.protocol.version"] == "1.1"
    assert len(telemetry.spans()) == (1 if sampled else 0)
