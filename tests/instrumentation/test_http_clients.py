"""The HTTP client instrumentations (http.client/urllib.request, urllib3, requests, httpx)
against the real libraries and a real loopback server.

Patching is global, so one module fixture patches all four libraries once, with in-memory
exporters that every test starts empty, and removes the wrappers when this module's tests are
done (left in place, they would inject their own traceparent into the requests of later test
modules, which send theirs). What needs a clean process (bootstrap order, disabling) runs in a
subprocess.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import urllib3
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _method_wrappers as method_wrappers
from telemetryflow_bootstrap.instrumentation import http_client as http_client_patch
from telemetryflow_bootstrap.instrumentation import httpx as httpx_patch
from telemetryflow_bootstrap.instrumentation import requests as requests_patch
from telemetryflow_bootstrap.instrumentation import urllib3 as urllib3_patch
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

from ..e2e.launcher import REPO, receiver_env
from .http_fixtures import EchoServer, echo_server, other_echo_server, refused_url

__all__ = ["echo_server", "other_echo_server"]

_PATCHES = ((http_client_patch, http.client), (urllib3_patch, urllib3),
            (requests_patch, requests), (httpx_patch, httpx))
_WRAPPED = ((http.client.HTTPConnection, "request"), (http.client.HTTPConnection, "getresponse"),
            (urllib3.HTTPConnectionPool, "urlopen"), (requests.Session, "send"),
            (httpx.Client, "send"), (httpx.AsyncClient, "send"),
            (httpx.Client, "_send_single_request"), (httpx.AsyncClient, "_send_single_request"),
            (urllib3.util.Retry, "increment"), (http.client.HTTPConnection, "close"),
            (urllib.request.HTTPRedirectHandler, "redirect_request"),
            (urllib.request.AbstractHTTPHandler, "do_open"),
            (urllib.request.AbstractBasicAuthHandler, "retry_http_basic_auth"),
            (urllib.request.AbstractDigestAuthHandler, "retry_http_digest_auth"))
# Plain names and regexes, as opentelemetry-python-contrib takes them. (``X-Echo-S.*``
# matches only the header ``/session`` answers with.)
_CAPTURE_ENV = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST":
        "x-demo,authorization,X-Tenant-.*,x-api-key",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": "x-echo,X-Echo-S.*",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "x-api-key,.*session.*",
}


@dataclass
class Telemetry:
    """What the patched libraries recorded, plus the context they were patched with."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer: Any
    context: PatchContext

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def client_spans(self) -> list[Any]:
        """The CLIENT spans recorded, in the order they started."""
        return sorted((s for s in self.spans() if s.kind is SpanKind.CLIENT),
                      key=lambda s: s.start_time)

    def client_span(self) -> Any:
        """The one CLIENT span recorded (fails if there are more or none)."""
        spans = [s for s in self.spans() if s.kind is SpanKind.CLIENT]
        assert len(spans) == 1, [(s.name, dict(s.attributes)) for s in spans]
        return spans[0]

    def duration_points(self) -> list[Any]:
        data = self.reader.get_metrics_data()
        points: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "http.client.request.duration":
                        points.extend(p for p in metric.data.data_points if p.count)
        return points

    def reset(self) -> None:
        self.exporter.clear()
        self.reader.get_metrics_data()  # delta temporality: collecting drains


@pytest.fixture(scope="module")
def _patched() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    meter_provider = MeterProvider(metric_readers=[reader])
    context = PatchContext(
        tracer=tracer_provider.get_tracer("test"), meter=meter_provider.get_meter("test"),
        logger_provider=None, config=TelemetryConfig(excluded_urls=("/health",)), handler=None)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator()]))
    dispatch_hook = requests.sessions.dispatch_hook
    with mock.patch.dict(os.environ, _CAPTURE_ENV):  # header capture is read at patch time
        for ours, module in _PATCHES:
            ours.patch(module, context)
    yield Telemetry(exporter, reader, tracer_provider.get_tracer("test-app"), context)
    for owner, name in _WRAPPED:
        handle = method_wrappers.our_wrapper(owner, name)
        if handle is not None:
            method_wrappers.unwrap(owner, name, handle)
    requests.sessions.dispatch_hook = dispatch_hook
    propagate.set_global_textmap(previous)
    meter_provider.shutdown()


@pytest.fixture
def telemetry(_patched: Telemetry) -> Iterator[Telemetry]:
    _patched.reset()
    yield _patched
    _patched.reset()


# ----- the clients, each used the way a program would ---------------------------------------

