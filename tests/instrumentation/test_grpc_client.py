"""gRPC clients (grpcio, sync and grpc.aio) under the instrumentation, against a real server on
loopback (``tests/apps/grpc_echo.py``): CLIENT spans, the trace context in the call's
metadata, status codes, duration metrics, and what is never recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.trace import SpanKind, StatusCode

from tests.apps import grpc_echo

METHOD = f"{grpc_echo.SERVICE}/Unary"
SECRET = "Bearer s3cr3t-t0ken-9931"


class Recorded:
    """In-memory span and metric exporters behind the PatchContext the four gRPC patches are
    applied with; ``undo()`` takes every wrapper of ours off again (grpc is used by other
    tests in this process: the OTLP receiver is a grpc server)."""

    def __init__(self) -> None:
        from grpc import _channel, _server
        from grpc.aio import _channel as aio_channel
        from grpc.aio import _server as aio_server
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation import grpc_client, grpc_server
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = provider.get_tracer("tests.grpc")
        self.reader = InMemoryMetricReader()
        context = PatchContext(
            tracer=provider.get_tracer("telemetryflow.grpc"),
            meter=MeterProvider(metric_readers=[self.reader]).get_meter("t"),
            logger_provider=None, config=TelemetryConfig(), handler=None)
        # (the handlers' "handler-work" spans go to the same exporter)
        grpc_echo._tracer = provider.get_tracer("tests.apps.grpc_echo")
        self._modules = (_channel, aio_channel, _server, aio_server)
        grpc_client.patch(_channel, context)
        grpc_client.patch_aio(aio_channel, context)
        grpc_server.patch(_server, context)
        grpc_server.patch_aio(aio_server, context)

    def undo(self) -> None:
        from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper, unwrap

        for module in self._modules:
            for owner in vars(module).values():
                if not isinstance(owner, type) or owner.__module__ != module.__name__:
                    continue
                for name in list(vars(owner)):
                    method = our_wrapper(owner, name)
                    if method is not None and vars(owner)[name] is method:
                        unwrap(owner, name, method)

    def spans(self, kind: SpanKind | None = None, name: str | None = None) -> list[Any]:
        return [s for s in self.exporter.get_finished_spans()
                if (kind is None or s.kind is kind) and (name is None or s.name == name)]

    def span(self, kind: SpanKind, name: str = METHOD, wait: float = 5.0) -> Any:
        """The one finished span of that kind and name (waiting a little: a streaming or
        asyncio call's span ends on grpc's own thread, just after the caller saw the end)."""
        deadline = time.monotonic() + wait
        while True:
            found = self.spans(kind, name)
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert len(found) == 1, [(s.name, s.kind) for s in self.exporter.get_finished_spans()]
        return found[0]

    def points(self, metric_name: str, **attributes: Any) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == metric_name:
                        found += [p for p in metric.data.data_points
                                  if all(p.attributes.get(k) == v
                                         for k, v in attributes.items())]
        return found

    def all_text(self) -> str:
        """What our spans and points say, to check what must never be in it."""
        parts = []
        for span in self.exporter.get_finished_spans():
            if span.instrumentation_scope.name != "telemetryflow.grpc":
                continue  # (the handlers' own spans record what they raise, abort too)
            parts.append(f"{span.name} {dict(span.attributes)!r} {span.status.description}")
            parts.extend(f"{e.name} {dict(e.attributes)!r}" for e in span.events)
        for name in ("rpc.client.call.duration", "rpc.server.call.duration"):
            parts.extend(repr(dict(p.attributes)) for p in self.points(name))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def patched() -> Iterator[Recorded]:
    recorded = Recorded()
    yield recorded
    recorded.undo()


@pytest.fixture
def recorded(patched: Recorded) -> Iterator[Recorded]:
    patched.exporter.clear()
    yield patched
    patched.exporter.clear()


@pytest.fixture(scope="module")
def server(patched: Recorded) -> Iterator[int]:
    running, port = grpc_echo.serve()
    yield port
    running.stop(None)


@pytest.fixture
def channel(server: int) -> Iterator[Any]:
    with grpc.insecure_channel(f"localhost:{server}") as opened:
        yield opened


def _unary(channel: Any, method: str = "Unary") -> Any:
    return channel.unary_unary(f"/{grpc_echo.SERVICE}/{method}")


def test_unary_call_is_a_client_span_whose_context_the_server_receives(recorded, channel,
                                                                        server):
    """A unary call: a CLIENT span ``pkg.Service/Method`` with the RPC attributes, its
    traceparent in the call's metadata (the caller's own metadata list untouched), the
    server span its child, and a duration point."""
    metadata = [("x-caller", "tests"), ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]
    with recorded.tracer.start_as_current_span("caller") as caller:
        seen = json.loads(_unary(channel)(b"who", metadata=metadata, timeout=10))
    assert metadata == [("x-caller", "tests"),
                        ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]
    client = recorded.span(SpanKind.CLIENT)
    assert client.parent.span_id == caller.get_span_context().span_id
    assert dict(client.attributes) == {
        "rpc.system.name": "grpc", "rpc.method": METHOD, "server.address": "localhost",
        "server.port": server, "rpc.response.status_code": "OK"}
    assert client.status.status_code is StatusCode.UNSET
    context = client.context
    assert seen == {"x-caller": "tests",
                    "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                                   f"{context.trace_flags:02x}"}
    assert recorded.span(SpanKind.SERVER).parent.span_id == context.span_id
    (point,) = recorded.points("rpc.client.call.duration", **{"rpc.method": METHOD})
    assert dict(point.attributes) == {
        "rpc.system.name": "grpc", "rpc.method": METHOD, "server.address": "localhost",
        "server.port": server, "rpc.response.status_code": "OK"}
    assert point.count == 1


def test_a_non_ok_code_is_an_error_named_by_the_code(recorded, channel):
    """NOT_FOUND from the server: the caller gets the same RpcError; the span is an ERROR
    with ``error.type`` NOT_FOUND and no trace of the status details or credentials."""
    with pytest.raises(grpc.RpcError) as raised:
        _unary(channel)(b"abort:NOT_FOUND", metadata=(("authorization", SECRET),))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    client = recorded.span(SpanKind.CLIENT)
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes["rpc.response.status_code"] == "NOT_FOUND"
    assert client.attributes["error.type"] == "NOT_FOUND"
    assert recorded.points("rpc.client.call.duration", **{"error.type": "NOT_FOUND"})
    text = recorded.all_text()
    assert "aborted on request" not in text and "s3cr3t" not in text


def test_with_call_and_future_are_traced_and_the_future_span_ends_when_it_is_done(
        recorded, channel):
    """``with_call`` returns (response, call) as before, in a span; ``future()``'s span ends
    once the call is done, with the code it ended with."""
    response, call = _unary(channel).with_call(b"hello")
    assert response == b"hello" and call.code() is grpc.StatusCode.OK
    assert recorded.span(SpanKind.CLIENT).attributes["rpc.response.status_code"] == "OK"
    recorded.exporter.clear()
    future = _unary(channel).future(b"code:INVALID_ARGUMENT")
    with pytest.raises(grpc.RpcError):
        future.result(timeout=10)
    client = recorded.span(SpanKind.CLIENT)
    assert client.attributes["rpc.response.status_code"] == "INVALID_ARGUMENT"
    assert client.status.status_code is StatusCode.ERROR


def test_a_streaming_response_span_ends_when_the_stream_ends(recorded, channel):
    """unary-stream: no span has ended while responses are still being read; it ends when
    the stream does, after the last response."""
    responses = channel.unary_stream(f"/{grpc_echo.SERVICE}/ServerStream")(b"abc")
    assert next(responses) == b"a"
    assert recorded.spans(SpanKind.CLIENT) == []
    assert list(responses) == [b"b", b"c"]
    read_all = time.time_ns()
    client = recorded.span(SpanKind.CLIENT, f"{grpc_echo.SERVICE}/ServerStream")
    assert client.end_time >= read_all - 50_000_000  # (ended with the status, not at the call)
    assert client.attributes["rpc.response.status_code"] == "OK"


def test_streaming_requests_are_traced(recorded, channel):
    """stream-unary (blocking and future) and stream-stream calls each make one span."""
    client_stream = channel.stream_unary(f"/{grpc_echo.SERVICE}/ClientStream")
    assert client_stream(iter([b"a", b"b"])) == b"ab"
    assert client_stream.future(iter([b"c"])).result(timeout=10) == b"c"
    bidi = channel.stream_stream(f"/{grpc_echo.SERVICE}/BidiStream")
    assert list(bidi(iter([b"x", b"y"]))) == [b"X", b"Y"]
    recorded.span(SpanKind.CLIENT, f"{grpc_echo.SERVICE}/BidiStream")
    assert len(recorded.spans(SpanKind.CLIENT, f"{grpc_echo.SERVICE}/ClientStream")) == 2


def test_nothing_is_traced_or_injected_while_instrumentation_is_suppressed(recorded,
                                                                           channel):
    """Our exporter's calls run suppressed: no span, no traceparent sent."""
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        seen = json.loads(_unary(channel)(b"who"))
    finally:
        detach(token)
    assert "traceparent" not in seen
    assert recorded.spans(SpanKind.CLIENT) == []


