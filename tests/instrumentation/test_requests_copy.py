"""The requests instrumentation injects the trace headers into a cheap copy of the caller's
``PreparedRequest`` (headers copied, cookie jar shared): the caller's object is untouched and
``response.request`` is what went over the wire.

Real ``requests`` against a loopback ``ThreadingHTTPServer`` that records every request;
requests is patched the way ``test_http_clients.py`` does it (a hand-made ``PatchContext``
with an in-memory span exporter, W3C propagators as the global text map).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _method_wrappers as method_wrappers
from telemetryflow_bootstrap.instrumentation import requests as requests_patch
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

# ----- a loopback server that records what it received -------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        assert len(values) <= 1, values
        return values[0] if values else None

    def cookies(self) -> dict[str, str]:
        cookie = self.header("cookie") or ""
        return dict(part.strip().split("=", 1) for part in cookie.split(";") if part.strip())


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    """``/redirect`` answers 302 to ``/landing`` and sets ``hop=1``; ``/landing`` sets
    ``landed=yes``; anything else answers 200."""

    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record.seen.append(
            Seen(self.command, self.path, list(self.headers.items()), body))
        status, extra = 200, []
        if self.path.startswith("/redirect"):
            status, extra = 302, [("Location", "/landing"), ("Set-Cookie", "hop=1; Path=/")]
        elif self.path.startswith("/landing"):
            extra = [("Set-Cookie", "landed=yes; Path=/")]
        self.send_response(status)
        self.send_header("Content-Length", "2")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture(scope="module")
def _server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    record = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.record = record  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, name="requests-copy-server",
                              daemon=True)
    thread.start()
    yield record
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def server(_server: Server) -> Server:
    _server.seen.clear()
    return _server


# ----- requests patched as the instrumentation tests do it ---------------------------------------


@pytest.fixture(scope="module")
def _exporter() -> Iterator[InMemorySpanExporter]:
    """requests patched with our own in-memory exporter. Patching is global: a wrapper that
    another module's session fixture installed is set aside meanwhile and put back after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = PatchContext(tracer=provider.get_tracer("test"), meter=None, logger_provider=None,
                           config=TelemetryConfig(), handler=None)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    earlier = method_wrappers.our_wrapper(requests.Session, "send")
    if earlier is not None:
        method_wrappers.unwrap(requests.Session, "send", earlier)
    dispatch_hook = requests.sessions.dispatch_hook  # (ours already, or put back after)
    requests_patch.patch(requests, context)
    assert method_wrappers.our_wrapper(requests.Session, "send") is not None
    yield exporter
    ours = method_wrappers.our_wrapper(requests.Session, "send")
    if ours is not None:
        method_wrappers.unwrap(requests.Session, "send", ours)
    if earlier is not None:
        method_wrappers.wrap_once(requests.Session, "send", method_wrappers.wrapper_of(earlier))
    requests.sessions.dispatch_hook = dispatch_hook
    propagate.set_global_textmap(previous)
    provider.shutdown()