_SESSION = requests.Session()
_SESSION.trust_env = False  # no proxy from the environment between us and loopback
_POOL = urllib3.PoolManager()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_TLS = ssl.create_default_context()  # one CA bundle load, not one per httpx client


def _with_requests(url: str, headers: dict[str, str] | None) -> int:
    return _SESSION.get(url, headers=headers, timeout=5).status_code


def _with_urllib3(url: str, headers: dict[str, str] | None) -> int:
    return _POOL.request("GET", url, headers=headers, retries=False, timeout=5).status


def _with_urllib(url: str, headers: dict[str, str] | None) -> int:
    try:
        with _OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


def _with_http_client(url: str, headers: dict[str, str] | None) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _with_httpx(url: str, headers: dict[str, str] | None) -> int:
    with httpx.Client(trust_env=False, verify=_TLS) as client:
        return client.get(url, headers=headers).status_code


def _with_httpx_async(url: str, headers: dict[str, str] | None) -> int:
    async def get() -> int:
        async with httpx.AsyncClient(trust_env=False, verify=_TLS) as client:
            return (await client.get(url, headers=headers)).status_code

    return asyncio.run(get())


@dataclass(frozen=True)
class Client:
    name: str
    get: Callable[[str, dict[str, str] | None], int]
    refused: type[BaseException]  # what the caller sees when the connection is refused
    refused_type: str  # error.type on the span then (the full class name)

    def __str__(self) -> str:
        return self.name


CLIENTS = [
    Client("requests", _with_requests, requests.ConnectionError,
           "requests.exceptions.ConnectionError"),
    Client("urllib3", _with_urllib3, urllib3.exceptions.NewConnectionError,
           "urllib3.exceptions.NewConnectionError"),
    Client("urllib.request", _with_urllib, urllib.error.URLError, "ConnectionRefusedError"),
    Client("http.client", _with_http_client, ConnectionRefusedError, "ConnectionRefusedError"),
    Client("httpx", _with_httpx, httpx.ConnectError, "httpx.ConnectError"),
    Client("httpx-async", _with_httpx_async, httpx.ConnectError, "httpx.ConnectError"),
]
each_client = pytest.mark.parametrize("client", CLIENTS, ids=str)