def test_calls_from_another_thread_are_traced_there(recorded, channel):
    """Several threads calling at once: each call its own span, each in its caller's
    trace."""
    results: list[tuple[int, Any]] = []

    def work() -> None:
        with recorded.tracer.start_as_current_span("worker") as span:
            results.append((span.get_span_context().span_id, _unary(channel)(b"x")))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    clients = [s for s in recorded.spans(SpanKind.CLIENT)]
    assert sorted(s.parent.span_id for s in clients) == sorted(span for span, _ in results)


def test_aio_calls_are_traced_until_they_finish(recorded):
    """grpc.aio: unary (OK and aborted), unary-stream, stream-unary and stream-stream calls,
    each a CLIENT span ended when the call finished, with the trace in the metadata."""

    async def main() -> Any:
        server, port = await grpc_echo.serve_async()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                with recorded.tracer.start_as_current_span("caller"):
                    seen = json.loads(await _unary(channel)(
                        b"who", metadata=grpc.aio.Metadata(("x-caller", "aio"))))
                    with pytest.raises(grpc.aio.AioRpcError):
                        await _unary(channel)(b"abort:PERMISSION_DENIED")
                    stream = channel.unary_stream(f"/{grpc_echo.SERVICE}/ServerStream")
                    streamed = [item async for item in stream(b"ab")]
                    joined = await channel.stream_unary(
                        f"/{grpc_echo.SERVICE}/ClientStream")(iter([b"c", b"d"]))
                    bidi = channel.stream_stream(f"/{grpc_echo.SERVICE}/BidiStream")
                    echoed = [item async for item in bidi(iter([b"e"]))]
            return seen, streamed, joined, echoed
        finally:
            await server.stop(None)

    seen, streamed, joined, echoed = asyncio.run(asyncio.wait_for(main(), 30))
    assert (streamed, joined, echoed) == ([b"a", b"b"], b"cd", [b"E"])
    clients = {s.name: s for s in recorded.spans(SpanKind.CLIENT)}
    assert sorted(clients) == sorted(f"{grpc_echo.SERVICE}/{m}" for m in (
        "Unary", "ClientStream", "ServerStream", "BidiStream"))
    unary = [s for s in recorded.spans(SpanKind.CLIENT) if s.name == METHOD]
    ok = next(s for s in unary if s.attributes["rpc.response.status_code"] == "OK")
    denied = next(s for s in unary if s.attributes["rpc.response.status_code"] != "OK")
    assert seen["x-caller"] == "aio"
    assert seen["traceparent"].split("-")[2] == f"{ok.context.span_id:016x}"
    assert denied.attributes["error.type"] == "PERMISSION_DENIED"
    assert denied.status.status_code is StatusCode.ERROR
    assert ok.attributes["server.address"] == "127.0.0.1"
    for name in ("ServerStream", "ClientStream", "BidiStream"):
        span = clients[f"{grpc_echo.SERVICE}/{name}"]
        assert span.attributes["rpc.response.status_code"] == "OK"


