"""The aiohttp client instrumentation against real aiohttp and a real loopback server (the
threaded echo server of ``http_fixtures``, which keeps the headers each request carried).

Patching is global: the module fixture patches aiohttp once, with in-memory exporters every
test starts empty, and removes the wrappers when the module is done. ``patched_aiohttp`` is
shared with ``test_aiohttp_server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import aiohttp
import aiohttp.web_protocol
import pytest
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _method_wrappers as method_wrappers
from telemetryflow_bootstrap.instrumentation import aiohttp_client as client_patch
from telemetryflow_bootstrap.instrumentation import aiohttp_server as server_patch
from telemetryflow_bootstrap.instrumentation import http_client as http_client_patch
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

from .http_fixtures import EchoServer, echo_server, refused_url, trace_header_server

__all__ = ["echo_server", "trace_header_server"]

_WRAPPED = ((aiohttp.ClientSession, "_request"), (aiohttp.BaseConnector, "connect"),
            (aiohttp.ClientResponse, "start"),
            (aiohttp.web_protocol.RequestHandler, "_handle_request"),
            (aiohttp.web_protocol.RequestHandler, "handle_error"))
_CAPTURE_ENV = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "x-demo,authorization",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": "x-echo",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-demo",
}


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer: Any
    context: PatchContext

    def spans(self, kind: SpanKind | None = None) -> list[Any]:
        return sorted((s for s in self.exporter.get_finished_spans()
                       if kind is None or s.kind is kind), key=lambda s: s.start_time)

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        assert metric.unit == "s"
                        found.extend(p for p in metric.data.data_points if p.count)
        return found

    def reset(self) -> None:
        self.exporter.clear()
        self.reader.get_metrics_data()  # delta temporality: collecting drains


@contextlib.contextmanager
def patched_aiohttp() -> Iterator[Telemetry]:
    """aiohttp's client and server patched with in-memory exporters (W3C trace context and
    baggage propagation, ``/health`` excluded), unpatched after."""
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
    with mock.patch.dict(os.environ, _CAPTURE_ENV):  # header capture is read at patch time
        client_patch.patch(aiohttp, context)
        server_patch.patch(aiohttp.web_protocol, context)
    try:
        yield Telemetry(exporter, reader, tracer_provider.get_tracer("test-app"), context)
    finally:
        for owner, name in _WRAPPED:
            handle = method_wrappers.our_wrapper(owner, name)
            if handle is not None:
                method_wrappers.unwrap(owner, name, handle)
        propagate.set_global_textmap(previous)
        meter_provider.shutdown()


@pytest.fixture(scope="module")
def _patched() -> Iterator[Telemetry]:
    with patched_aiohttp() as telemetry:
        yield telemetry


@pytest.fixture
def telemetry(_patched: Telemetry) -> Iterator[Telemetry]:
    _patched.reset()
    yield _patched
    _patched.reset()


def _get(url: str, headers: dict[str, str] | None = None, *, direct: bool = False,
         **kwargs: Any) -> tuple[int, str]:
    """GET ``url`` with a fresh ClientSession: ``(status, body)``; ``direct``: the response
    awaited rather than used as ``async with``."""
    async def main() -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            if direct:
                response = await session.get(url, headers=headers, **kwargs)
                try:
                    return response.status, await response.text()
                finally:
                    response.release()
            async with session.get(url, headers=headers, **kwargs) as response:
                return response.status, await response.text()

    return asyncio.run(main())


def _traceparent_of(span: Any) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


@pytest.mark.parametrize("direct", [False, True], ids=["async-with", "awaited"])
def test_one_client_span_whose_context_reaches_the_server(telemetry: Telemetry,
                                                          echo_server: EchoServer,
                                                          direct: bool) -> None:
    """session.get() used as a context manager or awaited: one CLIENT span with the HTTP
    attributes; the server receives that span's traceparent (once, replacing the caller's
    stale one) while the caller's header dict stays as it was."""
    headers = {"X-Demo": "1", "Traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    before = dict(headers)
    status, _ = _get(f"{echo_server.url}/q?a=1", headers, direct=direct)
    assert status == 200
    assert headers == before
    [span] = telemetry.spans()
    assert span.kind is SpanKind.CLIENT and span.name == "GET"
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.full": f"{echo_server.url}/q?a=1",
        "server.address": "127.0.0.1", "server.port": echo_server.port,
        "http.response.status_code": 200, "network.protocol.version": "1.1",
        "http.request.header.x-demo": ("1",), "http.response.header.x-echo": ("yes",)}
    assert echo_server.last().headers["traceparent"] == _traceparent_of(span)