def _traceparent_of(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# ----- spans, attributes, propagation ---------------------------------------------------------

@each_client
def test_one_client_span_whose_context_reaches_the_server(telemetry: Telemetry,
                                                          echo_server: EchoServer,
                                                          client: Client) -> None:
    """A GET makes exactly one CLIENT span with the stable HTTP attributes, and the
    traceparent the server receives is that span's; the caller's headers stay as they were."""
    headers = {"X-Demo": "demo"}
    url = f"{echo_server.url}/items?page=2"
    assert client.get(url, headers) == 200
    span = telemetry.client_span()
    assert span.name == "GET"
    attributes = dict(span.attributes)
    assert attributes.pop("http.request.header.x-demo") == ("demo",)  # capture is on
    assert attributes.pop("http.response.header.x-echo") == ("yes",)
    assert attributes == {
        "http.request.method": "GET", "url.full": url, "server.address": "127.0.0.1",
        "server.port": echo_server.port, "http.response.status_code": 200,
        "network.protocol.version": "1.1"}
    assert span.status.status_code is StatusCode.UNSET
    assert echo_server.last().headers["traceparent"] == _traceparent_of(span)
    assert headers == {"X-Demo": "demo"}


@each_client
def test_client_span_is_a_child_of_the_current_span(telemetry: Telemetry,
                                                    echo_server: EchoServer,
                                                    client: Client) -> None:
    """Inside an application span the client span is its child, and baggage set there travels
    with the request."""
    from opentelemetry import baggage, context

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with telemetry.tracer.start_as_current_span("handler") as parent:
            client.get(echo_server.url, None)
    finally:
        context.detach(token)
    span = telemetry.client_span()
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert echo_server.last().headers["baggage"] == "tenant=acme"


@each_client
@pytest.mark.parametrize("status", [404, 500])
def test_error_status_codes_mark_the_span(telemetry: Telemetry, echo_server: EchoServer,
                                          client: Client, status: int) -> None:
    """4xx and 5xx answers set the span status to ERROR and error.type to the code."""
    assert client.get(f"{echo_server.url}/status/{status}", None) == status
    span = telemetry.client_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["error.type"] == str(status)


@each_client
def test_connection_refused_propagates_and_is_recorded(telemetry: Telemetry,
                                                       client: Client) -> None:
    """A refused connection reaches the caller as the library's own exception, and the span
    has ERROR status, error.type and an exception event."""
    with pytest.raises(client.refused):
        client.get(refused_url(), None)
    span = telemetry.client_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == client.refused_type
    assert "http.response.status_code" not in span.attributes
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes["exception.type"] == client.refused_type
    point = telemetry.duration_points()[0]
    assert point.attributes["error.type"] == client.refused_type


@each_client
def test_duration_metric_has_low_cardinality_attributes(telemetry: Telemetry,
                                                        echo_server: EchoServer,
                                                        client: Client) -> None:
    """One http.client.request.duration point per request, with method, status, scheme,
    server address and port, protocol version — never the URL."""
    client.get(f"{echo_server.url}/orders/12345?user=7", None)
    [point] = telemetry.duration_points()
    assert point.count == 1
    assert 0 < point.sum < 5
    assert dict(point.attributes) == {
        "http.request.method": "GET", "http.response.status_code": 200, "url.scheme": "http",
        "server.address": "127.0.0.1", "server.port": echo_server.port,
        "network.protocol.version": "1.1"}
    assert list(point.explicit_bounds)[:3] == [0.005, 0.01, 0.025]


def _unsampled_parent() -> Any:
    """A context whose current span is a remote, unsampled parent: the SDK's default
    parent-based sampler drops every span started under it."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.DEFAULT))
    return trace.set_span_in_context(NonRecordingSpan(parent))


@each_client
@pytest.mark.parametrize("status", [200, 503])
def test_an_unsampled_request_still_propagates_and_counts(telemetry: Telemetry,
                                                          echo_server: EchoServer,
                                                          client: Client, status: int) -> None:
    """Under an unsampled parent no span is recorded, yet the server gets the trace (not
    sampled) and the duration point has the outcome, as for a sampled request."""
    from opentelemetry import context

    token = context.attach(_unsampled_parent())
    try:
        assert client.get(f"{echo_server.url}/status/{status}", None) == status
    finally:
        context.detach(token)
    assert telemetry.spans() == []
    traceparent = echo_server.last().headers["traceparent"]
    assert traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert traceparent.endswith("-00")
    [point] = telemetry.duration_points()
    expected = {"http.request.method": "GET", "http.response.status_code": status,
                "url.scheme": "http", "server.address": "127.0.0.1",
                "server.port": echo_server.port, "network.protocol.version": "1.1"}
    if status >= 400:
        expected["error.type"] = str(status)
    assert dict(point.attributes) == expected


@each_client
def test_an_unsampled_refused_connection_counts_with_its_error_type(telemetry: Telemetry,
                                                                   client: Client) -> None:
    from opentelemetry import context

    token = context.attach(_unsampled_parent())
    try:
        with pytest.raises(client.refused):
            client.get(refused_url(), None)
    finally:
        context.detach(token)
    assert telemetry.spans() == []
    [point] = telemetry.duration_points()
    assert point.attributes["error.type"] == client.refused_type
    assert "http.response.status_code" not in point.attributes


@each_client
def test_excluded_urls_are_left_alone(telemetry: Telemetry, echo_server: EchoServer,
                                      client: Client) -> None:
    """A URL matching TELEMETRYFLOW_EXCLUDED_URLS gets no span, no metric and no trace
    headers, at any layer."""
    assert client.get(f"{echo_server.url}/health", None) == 200
    assert telemetry.spans() == []
    assert telemetry.duration_points() == []
    assert "traceparent" not in echo_server.last().headers


@each_client
def test_nothing_is_traced_while_instrumentation_is_suppressed(telemetry: Telemetry,
                                                               echo_server: EchoServer,
                                                               client: Client) -> None:
    """Under the SDK's suppression key (our exporter's own traffic) requests are not traced
    and carry no trace headers."""
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        assert client.get(echo_server.url, None) == 200
    finally:
        detach(token)
    assert telemetry.spans() == []
    assert telemetry.duration_points() == []
    assert "traceparent" not in echo_server.last().headers


@each_client
def test_header_capture_takes_regular_expressions_as_contrib_does(
        telemetry: Telemetry, echo_server: EchoServer, client: Client) -> None:
    """Capture entries are regexes matched against whole header names and sanitize entries
    regexes searched in them, case-insensitively: X-Tenant-.* captures X-Tenant-Id and
    X-TENANT-SESSION, .*session.* and x-api-key redact theirs, request and response alike, and
    no secret value reaches an attribute."""
    client.get(f"{echo_server.url}/session", {
        "X-Tenant-Id": "t-1", "X-TENANT-SESSION": "SESSTOK", "X-Api-Key": "APIKEY",
        "X-Other": "o"})
    attributes = dict(telemetry.client_span().attributes)
    captured = {k: v for k, v in attributes.items() if ".header." in k}
    assert captured == {
        "http.request.header.x-tenant-id": ("t-1",),
        "http.request.header.x-tenant-session": ("REDACTED",),
        "http.request.header.x-api-key": ("REDACTED",),
        "http.response.header.x-echo": ("yes",),
        "http.response.header.x-echo-session": ("REDACTED",)}
    recorded = repr(attributes)
    assert not [s for s in ("SESSTOK", "APIKEY", "echo-session-secret") if s in recorded]


@each_client
def test_header_capture_redacts_authorization(telemetry: Telemetry, echo_server: EchoServer,
                                              client: Client) -> None:
    """Configured request and response headers become attributes; Authorization's value is
    REDACTED."""
    client.get(echo_server.url, {"X-Demo": "d1", "Authorization": "Bearer tok-123"})
    attributes = telemetry.client_span().attributes
    assert attributes["http.request.header.x-demo"] == ("d1",)
    assert attributes["http.request.header.authorization"] == ("REDACTED",)
    assert attributes["http.response.header.x-echo"] == ("yes",)
    assert "tok-123" not in repr(dict(attributes))


@pytest.mark.parametrize("get", [
    lambda url: _SESSION.get(url, timeout=5).status_code,
    lambda url: _with_httpx(url, None),
    lambda url: _POOL.request("GET", url, retries=False).status,
], ids=["requests", "httpx", "urllib3"])
def test_url_credentials_never_become_attributes(telemetry: Telemetry, echo_server: EchoServer,
                                                 get: Callable[[str], int]) -> None:
    """user:password in the URL is REDACTED in url.full and the password appears in no
    attribute or event."""
    url = f"http://alice:s3cr3t-pw@127.0.0.1:{echo_server.port}/private?sig=abc"
    assert get(url) == 200
    span = telemetry.client_span()
    full = span.attributes["url.full"]
    assert full.endswith(f"127.0.0.1:{echo_server.port}/private?sig=REDACTED")
    assert "alice" not in full
    recorded = repr(dict(span.attributes)) + repr([dict(e.attributes) for e in span.events])
    assert "s3cr3t-pw" not in recorded


@pytest.mark.parametrize("get", [
    lambda url: _SESSION.request("PURGE", url, timeout=5).status_code,
    lambda url: httpx.request("PURGE", url, trust_env=False, verify=_TLS).status_code,
    lambda url: _POOL.request("PURGE", url).status,
], ids=["requests", "httpx", "urllib3"])
def test_unknown_method_is_named_http(telemetry: Telemetry, echo_server: EchoServer,
                                      get: Callable[[str], int]) -> None:
    """A method the conventions do not know gives span name HTTP, method _OTHER and the
    original method in http.request.method_original."""
    assert get(echo_server.url) == 200
    span = telemetry.client_span()
    assert span.name == "HTTP"
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"
    assert telemetry.duration_points()[0].attributes["http.request.method"] == "_OTHER"


def _follow_with_urllib3(url: str, headers: dict[str, str] | None) -> int:
    return _POOL.request("GET", url, headers=headers, timeout=5).status  # (redirects followed)


def _follow_with_httpx(url: str, headers: dict[str, str] | None) -> int:
    with httpx.Client(trust_env=False, verify=_TLS, follow_redirects=True) as client:
        return client.get(url, headers=headers).status_code


def _follow_with_httpx_async(url: str, headers: dict[str, str] | None) -> int:
    async def get() -> int:
        async with httpx.AsyncClient(trust_env=False, verify=_TLS,
                                     follow_redirects=True) as client:
            return (await client.get(url, headers=headers)).status_code

    return asyncio.run(get())


FOLLOWING = [_with_requests, _follow_with_urllib3, _with_urllib, _follow_with_httpx,
             _follow_with_httpx_async]
each_following_client = pytest.mark.parametrize(
    "follow", FOLLOWING, ids=["requests", "urllib3", "urllib.request", "httpx", "httpx-async"])


@each_following_client
def test_each_redirect_hop_is_a_span_of_its_own(telemetry: Telemetry, echo_server: EchoServer,
                                                other_echo_server: EchoServer,
                                                follow: Callable[..., int]) -> None:
    """A redirect to another server that answers 503 is two CLIENT spans under the caller's
    span: the first with the first server's URL, address and 302, the second with the other
    server's URL, address, 503 and http.request.resend_count 1; each request carries its own
    span's traceparent, and each server gets the metric point of its own answer."""
    target = f"{other_echo_server.url}/status/503"
    start = f"{echo_server.url}/redirect?to={target}"
    with telemetry.tracer.start_as_current_span("handler") as handler:
        assert follow(start, None) == 503
    first, second = telemetry.client_spans()
    assert first.parent.span_id == second.parent.span_id == handler.get_span_context().span_id
    assert (first.attributes["url.full"], first.attributes["server.port"]) == (
        start, echo_server.port)
    assert first.attributes["http.response.status_code"] == 302
    assert "error.type" not in first.attributes
    assert "http.request.resend_count" not in first.attributes
    assert first.status.status_code is StatusCode.UNSET
    assert (second.attributes["url.full"], second.attributes["server.port"]) == (
        target, other_echo_server.port)
    assert second.attributes["http.response.status_code"] == 503
    assert second.attributes["error.type"] == "503"
    assert second.attributes["http.request.resend_count"] == 1
    assert echo_server.last().headers["traceparent"] == _traceparent_of(first)
    assert other_echo_server.last().headers["traceparent"] == _traceparent_of(second)
    points = {p.attributes["server.port"]: dict(p.attributes)
              for p in telemetry.duration_points()}
    assert points[echo_server.port]["http.response.status_code"] == 302
    assert "error.type" not in points[echo_server.port]
    assert points[other_echo_server.port]["error.type"] == "503"


