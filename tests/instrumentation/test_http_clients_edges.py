"""HTTP client edges a demanding user hits: internationalised host names, urllib.request
redirects counted as resends (also as the launcher runs a program, which imports
urllib.request after the hook armed http.client), a request whose response is never
fetched, retries that give up on a status, proxies and CONNECT tunnels, timeouts. Same
patched libraries and in-memory exporters as ``test_http_clients``, real loopback servers."""

from __future__ import annotations

import asyncio
import base64
import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
import urllib3
from opentelemetry.trace import StatusCode
from requests.adapters import HTTPAdapter

from ..e2e.launcher import app, python, receiver_env, run
from .http_fixtures import EchoServer, H2cServer, echo_server, h2c_server, other_echo_server
from .test_http_clients import Telemetry, _patched, _traceparent_of, telemetry

__all__ = ["_patched", "echo_server", "h2c_server", "other_echo_server", "telemetry"]

_IDN = "bücher.example"
_IDN_ASCII = "xn--bcher-kva.example"


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


# ----- internationalised host names ----------------------------------------------------------

def _idn_with_requests(proxy: EchoServer) -> int:
    return _session().get(f"http://{_IDN}/idn", proxies={"http": proxy.url},
                          timeout=5).status_code


def _idn_with_httpx(proxy: EchoServer) -> int:
    with httpx.Client(proxy=proxy.url, trust_env=False) as client:
        return client.get(f"http://{_IDN}/idn").status_code


def _idn_with_httpx_async(proxy: EchoServer) -> int:
    async def get() -> int:
        async with httpx.AsyncClient(proxy=proxy.url, trust_env=False) as client:
            return (await client.get(f"http://{_IDN}/idn")).status_code

    return asyncio.run(get())


def _idn_with_urllib3(proxy: EchoServer) -> int:
    return urllib3.ProxyManager(proxy.url).request("GET", f"http://{_IDN}/idn",
                                                   retries=False).status


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to a fixed address whatever its host (as clients pinning an IP or talking
    over a Unix socket do): the host name reaches http.client as the program gave it (as
    urllib.request hands it over), without a DNS lookup."""

    address: tuple[str, int]

    def connect(self) -> None:
        self.sock = socket.create_connection(self.address, self.timeout)


def _idn_with_http_client(server: EchoServer) -> int:
    connection = _PinnedConnection(_IDN, 80, timeout=5)
    connection.address = (server.host, server.port)
    try:
        connection.request("GET", "/idn")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("get", [_idn_with_requests, _idn_with_httpx, _idn_with_httpx_async,
                                 _idn_with_urllib3, _idn_with_http_client],
                         ids=["requests", "httpx", "httpx-async", "urllib3", "http.client"])
def test_an_internationalised_host_is_reported_in_its_ascii_form(
        telemetry: Telemetry, echo_server: EchoServer, get: Callable[[EchoServer], int]
) -> None:
    """Every client reports ``bücher.example`` as it goes on the wire and to DNS,
    ``xn--bcher-kva.example``, in server.address (span and duration point) and url.full:
    one server, one name, whichever library called it (httpx reported it in Unicode while
    its url.full had the ASCII form)."""
    assert get(echo_server) == 200
    span = telemetry.client_span()
    assert echo_server.last().headers["host"] == _IDN_ASCII
    assert span.attributes["server.address"] == _IDN_ASCII
    assert span.attributes["url.full"] == f"http://{_IDN_ASCII}/idn"
    [point] = telemetry.duration_points()
    assert point.attributes["server.address"] == _IDN_ASCII


# ----- urllib.request redirects --------------------------------------------------------------

def test_a_urllib_redirect_to_another_server_counts_as_a_resend(
        telemetry: Telemetry, echo_server: EchoServer, other_echo_server: EchoServer) -> None:
    """urllib.request following redirect, redirect, answer across two servers: three
    sibling spans with resend counts none, 1, 2, each hop's server and its own
    traceparent; the caller's Request, sent again, is a first request again."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    last = f"{other_echo_server.url}/status/200"
    middle = f"{echo_server.url}/redirect?to={last}"
    request = urllib.request.Request(f"{other_echo_server.url}/redirect?to={middle}")
    with telemetry.tracer.start_as_current_span("handler") as handler, \
            opener.open(request, timeout=5) as response:
        assert response.status == 200
    spans = telemetry.client_spans()
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1, 2]
    assert [s.attributes["server.port"] for s in spans] == [
        other_echo_server.port, echo_server.port, other_echo_server.port]
    assert {s.parent.span_id for s in spans} == {handler.get_span_context().span_id}
    assert other_echo_server.last().headers["traceparent"] == _traceparent_of(spans[2])
    assert echo_server.last().headers["traceparent"] == _traceparent_of(spans[1])
    telemetry.reset()
    with opener.open(request, timeout=5) as response:
        response.read()
    assert [s.attributes.get("http.request.resend_count")
            for s in telemetry.client_spans()] == [None, 1, 2]