def test_attribute_and_metric_names_are_the_installed_conventions():
    """The names spelled in _grpc_common are the semantic-conventions package's."""
    from opentelemetry.semconv._incubating.attributes import rpc_attributes
    from opentelemetry.semconv._incubating.metrics import rpc_metrics

    from telemetryflow_bootstrap.instrumentation import _grpc_common as ours

    assert ours.RPC_SYSTEM_NAME == rpc_attributes.RPC_SYSTEM_NAME
    assert ours.RPC_METHOD == rpc_attributes.RPC_METHOD
    assert ours.RPC_RESPONSE_STATUS_CODE == rpc_attributes.RPC_RESPONSE_STATUS_CODE
    assert rpc_attributes.RpcSystemNameValues.GRPC.value == ours.GRPC
    assert ours.CLIENT_DURATION == rpc_metrics.RPC_CLIENT_CALL_DURATION
    assert ours.SERVER_DURATION == rpc_metrics.RPC_SERVER_CALL_DURATION


@pytest.mark.parametrize(("target", "expected"), [
    ("localhost:50051", ("localhost", 50051)),
    ("dns:///collector.example:4317", ("collector.example", 4317)),
    ("ipv4:10.0.0.1:443", ("10.0.0.1", 443)),
    ("[::1]:50051", ("::1", 50051)),
    ("unix:///run/app.sock", ("/run/app.sock", None)),
    ("localhost", ("localhost", None)),
])
def test_server_address_and_port_come_from_the_channel_target(target, expected):
    """Channel targets of every form grpc accepts give host and port (a path for unix)."""
    from telemetryflow_bootstrap.instrumentation._grpc_common import split_target

    assert split_target(target) == expected