@pytest.mark.parametrize("follow", [_with_requests, _follow_with_httpx, _follow_with_urllib3,
                                    _with_urllib],
                         ids=["requests", "httpx", "urllib3", "urllib.request"])
def test_resend_count_grows_along_a_chain_of_redirects(telemetry: Telemetry,
                                                       echo_server: EchoServer,
                                                       follow: Callable[..., int]) -> None:
    """Redirect, redirect, answer: three spans with no resend count, then 1, then 2."""
    last = f"{echo_server.url}/status/200"
    middle = f"{echo_server.url}/redirect?to={last}"
    assert follow(f"{echo_server.url}/redirect?to={middle}", None) == 200
    spans = telemetry.client_spans()
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1, 2]
    assert [s.attributes["http.response.status_code"] for s in spans] == [302, 302, 200]


@pytest.mark.parametrize("get", [
    lambda url: _SESSION.get(url, allow_redirects=False, timeout=5).status_code,
    lambda url: _with_httpx(url, None),
], ids=["requests", "httpx"])
def test_a_redirect_not_followed_is_one_span(telemetry: Telemetry, echo_server: EchoServer,
                                             get: Callable[[str], int]) -> None:
    """Without following, the 302 is the call's one request and its one span."""
    assert get(f"{echo_server.url}/redirect") == 302
    span = telemetry.client_span()
    assert span.attributes["http.response.status_code"] == 302
    assert echo_server.last().headers["traceparent"] == _traceparent_of(span)