def test_a_urllib_redirect_under_the_launcher_counts_as_a_resend(
        otlp_receiver: Any, echo_server: EchoServer) -> None:
    """As a user runs it: ``telemetryflow-run python`` a program that imports urllib.request
    (which imports http.client, so the hook patches http.client before urllib.request's
    classes exist) and follows a redirect: the second hop still carries resend count 1."""
    target = f"{echo_server.url}/status/200"
    env = receiver_env(otlp_receiver, "http", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    proc = run(python(app("http_urllib_redirect_app.py"),
                      f"{echo_server.url}/redirect?to={target}"), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200"]
    [parent] = otlp_receiver.wait_for_spans(1, name="follow")
    hops = sorted((s for s in otlp_receiver.wait_for_spans(2, name="GET")
                   if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns)
    assert [s.attributes.get("http.request.resend_count") for s in hops] == [None, 1]
    assert [s.attributes["http.response.status_code"] for s in hops] == [302, 200]
    assert hops[1].attributes["url.full"] == target


# ----- http.client: a response never fetched -------------------------------------------------

def test_a_request_whose_response_is_never_fetched_ends_at_close(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """http.client request() then close() without getresponse(): the request went out with
    its span's traceparent, and that span ends at close (it was never exported before),
    without a status code."""
    connection = http.client.HTTPConnection(echo_server.host, echo_server.port, timeout=5)
    connection.request("GET", "/abandoned")
    connection.sock.recv(1)  # (the server has the request once it starts answering)
    connection.close()
    span = telemetry.client_span()
    assert span.attributes["url.full"] == f"{echo_server.url}/abandoned"
    assert "http.response.status_code" not in span.attributes
    assert echo_server.last().headers["traceparent"] == _traceparent_of(span)
    [point] = telemetry.duration_points()
    assert point.count == 1


def test_several_requests_on_one_http_client_connection(telemetry: Telemetry,
                                                        echo_server: EchoServer) -> None:
    """One persistent HTTPConnection, three requests (one answered 404): three spans, each
    with its own status and traceparent, the 404 an error."""
    connection = http.client.HTTPConnection(echo_server.host, echo_server.port, timeout=5)
    statuses = []
    for path in ("/one", "/status/404", "/three"):
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    assert statuses == [200, 404, 200]
    spans = telemetry.client_spans()
    assert [s.attributes["http.response.status_code"] for s in spans] == statuses
    assert [s.status.status_code for s in spans] == [
        StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET]
    assert [r.headers["traceparent"] for r in echo_server.seen[-3:]] == [
        _traceparent_of(s) for s in spans]


# ----- retries that give up ------------------------------------------------------------------

def _retry_503(total: int) -> urllib3.Retry:
    return urllib3.Retry(total=total, status_forcelist=[503], backoff_factor=0)


@pytest.mark.parametrize("via", ["urllib3", "requests"])
def test_the_attempt_a_retry_gives_up_on_keeps_its_status(telemetry: Telemetry,
                                                          echo_server: EchoServer,
                                                          via: str) -> None:
    """A 503 retried until none is left with raise_on_status (urllib3's default): the last
    attempt's span and duration point say the 503 it got (they had no status at all), next
    to the exception the caller sees."""
    url = f"{echo_server.url}/status/503"
    if via == "urllib3":
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            urllib3.PoolManager().request("GET", url, retries=_retry_503(1))
    else:
        session = _session()
        session.mount("http://", HTTPAdapter(max_retries=_retry_503(1)))
        with pytest.raises(requests.exceptions.RetryError):
            session.get(url, timeout=5)
    first, last = telemetry.client_spans()
    assert first.attributes["error.type"] == "503"
    assert last.attributes["http.response.status_code"] == 503
    assert last.attributes["http.request.resend_count"] == 1
    assert last.attributes["error.type"] == "urllib3.exceptions.MaxRetryError"
    assert last.status.status_code is StatusCode.ERROR
    assert sorted(p.attributes.get("http.response.status_code")
                  for p in telemetry.duration_points()) == [503, 503]


# ----- proxies, tunnels, timeouts ------------------------------------------------------------

_PROXY_SECRET = "pr0xy-s3cret"


@pytest.mark.parametrize("via", ["requests", "httpx", "urllib3", "urllib.request",
                                 "http.client-tunnel"])
def test_a_proxied_request_names_the_server_not_the_proxy_and_no_credentials(
        telemetry: Telemetry, echo_server: EchoServer, other_echo_server: EchoServer,
        via: str) -> None:
    """Through a forward proxy with credentials (or a CONNECT tunnel with a
    Proxy-Authorization header), the span names the server behind it (url.full,
    server.address/port, as the conventions ask) and the proxy's credentials appear
    nowhere; the span's traceparent goes out with the request."""
    proxy = f"http://puser:{_PROXY_SECRET}@{other_echo_server.host}:{other_echo_server.port}"
    target = f"{echo_server.url}/behind-proxy"
    if via == "requests":
        status = _session().get(target, proxies={"http": proxy}, timeout=5).status_code
    elif via == "httpx":
        with httpx.Client(proxy=proxy, trust_env=False) as client:
            status = client.get(target).status_code
    elif via == "urllib3":
        status = urllib3.ProxyManager(proxy).request("GET", target).status
    elif via == "urllib.request":
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        with opener.open(target, timeout=5) as response:
            status = response.status
    else:
        connection = http.client.HTTPConnection(other_echo_server.host,
                                                other_echo_server.port, timeout=5)
        secret = base64.b64encode(f"puser:{_PROXY_SECRET}".encode()).decode()
        connection.set_tunnel(echo_server.host, echo_server.port,
                              headers={"Proxy-Authorization": f"Basic {secret}"})
        connection.request("GET", "/behind-proxy")
        status = connection.getresponse().status
        connection.close()
    assert status == 200
    span = telemetry.client_span()
    assert (span.attributes["url.full"], span.attributes["server.address"],
            span.attributes["server.port"]) == (target, echo_server.host, echo_server.port)
    recorded = repr(dict(span.attributes)) + repr([dict(e.attributes) for e in span.events])
    assert _PROXY_SECRET not in recorded
    assert "puser" not in recorded
    [seen] = [r for r in other_echo_server.seen[-1:]]
    assert seen.headers["traceparent"] == _traceparent_of(span)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/slow"


@pytest.mark.parametrize(("via", "caught", "error_type"), [
    ("requests", requests.exceptions.ReadTimeout, "requests.exceptions.ReadTimeout"),
    ("httpx", httpx.ReadTimeout, "httpx.ReadTimeout"),
    ("urllib3", urllib3.exceptions.ReadTimeoutError, "urllib3.exceptions.ReadTimeoutError"),
    ("urllib.request", TimeoutError, "TimeoutError"),
])
def test_a_read_timeout_is_an_error_named_after_the_exception(
        telemetry: Telemetry, silent_server: str, via: str, caught: type[BaseException],
        error_type: str) -> None:
    """A server that never answers: the caller's timeout exception, and error.type names
    its class in full (span and duration point), no status code."""
    with pytest.raises(caught):
        if via == "requests":
            _session().get(silent_server, timeout=0.2)
        elif via == "httpx":
            httpx.Client(trust_env=False, timeout=0.2).get(silent_server)
        elif via == "urllib3":
            urllib3.PoolManager().request("GET", silent_server, timeout=0.2, retries=False)
        else:
            try:
                urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                    silent_server, timeout=0.2)
            except urllib.error.URLError as error:  # (3.10 wraps it)
                raise error.reason from None
    span = telemetry.client_span()
    assert span.attributes["error.type"] == error_type
    assert "http.response.status_code" not in span.attributes
    [point] = telemetry.duration_points()
    assert point.attributes["error.type"] == error_type


# ----- HTTP/2 ---------------------------------------------------------------------------------

def test_httpx_http2_requests_multiplexed_on_one_connection(telemetry: Telemetry,
                                                            h2c_server: H2cServer) -> None:
    """An AsyncClient speaking HTTP/2, four requests at once on one connection and then a
    stream: a span each, protocol version 2, each stream carrying its own span's
    traceparent, the 503 an error; the streamed one ended before its body was read."""
    async def main() -> list[int]:
        async with httpx.AsyncClient(http1=False, http2=True, trust_env=False) as client:
            responses = await asyncio.gather(
                *(client.get(f"{h2c_server.url}/{i}") for i in range(3)),
                client.get(f"{h2c_server.url}/status/503"))
            async with client.stream("GET", f"{h2c_server.url}/streamed") as streamed:
                assert len(telemetry.client_spans()) == 5
                await streamed.aread()
            return [r.status_code for r in responses]

    with telemetry.tracer.start_as_current_span("handler") as handler:
        assert asyncio.run(main()) == [200, 200, 200, 503]
    spans = telemetry.client_spans()
    assert {s.attributes["network.protocol.version"] for s in spans} == {"2"}
    assert {s.parent.span_id for s in spans} == {handler.get_span_context().span_id}
    by_path = {s.attributes["url.full"].rsplit("/", 1)[1]: s for s in spans}
    for headers in h2c_server.seen[-5:]:
        path = headers[":path"].rsplit("/", 1)[1]
        assert headers["traceparent"] == _traceparent_of(by_path[path])
    assert by_path["503"].attributes["error.type"] == "503"
    assert len({_traceparent_of(s) for s in spans}) == 5
