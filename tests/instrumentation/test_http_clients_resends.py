"""HTTP client gaps a demanding user hits: the request an auth challenge makes a client send
again (requests' and httpx's digest auth, urllib.request's auth handlers) is a resend with a
span of its own; a redirect an HTTPConnectionPool refuses to follow to another host leaves
no span for a request never sent; a connect timeout names its exception's full type; the
attempt a urllib3 Retry gives up on keeps its protocol version; the HTTP/2 server fixture
stops cleanly. Same patched libraries and in-memory exporters as ``test_http_clients``,
real loopback servers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import urllib3
from opentelemetry.trace import StatusCode
from requests.adapters import HTTPAdapter

from ..e2e.launcher import REPO, app, python, receiver_env, run
from .http_fixtures import EchoServer, echo_server, full_backlog_url, other_echo_server
from .test_http_clients import Telemetry, _patched, _traceparent_of, telemetry

__all__ = ["_patched", "echo_server", "full_backlog_url", "other_echo_server", "telemetry"]

_USER, _PASSWORD = "alice", "s3cret-pw"


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def _assert_resends(telemetry: Telemetry, echo_server: EchoServer, parent: Any,
                    count: int) -> list[Any]:
    """``count`` CLIENT spans with resend counts none, 1, 2 ..., all children of ``parent``,
    each request on the wire carrying its own span's traceparent."""
    spans = telemetry.client_spans()
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [
        None, *range(1, count)], [dict(s.attributes) for s in spans]
    assert {s.parent.span_id for s in spans} == {parent.get_span_context().span_id}
    sent = [r.headers["traceparent"] for r in echo_server.seen[-count:]]
    assert sent == [_traceparent_of(s) for s in spans]
    assert len(set(sent)) == count
    return spans


# ----- auth challenges answered by sending again -------------------------------------------

def _digest_with_requests(url: str) -> int:
    return _session().get(url, auth=requests.auth.HTTPDigestAuth(_USER, _PASSWORD),
                          timeout=5).status_code


def _digest_with_httpx(url: str) -> int:
    with httpx.Client(trust_env=False, auth=httpx.DigestAuth(_USER, _PASSWORD)) as client:
        return client.get(url).status_code


def _with_urllib_handler(handler_type: type[Any]) -> Any:
    def get(url: str) -> int:
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, url, _USER, _PASSWORD)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             handler_type(passwords))
        with opener.open(url, timeout=5) as response:
            return response.status

    return get


@pytest.mark.parametrize(("get", "scheme"), [
    (_digest_with_requests, "digest"),
    (_digest_with_httpx, "digest"),
    (_with_urllib_handler(urllib.request.HTTPBasicAuthHandler), "basic"),
    (_with_urllib_handler(urllib.request.HTTPDigestAuthHandler), "digest"),
], ids=["requests-digest", "httpx-digest", "urllib-basic", "urllib-digest"])
def test_the_request_an_auth_challenge_makes_is_a_resend(
        telemetry: Telemetry, echo_server: EchoServer, get: Any, scheme: str) -> None:
    """A 401 challenge answered by sending the request again with credentials: two CLIENT
    spans (siblings under the caller's span), the second with http.request.resend_count 1
    and its own traceparent on the wire (requests sent it with the first span's, or a
    span of resend count none; urllib.request counted it as a first request), and a
    duration point for each; the credentials are never recorded."""
    with telemetry.tracer.start_as_current_span("handler") as handler:
        assert get(f"{echo_server.url}/auth/{scheme}") == 200
    challenged, answered = _assert_resends(telemetry, echo_server, handler, 2)
    assert echo_server.seen[-1].headers["authorization"].lower().startswith(scheme)
    assert challenged.attributes["http.response.status_code"] == 401
    assert challenged.attributes["error.type"] == "401"
    assert answered.attributes["http.response.status_code"] == 200
    assert answered.status.status_code is StatusCode.UNSET
    assert answered.attributes["url.full"] == f"{echo_server.url}/auth/{scheme}"
    assert sorted(p.attributes["http.response.status_code"]
                  for p in telemetry.duration_points()) == [200, 401]
    recorded = repr([dict(s.attributes) for s in telemetry.spans()])
    assert _PASSWORD not in recorded