# ----- code of the caller's that the library calls back ---------------------------------------

def _assert_own_span(telemetry: Telemetry, echo_server: EchoServer, path: str,
                     parent: Any) -> None:
    """The request to ``path`` has a CLIENT span of its own, a child of ``parent`` (not of
    the call whose hook made it, and not counted as a resend), whose traceparent the server
    received."""
    [seen] = [s for s in echo_server.seen if s.path == path]
    [span] = [s for s in telemetry.client_spans() if s.attributes["url.full"].endswith(path)]
    assert seen.headers["traceparent"] == _traceparent_of(span)
    assert span.parent.span_id == parent.get_span_context().span_id
    assert "http.request.resend_count" not in span.attributes


def test_a_call_from_an_httpx_event_hook_is_traced(telemetry: Telemetry,
                                                   echo_server: EchoServer) -> None:
    """An httpx response event hook that makes a requests call: that call gets its own span
    and trace headers, next to the httpx request's span."""
    def hook(response: httpx.Response) -> None:
        _SESSION.get(f"{echo_server.url}/from-hook", timeout=5)

    with telemetry.tracer.start_as_current_span("handler") as handler, \
            httpx.Client(trust_env=False, verify=_TLS,
                         event_hooks={"request": [lambda r: None], "response": [hook]}) as c:
        assert c.get(f"{echo_server.url}/main").status_code == 200
    _assert_own_span(telemetry, echo_server, "/from-hook", handler)
    _assert_own_span(telemetry, echo_server, "/main", handler)