@pytest.fixture
def exporter(_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def _client_span(exporter: InMemorySpanExporter) -> Any:
    spans = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def _traceparent(span: Any) -> str:
    ids = span.get_span_context()
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and loopback
    session.cookies.set("session_cookie", "s1")
    return session


def _hook(response: Any, *args: Any, **kwargs: Any) -> Any:
    return response


def _snapshot(request: Any) -> dict[str, Any]:
    """Everything about a request, by value, plus the identity of its mutable parts."""
    jar = request._cookies
    return {
        "type": type(request),
        "keys": sorted(vars(request)),
        "headers": list(request.headers.items()),
        "headers_id": id(request.headers),
        "jar_id": id(jar),
        "cookies": sorted((c.name, c.value, c.domain, c.path) for c in jar),
        "method": request.method,
        "url": request.url,
        "body": request.body,
        "hooks": {name: list(hooks) for name, hooks in request.hooks.items()},
        "hooks_id": id(request.hooks),
        "body_position": request._body_position,
    }


def _prepare(session: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("headers", {"X-Demo": "1", "Accept": "text/plain"})
    kwargs.setdefault("cookies", {"request_cookie": "r1"})
    kwargs.setdefault("hooks", {"response": [_hook]})
    return session.prepare_request(requests.Request(method, url, **kwargs))


# ----- through Session.send ----------------------------------------------------------------------


def test_callers_prepared_request_is_unchanged(exporter: InMemorySpanExporter,
                                               server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "POST", server.url + "/echo", data=b"payload")
    before = _snapshot(prepared)
    jar, headers = prepared._cookies, prepared.headers
    response = session.send(prepared, timeout=5)
    assert response.status_code == 200
    assert _snapshot(prepared) == before
    assert prepared._cookies is jar
    assert prepared.headers is headers
    assert "traceparent" not in prepared.headers
    assert server.seen[-1].header("traceparent") is not None


def test_response_request_is_the_copy_that_was_sent(exporter: InMemorySpanExporter,
                                                    server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "PUT", server.url + "/echo?q=1", data=b"payload")
    response = session.send(prepared, timeout=5)
    sent = response.request
    assert sent is not prepared
    assert type(sent) is PreparedRequest
    span = _client_span(exporter)
    traceparent = _traceparent(span)
    assert sent.headers["traceparent"] == traceparent
    assert server.seen[-1].header("traceparent") == traceparent
    # the caller's headers, in order, then the trace header
    assert list(sent.headers.items()) == [*prepared.headers.items(), ("traceparent", traceparent)]
    assert type(sent.headers) is CaseInsensitiveDict
    assert sent.headers is not prepared.headers
    assert sent.body == prepared.body == b"payload"
    assert sent.method == prepared.method == "PUT"
    assert sent.url == prepared.url
    assert sent.hooks == prepared.hooks
    assert sent.hooks is prepared.hooks  # request.copy() shares them as well
    assert sent._body_position == prepared._body_position
    assert sent._cookies is prepared._cookies  # the cheap copy, not request.copy()
    assert sorted(vars(sent)) == sorted(vars(prepared))
    seen = server.seen[-1]
    assert (seen.method, seen.path, seen.body) == ("PUT", "/echo?q=1", b"payload")
    assert seen.header("x-demo") == "1"


def test_cookies_of_session_and_request_reach_the_server(exporter: InMemorySpanExporter,
                                                         server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "GET", server.url + "/echo")
    session.send(prepared, timeout=5)
    assert server.seen[-1].cookies() == {"session_cookie": "s1", "request_cookie": "r1"}
    assert session.get(server.url + "/again", cookies={"other": "o1"}, timeout=5).ok
    assert server.seen[-1].cookies() == {"session_cookie": "s1", "other": "o1"}
    assert server.seen[-1].header("traceparent") is not None


def test_redirect_is_followed_and_the_callers_request_is_unchanged(
        exporter: InMemorySpanExporter, server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "GET", server.url + "/redirect")
    before = _snapshot(prepared)
    response = session.send(prepared, timeout=5)
    assert response.status_code == 200
    assert response.url == server.url + "/landing"
    assert [r.status_code for r in response.history] == [302]
    assert _snapshot(prepared) == before
    assert {c.name for c in prepared._cookies} == {"session_cookie", "request_cookie"}
    assert "traceparent" not in prepared.headers
    # each hop went out with its own CLIENT span's context, the second with the cookie the
    # 302 set (and not the first hop's traceparent, which its copy of the request had)
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1]
    first, second = server.seen
    assert (first.path, second.path) == ("/redirect", "/landing")
    assert first.header("traceparent") == _traceparent(spans[0])
    assert second.header("traceparent") == _traceparent(spans[1])
    assert first.cookies() == {"session_cookie": "s1", "request_cookie": "r1"}
    assert second.cookies() == {"session_cookie": "s1", "request_cookie": "r1", "hop": "1"}
    assert response.history[0].request is not prepared
    assert response.history[0].request.headers["traceparent"] == _traceparent(spans[0])
    assert response.request.headers["traceparent"] == _traceparent(spans[1])
    assert {c.name: c.value for c in session.cookies} == {
        "session_cookie": "s1", "hop": "1", "landed": "yes"}
    # and again with the same prepared request: nothing left over from the first time
    session.send(prepared, timeout=5)
    assert _snapshot(prepared) == before
    assert server.seen[-1].cookies() == {"session_cookie": "s1", "request_cookie": "r1",
                                         "hop": "1", "landed": "yes"}


def test_redirect_not_followed_leaves_the_callers_jar_alone(exporter: InMemorySpanExporter,
                                                            server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "GET", server.url + "/redirect")
    before = _snapshot(prepared)
    response = session.send(prepared, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert _snapshot(prepared) == before
    following = response.next
    assert following is not None
    assert following.url == server.url + "/landing"
    assert following._cookies is not prepared._cookies
    assert "hop" in {c.name for c in following._cookies}
    assert len(server.seen) == 1


def test_subclass_of_prepared_request_goes_through_copy(exporter: InMemorySpanExporter,
                                                        server: Server) -> None:
    copies: list[Any] = []

    class Counting(PreparedRequest):
        def copy(self) -> PreparedRequest:
            copies.append(self)
            return super().copy()

    session = _session()
    prepared = Counting()
    prepared.prepare(method="POST", url=server.url + "/sub", headers={"X-Sub": "1"},
                     data=b"body", cookies={"request_cookie": "r1"})
    before = _snapshot(prepared)
    response = session.send(prepared, timeout=5)
    assert response.status_code == 200
    assert copies == [prepared]
    assert _snapshot(prepared) == before
    assert "traceparent" not in prepared.headers
    sent = response.request
    assert sent is not prepared
    assert sent._cookies is not prepared._cookies  # request.copy() copies the jar
    traceparent = _traceparent(_client_span(exporter))
    assert sent.headers["traceparent"] == traceparent
    seen = server.seen[-1]
    assert seen.header("traceparent") == traceparent
    assert seen.header("x-sub") == "1"
    assert seen.body == b"body"
    assert seen.cookies() == {"request_cookie": "r1"}  # send() does not add session cookies


def test_plain_dict_headers_still_work(exporter: InMemorySpanExporter, server: Server) -> None:
    session = _session()
    prepared = _prepare(session, "POST", server.url + "/plain", data=b"xyz")
    prepared.headers = dict(prepared.headers)  # someone assigned a plain dict
    before = _snapshot(prepared)
    response = session.send(prepared, timeout=5)
    assert response.status_code == 200
    assert _snapshot(prepared) == before
    assert "traceparent" not in prepared.headers
    traceparent = _traceparent(_client_span(exporter))
    assert response.request.headers["traceparent"] == traceparent
    seen = server.seen[-1]
    assert seen.header("traceparent") == traceparent
    assert seen.header("x-demo") == "1"
    assert seen.body == b"xyz"
    assert seen.cookies() == {"session_cookie": "s1", "request_cookie": "r1"}


# ----- _RequestsAdapter._copy against PreparedRequest.copy() -------------------------------------

_ADAPTER = requests_patch._RequestsAdapter(requests.models.PreparedRequest,
                                           requests.structures.CaseInsensitiveDict)


def _bare() -> PreparedRequest:
    request = PreparedRequest()
    request.prepare_method("GET")
    request.prepare_url("http://example.test/bare", None)
    request.prepare_headers({"X-Bare": "1"})
    return request  # no cookies prepared: _cookies is None


def _with_cookie_jar() -> PreparedRequest:
    jar = CookieJar()  # a plain http.cookiejar jar, not a RequestsCookieJar
    jar.set_cookie(requests.cookies.create_cookie("plain", "p1"))
    return requests.Request("GET", "http://example.test/jar", cookies=jar).prepare()


REQUESTS = {
    "session-post": lambda: _prepare(_session(), "POST", "http://example.test/a?b=c",
                                     data={"field": "value"}),
    "json": lambda: requests.Request("PATCH", "http://example.test/j", json={"a": [1, 2]},
                                     headers={"X-J": "1"}).prepare(),
    "file-body": lambda: requests.Request("PUT", "http://example.test/f",
                                          data=io.BytesIO(b"0123456789")).prepare(),
    "no-body": lambda: requests.Request("GET", "http://example.test/").prepare(),
    "bare": _bare,
    "plain-cookie-jar": _with_cookie_jar,
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_copy_equals_prepared_request_copy_but_shares_the_jar(name: str) -> None:
    original = REQUESTS[name]()
    before = _snapshot(original) if original._cookies is not None else None
    fast = _ADAPTER._copy(original)
    reference = original.copy()
    assert fast is not original
    assert type(fast) is type(reference) is PreparedRequest
    assert sorted(vars(fast)) == sorted(vars(reference))
    for attribute in vars(reference):
        ours, theirs = getattr(fast, attribute), getattr(reference, attribute)
        if attribute == "_cookies":
            assert ours is original._cookies
        elif attribute == "headers":
            assert type(ours) is type(theirs) is CaseInsensitiveDict
            assert list(ours.items()) == list(theirs.items())
            assert list(ours.lower_items()) == list(theirs.lower_items())
            assert type(ours._store) is type(theirs._store)
            assert ours._store == theirs._store
            assert ours is not original.headers
            assert ours._store is not original.headers._store
        else:  # request.copy() shares every other attribute
            assert ours is theirs, attribute
    fast.headers["traceparent"] = "00-x"
    fast.headers["x-demo"] = "changed"
    assert "traceparent" not in original.headers
    assert original.headers.get("x-demo") in (None, "1")
    if before is not None:
        assert _snapshot(original) == before


def test_copy_of_request_without_headers_falls_back_to_copy() -> None:
    original = PreparedRequest()
    fast = _ADAPTER._copy(original)
    reference = original.copy()
    assert fast is not original
    assert vars(fast).keys() == vars(reference).keys()
    assert fast.headers is None and fast._cookies is None


def test_copy_of_case_insensitive_subclass_headers_falls_back_to_copy() -> None:
    class Headers(CaseInsensitiveDict):
        pass

    original = requests.Request("GET", "http://example.test/", cookies={"c": "1"}).prepare()
    original.headers = Headers(original.headers)
    original.headers["X-A"] = "1"
    fast = _ADAPTER._copy(original)
    assert fast._cookies is not original._cookies  # request.copy() was used
    assert list(fast.headers.items()) == list(original.headers.items())
    fast.headers["traceparent"] = "00-x"
    assert "traceparent" not in original.headers