def test_a_redirect_after_a_requests_digest_challenge_counts_on(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """Challenge, authenticated answer that redirects, the redirect's target: three
    requests, resend counts none, 1, 2 (the redirect did not start counting again)."""
    with telemetry.tracer.start_as_current_span("handler") as handler:
        status = _digest_with_requests(
            f"{echo_server.url}/auth/digest?to={echo_server.url}/status/200")
    assert status == 200
    spans = _assert_resends(telemetry, echo_server, handler, 3)
    assert [s.attributes["http.response.status_code"] for s in spans] == [401, 302, 200]


def test_a_requests_hook_calling_another_session_is_still_a_request_of_its_own(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """With digest auth in place, a response hook that makes a requests call of its own:
    that call is no resend (no resend count), while the auth retry is."""
    made: list[int] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if not made:
            made.append(_session().get(f"{echo_server.url}/from-hook", timeout=5).status_code)

    with telemetry.tracer.start_as_current_span("handler"):
        response = _session().get(f"{echo_server.url}/auth/digest", hooks={"response": hook},
                                  auth=requests.auth.HTTPDigestAuth(_USER, _PASSWORD),
                                  timeout=5)
    assert response.status_code == 200 and made == [200]
    by_path = {s.attributes["url.full"].rsplit("/", 2)[-1] + str(
        s.attributes.get("http.response.status_code")): s for s in telemetry.client_spans()}
    assert set(by_path) == {"digest401", "digest200", "from-hook200"}
    assert "http.request.resend_count" not in by_path["from-hook200"].attributes
    assert by_path["digest200"].attributes["http.request.resend_count"] == 1


# ----- a pool that will not follow a redirect to another host -------------------------------

def test_a_pool_redirect_to_another_host_leaves_no_span_for_a_request_never_sent(
        telemetry: Telemetry, echo_server: EchoServer, other_echo_server: EchoServer) -> None:
    """HTTPConnectionPool.urlopen(redirect=True) told to go to another server raises
    HostChangedError before sending anything: the 302 is one span (no error), and there is
    no failed span (nor duration point) for a request that never went out; the other
    server saw nothing. Same for an absolute URL of another host handed to the pool."""
    pool = urllib3.HTTPConnectionPool(echo_server.host, echo_server.port)
    seen_before = len(other_echo_server.seen)
    with telemetry.tracer.start_as_current_span("handler"):
        with pytest.raises(urllib3.exceptions.HostChangedError):
            pool.urlopen("GET", f"/redirect?to={other_echo_server.url}/status/200",
                         redirect=True)
        with pytest.raises(urllib3.exceptions.HostChangedError):
            pool.urlopen("GET", f"{other_echo_server.url}/direct")
    [span] = telemetry.client_spans()
    assert span.attributes["http.response.status_code"] == 302
    assert "error.type" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET
    assert [p.attributes["http.response.status_code"]
            for p in telemetry.duration_points()] == [302]
    assert len(other_echo_server.seen) == seen_before


def test_a_pool_redirect_on_the_same_host_by_absolute_url_is_still_a_resend(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """A Location naming the pool's own host in full is followed: its span is there, with
    resend count 1 (the host check lets the pool's own host through)."""
    pool = urllib3.HTTPConnectionPool(echo_server.host, echo_server.port)
    with telemetry.tracer.start_as_current_span("handler") as handler:
        response = pool.urlopen("GET", f"/redirect?to={echo_server.url}/status/200",
                                redirect=True)
    assert response.status == 200
    _assert_resends(telemetry, echo_server, handler, 2)


# ----- connect timeouts ----------------------------------------------------------------------

def _connect_with_requests(url: str) -> None:
    _session().get(url, timeout=(0.2, 5))


def _connect_with_httpx(url: str) -> None:
    httpx.Client(trust_env=False, timeout=httpx.Timeout(5, connect=0.2)).get(url)


def _connect_with_urllib3(url: str) -> None:
    urllib3.PoolManager().request("GET", url, timeout=urllib3.Timeout(connect=0.2, read=5),
                                  retries=False)


def _connect_with_urllib(url: str) -> None:
    try:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=0.2)
    except urllib.error.URLError as error:
        raise error.reason from None


@pytest.mark.parametrize(("connect", "caught", "error_type"), [
    (_connect_with_requests, requests.exceptions.ConnectTimeout,
     "requests.exceptions.ConnectTimeout"),
    (_connect_with_httpx, httpx.ConnectTimeout, "httpx.ConnectTimeout"),
    (_connect_with_urllib3, urllib3.exceptions.ConnectTimeoutError,
     "urllib3.exceptions.ConnectTimeoutError"),
    (_connect_with_urllib, TimeoutError, "TimeoutError"),
], ids=["requests", "httpx", "urllib3", "urllib.request"])
def test_a_connect_timeout_names_the_exceptions_full_type(
        telemetry: Telemetry, full_backlog_url: str, connect: Any,
        caught: type[BaseException], error_type: str) -> None:
    """A connection that is never accepted in time: the caller's exception as without us,
    and error.type (span and duration point) is the exception's fully-qualified class name
    as the HTTP conventions ask (a built-in one's bare name), not its bare class name, which
    two libraries share (ConnectTimeout); no status code, span status ERROR."""
    with pytest.raises(caught):
        connect(full_backlog_url)
    span = telemetry.client_span()
    assert span.attributes["error.type"] == error_type
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR
    [point] = telemetry.duration_points()
    assert point.attributes["error.type"] == error_type


# ----- a Retry that gives up -----------------------------------------------------------------

@pytest.mark.parametrize("via", ["urllib3", "requests"])
def test_the_attempt_a_retry_gives_up_on_keeps_its_protocol_version(
        telemetry: Telemetry, echo_server: EchoServer, via: str) -> None:
    """A 503 retried until urllib3 gives up (MaxRetryError): the last attempt got an answer
    over HTTP/1.1, and its duration point and span say so, as every other attempt's do."""
    retry = urllib3.Retry(total=1, status_forcelist=[503], backoff_factor=0)
    url = f"{echo_server.url}/status/503"
    if via == "urllib3":
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            urllib3.PoolManager().request("GET", url, retries=retry)
    else:
        session = _session()
        session.mount("http://", HTTPAdapter(max_retries=retry))
        with pytest.raises(requests.exceptions.RetryError):
            session.get(url, timeout=5)
    points = telemetry.duration_points()
    assert len(points) == 2
    assert [p.attributes.get("network.protocol.version") for p in points] == ["1.1", "1.1"]
    last = telemetry.client_spans()[-1]
    assert last.attributes["network.protocol.version"] == "1.1"
    assert last.attributes["error.type"] == "urllib3.exceptions.MaxRetryError"


# ----- the HTTP/2 server fixture --------------------------------------------------------------

_LINGERING_CLIENT = '''
import socket

from tests.instrumentation.http_fixtures import h2c_server

__all__ = ["h2c_server"]
_kept = []


def test_a_connection_still_open_when_the_module_ends(h2c_server):
    host, port = h2c_server.url.rsplit("/", 1)[1].split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    assert connection.recv(9)  # the server's first frame: its handler is running
    _kept.append(connection)
'''


def test_the_h2c_fixture_stops_its_connections_cleanly(tmp_path: Path) -> None:
    """A client connection still open when the fixture's module ends (as httpx's may be,
    its close not yet seen by the server): the fixture's teardown ends the connection's
    handler, and no coroutine is left to be destroyed unfinished later (pytest reported it
    as PytestUnraisableExceptionWarning, an error under ``-W error``)."""
    pytest.importorskip("h2", reason="the h2c fixture needs the h2 package")
    test_file = tmp_path / "test_lingering_h2c_client.py"
    test_file.write_text(textwrap.dedent(_LINGERING_CLIENT))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
         "-W", "error::pytest.PytestUnraisableExceptionWarning", "-W",
         "error::RuntimeWarning"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output
    assert "Unraisable" not in output and "never awaited" not in output, output


def test_a_urllib_auth_retry_under_the_launcher_is_a_resend(otlp_receiver: Any,
                                                            echo_server: EchoServer) -> None:
    """As a user runs it: ``telemetryflow-run python`` a program that imports urllib.request
    first (so the hook patches http.client before the auth handlers exist) and answers a
    digest challenge: the authenticated request carries resend count 1, the password is
    exported nowhere."""
    env = receiver_env(otlp_receiver, "http", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    proc = run(python(app("http_urllib_auth_app.py"), f"{echo_server.url}/auth/digest"), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["200"]
    [parent] = otlp_receiver.wait_for_spans(1, name="login")
    sent = sorted((s for s in otlp_receiver.wait_for_spans(2, name="GET")
                   if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns)
    assert [s.attributes.get("http.request.resend_count") for s in sent] == [None, 1]
    assert [s.attributes["http.response.status_code"] for s in sent] == [401, 200]
    assert _PASSWORD not in repr([s.attributes for s in sent])