def test_a_call_from_an_async_httpx_event_hook_is_traced(telemetry: Telemetry,
                                                         echo_server: EchoServer) -> None:
    """The same with AsyncClient and an async hook making an AsyncClient call."""
    async def main() -> None:
        async with httpx.AsyncClient(trust_env=False, verify=_TLS) as other:
            async def hook(response: httpx.Response) -> None:
                await other.get(f"{echo_server.url}/from-async-hook")

            async with httpx.AsyncClient(trust_env=False, verify=_TLS,
                                         event_hooks={"response": [hook]}) as client:
                await client.get(f"{echo_server.url}/async-main")

    with telemetry.tracer.start_as_current_span("handler") as handler:
        asyncio.run(main())
    _assert_own_span(telemetry, echo_server, "/from-async-hook", handler)
    _assert_own_span(telemetry, echo_server, "/async-main", handler)


def test_a_call_from_an_httpx_auth_flow_is_traced(telemetry: Telemetry,
                                                  echo_server: EchoServer) -> None:
    """An httpx Auth flow that fetches a token over HTTP before the request and again after
    a 401: each token request is traced on its own, and the retried request is a resend."""
    class TokenAuth(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Any:
            token = _SESSION.get(f"{echo_server.url}/token", timeout=5).status_code
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code == 401:
                _SESSION.get(f"{echo_server.url}/token-again", timeout=5)
                request.url = request.url.copy_with(path="/status/200")
                yield request

    with telemetry.tracer.start_as_current_span("handler") as handler, \
            httpx.Client(trust_env=False, verify=_TLS) as client:
        assert client.get(f"{echo_server.url}/status/401", auth=TokenAuth()).status_code == 200
    _assert_own_span(telemetry, echo_server, "/token", handler)
    _assert_own_span(telemetry, echo_server, "/token-again", handler)
    [retried] = [s for s in telemetry.client_spans()
                 if s.attributes["url.full"].endswith("/status/200")]
    assert retried.attributes["http.request.resend_count"] == 1


def test_a_call_from_a_requests_response_hook_is_traced(telemetry: Telemetry,
                                                        echo_server: EchoServer) -> None:
    """A requests response hook that makes an httpx call, on a request that is redirected:
    the hook runs for both responses, and each of its calls is a request of its own (not a
    resend of the redirected one), with its own span and trace headers."""
    made: list[str] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = f"/from-hook-{len(made)}"
        made.append(path)
        _with_httpx(f"{echo_server.url}{path}", None)

    with telemetry.tracer.start_as_current_span("handler") as handler:
        response = _SESSION.get(f"{echo_server.url}/redirect", hooks={"response": hook},
                                timeout=5)
    assert response.status_code == 200
    assert made == ["/from-hook-0", "/from-hook-1"]
    for path in made:
        _assert_own_span(telemetry, echo_server, path, handler)
    hops = [s for s in telemetry.client_spans() if "/from-hook" not in s.attributes["url.full"]]
    assert [s.attributes.get("http.request.resend_count") for s in hops] == [None, 1]


# ----- the caller's objects stay the caller's -------------------------------------------------

def test_httpx_leaves_the_callers_request_and_headers_alone(telemetry: Telemetry,
                                                            echo_server: EchoServer) -> None:
    """After send(), the request's headers are the caller's very object with the caller's
    entries, and response.request is the caller's request, while the server got the span's
    traceparent; a refused request's exception names the caller's request too."""
    with httpx.Client(trust_env=False, verify=_TLS) as client:
        request = client.build_request("GET", echo_server.url,
                                       headers=httpx.Headers({"X-Demo": "1"}))
        headers = request.headers
        before = list(headers.multi_items())
        response = client.send(request)
        assert response.request is request
        assert request.headers is headers
        assert list(headers.multi_items()) == before
        assert echo_server.last().headers["traceparent"] == _traceparent_of(
            telemetry.client_span())
        refused = client.build_request("GET", refused_url())
        refused_headers = refused.headers
        with pytest.raises(httpx.ConnectError) as caught:
            client.send(refused)
        assert caught.value.request is refused
        assert refused.headers is refused_headers
        assert "traceparent" not in refused.headers


def test_one_httpx_request_sent_twice_at_once_keeps_its_headers(telemetry: Telemetry) -> None:
    """The same Request sent three times concurrently (the transport holds each until all
    three are in): each send carries its own traceparent, and afterwards the request has
    the caller's headers object back, without a traceparent."""
    arrived: list[str] = []

    async def main() -> httpx.Request:
        all_in = asyncio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            arrived.append(request.headers["traceparent"])
            if len(arrived) == 3:
                all_in.set()
            await all_in.wait()
            return httpx.Response(204)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            request = client.build_request("GET", "http://svc.test/x")
            headers = request.headers
            responses = await asyncio.gather(*(client.send(request) for _ in range(3)))
            assert [r.status_code for r in responses] == [204] * 3
            assert request.headers is headers
            return request

    request = asyncio.run(main())
    assert "traceparent" not in request.headers
    assert sorted(arrived) == sorted(_traceparent_of(s) for s in telemetry.client_spans())
    assert len(set(arrived)) == 3


# ----- timing ---------------------------------------------------------------------------------

@each_client
def test_the_span_lasts_as_long_as_the_duration_point_says(telemetry: Telemetry,
                                                           client: Client) -> None:
    """For a refused connection (whose exception event takes a while to format) the span
    ends at the measured end: its duration is the metric point's, to the nanosecond."""
    with pytest.raises(client.refused):
        client.get(refused_url(), None)
    span = telemetry.client_span()
    [point] = telemetry.duration_points()
    assert abs((span.end_time - span.start_time) - point.sum * 1e9) <= 1


@each_client
@pytest.mark.parametrize("refused", [False, True], ids=["answered", "refused"])
def test_the_duration_point_is_recorded_in_the_callers_context(telemetry: Telemetry,
                                                               echo_server: EchoServer,
                                                               client: Client,
                                                               refused: bool) -> None:
    """Answered or failed, the point's exemplar names the caller's span (the context the
    call was made in), as every client records it, never the client span's context."""
    with telemetry.tracer.start_as_current_span("handler") as handler:
        if refused:
            with pytest.raises(client.refused):
                client.get(refused_url(), None)
        else:
            client.get(echo_server.url, None)
    [point] = telemetry.duration_points()
    assert [e.span_id for e in point.exemplars] == [handler.get_span_context().span_id]


# ----- URL redaction --------------------------------------------------------------------------

@pytest.mark.parametrize("get", [
    lambda url: _SESSION.get(url, timeout=5).status_code,
    lambda url: _with_httpx(url, None),
    lambda url: _POOL.request("GET", url, retries=False).status,
    lambda url: _with_urllib(url, None),
], ids=["requests", "httpx", "urllib3", "urllib.request"])
def test_presigned_url_credentials_are_redacted(telemetry: Telemetry, echo_server: EchoServer,
                                                get: Callable[[str], int]) -> None:
    """An AWS SigV4 presigned URL's signature, credential and session token are REDACTED in
    url.full (their keys kept), the other parameters left as they are."""
    query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261127%2F"
             "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261127T000000Z&X-Amz-Expires=300"
             "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=0123456789abcdef")
    assert get(f"{echo_server.url}/bucket/key?{query}") == 200
    full = telemetry.client_span().attributes["url.full"]
    assert full == (f"{echo_server.url}/bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                    "&X-Amz-Credential=REDACTED&X-Amz-Date=20261127T000000Z&X-Amz-Expires=300"
                    "&X-Amz-Security-Token=REDACTED&X-Amz-SignedHeaders=host"
                    "&X-Amz-Signature=REDACTED")