def test_a_trace_header_the_caller_set_is_sent_once(telemetry: Telemetry,
                                                    trace_header_server: Any) -> None:
    """A ``Traceparent`` the caller set (another letter case) is replaced, never sent
    next to ours."""
    url = f"http://127.0.0.1:{trace_header_server.server_address[1]}/"
    _get(url, {"Traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    [span] = telemetry.spans()
    assert [value for _, value in trace_header_server.lines[-1]] == [_traceparent_of(span)]


def test_the_span_is_a_child_of_the_callers_span_and_ends_with_the_headers(
        telemetry: Telemetry, echo_server: EchoServer) -> None:
    """Inside the caller's span the CLIENT span is its child; it has ended when the
    response headers are there, before the body is read (as for every other client)."""
    async def main() -> int:
        with telemetry.tracer.start_as_current_span("caller"):
            async with aiohttp.ClientSession() as session, \
                    session.get(echo_server.url) as response:
                ended = len(telemetry.spans(SpanKind.CLIENT))
                await response.read()
                return ended

    assert asyncio.run(main()) == 1
    client, caller = telemetry.spans(SpanKind.CLIENT)[0], telemetry.spans(SpanKind.INTERNAL)[0]
    assert client.parent.span_id == caller.context.span_id
    assert client.context.trace_id == caller.context.trace_id


def test_each_redirect_hop_is_a_span_with_its_resend_count(telemetry: Telemetry,
                                                           echo_server: EchoServer) -> None:
    """A followed redirect is two sibling spans: the 302 and the next hop, which carries
    http.request.resend_count 1 and its own traceparent."""
    with telemetry.tracer.start_as_current_span("caller") as caller:
        status, _ = _get_in_context(f"{echo_server.url}/redirect")
    assert status == 200
    first, second = telemetry.spans(SpanKind.CLIENT)
    assert first.attributes["http.response.status_code"] == 302
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["url.full"] == f"{echo_server.url}/status/200"
    assert {first.parent.span_id, second.parent.span_id} == {caller.get_span_context().span_id}
    assert echo_server.last().headers["traceparent"] == _traceparent_of(second)


def _get_in_context(url: str) -> tuple[int, str]:
    """``_get`` from the current context (asyncio.run copies it into its task)."""
    return _get(url)


def test_an_error_status_marks_the_span_and_the_metric(telemetry: Telemetry,
                                                       echo_server: EchoServer) -> None:
    """A 503 is an ERROR span with error.type '503'; the duration point carries only the
    low-cardinality attributes (never the URL)."""
    assert _get(f"{echo_server.url}/status/503")[0] == 503
    [span] = telemetry.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "503"
    [point] = telemetry.points("http.client.request.duration")
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "server.address": "127.0.0.1",
        "server.port": echo_server.port, "http.response.status_code": 503,
        "network.protocol.version": "1.1", "error.type": "503"}


def test_a_refused_connection_propagates_and_is_recorded(telemetry: Telemetry) -> None:
    """The caller gets aiohttp's own exception; the span has its fully-qualified class name
    as error.type, an exception event and no status code, and the point the same."""
    with pytest.raises(aiohttp.ClientConnectorError):
        _get(refused_url())
    [span] = telemetry.spans()
    assert span.attributes["error.type"] == "aiohttp.client_exceptions.ClientConnectorError"
    assert "http.response.status_code" not in span.attributes
    assert [e.name for e in span.events] == ["exception"]
    [point] = telemetry.points("http.client.request.duration")
    assert point.attributes["error.type"] == "aiohttp.client_exceptions.ClientConnectorError"


def test_signature_query_values_are_redacted(telemetry: Telemetry,
                                             echo_server: EchoServer) -> None:
    """A signature passed in params= is REDACTED in url.full, other parameters kept; URL
    userinfo never appears."""
    url = echo_server.url.replace("http://", "http://user:secret@")
    _get(url + "/x", params={"X-Amz-Signature": "deadbeef", "page": "2"})
    [span] = telemetry.spans()
    assert span.attributes["url.full"] == \
        f"{echo_server.url}/x?X-Amz-Signature=REDACTED&page=2"
    assert "secret" not in repr(dict(span.attributes))


def test_an_unsampled_request_still_propagates_and_counts(telemetry: Telemetry,
                                                          echo_server: EchoServer) -> None:
    """Under an unsampled parent no span is recorded, yet the server gets the trace (not
    sampled) and the duration point is recorded."""
    parent = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.DEFAULT))
    token = attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        assert _get(echo_server.url)[0] == 200
    finally:
        detach(token)
    assert telemetry.spans() == []
    traceparent = echo_server.last().headers["traceparent"]
    assert traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert traceparent.endswith("-00")
    [point] = telemetry.points("http.client.request.duration")
    assert point.attributes["http.response.status_code"] == 200


def test_excluded_and_suppressed_requests_are_left_alone(telemetry: Telemetry,
                                                         echo_server: EchoServer) -> None:
    """An excluded URL, and any request while instrumentation is suppressed (our own
    exporter's traffic), gets no span, no point and no trace headers."""
    assert _get(f"{echo_server.url}/health")[0] == 200
    assert "traceparent" not in echo_server.last().headers
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        assert _get(echo_server.url)[0] == 200
    finally:
        detach(token)
    assert "traceparent" not in echo_server.last().headers
    assert telemetry.spans() == []
    assert telemetry.points("http.client.request.duration") == []


def test_patching_twice_still_makes_one_span(telemetry: Telemetry,
                                             echo_server: EchoServer) -> None:
    """A second patch call installs nothing more."""
    client_patch.patch(aiohttp, telemetry.context)
    _get(echo_server.url)
    assert len(telemetry.spans()) == 1


def test_a_failure_in_our_code_leaves_the_request_untouched(
        telemetry: Telemetry, echo_server: EchoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If our code breaks, the request still runs and succeeds, untraced, warned about once."""
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("instrumentation bug")

    _diagnostics.reset_for_tests()
    monkeypatch.setattr(http_client_patch.ClientTelemetry, "begin", broken)
    assert _get(echo_server.url)[0] == 200
    assert _get(echo_server.url)[0] == 200
    assert telemetry.spans() == []
    warnings = [m for _, m in _diagnostics.recorded() if "instrumentation bug" in m]
    assert len(warnings) == 1 and warnings[0].startswith("aiohttp ")