# ----- the call itself stays the caller's -----------------------------------------------------

class _Sentinel(Exception):
    pass


def test_requests_exception_and_response_are_the_callers_own_objects(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """The exception an adapter raises and the response it returns reach the caller as the
    very same objects, and the caller's PreparedRequest is not modified."""
    raised = _Sentinel("adapter failed")
    answer = requests.Response()
    answer.status_code = 204

    class Adapter(requests.adapters.BaseAdapter):
        fail = True

        def send(self, request: Any, **kwargs: Any) -> Any:
            if self.fail:
                raise raised
            answer.request = request
            return answer

        def close(self) -> None:
            pass

    session = requests.Session()
    adapter = Adapter()
    session.mount("mock://", adapter)
    prepared = session.prepare_request(requests.Request("GET", "mock://svc/x"))
    with pytest.raises(_Sentinel) as caught:
        session.send(prepared)
    assert caught.value is raised
    adapter.fail = False
    assert session.send(prepared) is answer
    assert "traceparent" in answer.request.headers
    assert "traceparent" not in prepared.headers
    errored, ok = telemetry.spans()
    assert errored.attributes["error.type"] == f"{__name__}._Sentinel"
    assert ok.attributes["http.response.status_code"] == 204


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_httpx_exception_is_the_transports_own_object(telemetry: Telemetry,
                                                      asynchronous: bool) -> None:
    """An exception raised by an httpx transport reaches the caller unchanged (sync and
    async), and is recorded on the span."""
    raised = _Sentinel("transport failed")

    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    transport = httpx.MockTransport(handler)
    with pytest.raises(_Sentinel) as caught:
        if asynchronous:
            async def get() -> None:
                async with httpx.AsyncClient(transport=transport, verify=_TLS) as client:
                    await client.get("http://svc.test/x")

            asyncio.run(get())
        else:
            with httpx.Client(transport=transport, verify=_TLS) as client:
                client.get("http://svc.test/x")
    assert caught.value is raised
    span = telemetry.client_span()
    assert span.attributes["error.type"] == f"{__name__}._Sentinel"
    assert span.attributes["server.address"] == "svc.test"
    assert span.attributes["server.port"] == 80


def test_streaming_span_ends_when_headers_arrive(telemetry: Telemetry,
                                                 echo_server: EchoServer) -> None:
    """With requests stream=True and httpx.stream() the span has ended before the body is
    read (documented behaviour), with the status recorded."""
    response = _SESSION.get(echo_server.url, stream=True, timeout=5)
    assert len(telemetry.spans()) == 1
    response.close()
    with httpx.Client(trust_env=False, verify=_TLS) as client, \
            client.stream("GET", echo_server.url) as streamed:
        assert len(telemetry.spans()) == 2
        streamed.read()
    assert [s.attributes["http.response.status_code"] for s in telemetry.spans()] == [200, 200]


def test_patching_twice_still_makes_one_span(telemetry: Telemetry,
                                             echo_server: EchoServer) -> None:
    """Calling every patch function a second time installs nothing more: one span per
    request."""
    for ours, module in _PATCHES:
        ours.patch(module, telemetry.context)
    for client in CLIENTS:
        telemetry.reset()
        client.get(echo_server.url, None)
        span = telemetry.client_span()
        assert echo_server.last().headers["traceparent"] == _traceparent_of(span)


def test_a_failure_in_our_code_leaves_the_request_untouched(
        telemetry: Telemetry, echo_server: EchoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If our code breaks, the request still runs and succeeds, untraced, and each layer
    warns once, not once per request."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    _diagnostics.reset_for_tests()
    monkeypatch.setattr(http_client_patch.ClientTelemetry, "begin", broken)
    assert _with_requests(echo_server.url, None) == 200
    assert _with_requests(echo_server.url, None) == 200
    assert telemetry.spans() == []
    warnings = [m for _, m in _diagnostics.recorded() if "instrumentation bug" in m]
    assert sorted(m.split()[0] for m in warnings) == ["requests", "urllib3"]


def test_without_a_meter_spans_still_work(echo_server: EchoServer) -> None:
    """With metrics disabled (meter None) the shared client telemetry makes spans and
    records nothing else."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = PatchContext(tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
                           config=TelemetryConfig(), handler=None)
    telemetry = http_client_patch.ClientTelemetry(context, "test")
    call = telemetry.begin("GET", echo_server.url, "http", "127.0.0.1", echo_server.port)
    assert call is not None
    call.end(200, 11, {})
    [span] = exporter.get_finished_spans()
    assert span.attributes["network.protocol.version"] == "1.1"
    assert span.attributes["http.response.status_code"] == 200


# ----- bootstrap order and disabling, in fresh processes --------------------------------------

def _run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_requests_imported_before_bootstrap_is_traced(otlp_receiver: Any,
                                                      echo_server: EchoServer) -> None:
    """A program that imported requests before the bootstrap ran still gets traced: the
    post-import hook fires at once for an already-imported module."""
    code = f"""
        import requests
        from telemetryflow_bootstrap._bootstrap import start
        start()
        session = requests.Session()
        session.trust_env = False
        print(session.get("{echo_server.url}/early", timeout=5).status_code)
        """
    proc = _run_python(code, receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "200"
    [span] = otlp_receiver.wait_for_spans(1, name="GET")
    assert span.kind.endswith("CLIENT")
    assert span.attributes["url.full"] == f"{echo_server.url}/early"
    assert echo_server.last().headers["traceparent"].split("-")[2] == span.span_id


def test_disabled_by_name_leaves_the_library_untouched(otlp_receiver: Any) -> None:
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=requests leaves Session.send unwrapped (while
    urllib3 is instrumented) and records why."""
    code = """
        import json
        from telemetryflow_bootstrap._bootstrap import start
        from telemetryflow_bootstrap.instrumentation import registry
        from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper
        start()
        import requests, urllib3
        print(json.dumps({
            "requests": our_wrapper(requests.Session, "send") is not None,
            "urllib3": our_wrapper(urllib3.HTTPConnectionPool, "urlopen") is not None,
            "status": registry.status()["requests"][0]}))
        """
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="requests")
    proc = _run_python(code, env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "requests": False, "urllib3": True, "status": "disabled"}
