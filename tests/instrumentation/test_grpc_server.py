"""gRPC servers (grpcio ``grpc.server`` and ``grpc.aio.server``) under the instrumentation, called
over loopback: SERVER spans continuing the caller's trace, the handler's work inside them,
status codes from ``abort``/``set_code``/exceptions, duration metrics; and the registry
entries in fresh interpreters (armed before or after grpc is imported, twice, disabled)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.apps import grpc_echo

from ..e2e.launcher import REPO
from . import test_grpc_client
from .test_grpc_client import METHOD, Recorded

# The client tests' fixtures: the same patches, applied for this module, taken off after it.
patched = test_grpc_client.patched
recorded = test_grpc_client.recorded

STREAM = f"{grpc_echo.SERVICE}/ServerStream"


@pytest.fixture(scope="module")
def server(patched: Recorded) -> Iterator[int]:
    running, port = grpc_echo.serve()
    yield port
    running.stop(None)


@pytest.fixture
def channel(server: int) -> Iterator[Any]:
    with grpc.insecure_channel(f"localhost:{server}") as opened:
        yield opened


def _call(channel: Any, request: bytes) -> Any:
    return channel.unary_unary(f"/{grpc_echo.SERVICE}/Unary")(request, timeout=10)


def _work(recorded: Recorded) -> list[Any]:
    return [s for s in recorded.spans(SpanKind.INTERNAL) if s.name == "handler-work"]


def test_server_span_continues_the_callers_trace_with_the_handler_inside(recorded, channel,
                                                                          server):
    """One SERVER span per call, the client span its parent, the handler's own span its
    child; RPC, server and client attributes; a duration point without the client's
    address."""
    assert _call(channel, b"ping") == b"ping"
    client = recorded.span(SpanKind.CLIENT)
    served = recorded.span(SpanKind.SERVER)
    assert served.context.trace_id == client.context.trace_id
    assert served.parent.span_id == client.context.span_id and served.parent.is_remote
    (work,) = _work(recorded)
    assert work.parent.span_id == served.context.span_id
    attributes = dict(served.attributes)
    assert attributes.pop("client.address") == "127.0.0.1"
    assert isinstance(attributes.pop("client.port"), int)
    assert attributes == {"rpc.system.name": "grpc", "rpc.method": METHOD,
                          "server.address": "localhost", "server.port": server,
                          "rpc.response.status_code": "OK"}
    assert served.status.status_code is StatusCode.UNSET
    (point,) = recorded.points("rpc.server.call.duration", **{"rpc.method": METHOD})
    assert "client.address" not in point.attributes
    assert point.attributes["rpc.response.status_code"] == "OK"


@pytest.mark.parametrize(("request_bytes", "code", "error"), [
    (b"abort:NOT_FOUND", "NOT_FOUND", None),
    (b"abort:INTERNAL", "INTERNAL", "INTERNAL"),
    (b"code:INVALID_ARGUMENT", "INVALID_ARGUMENT", None),
    (b"code:UNAVAILABLE", "UNAVAILABLE", "UNAVAILABLE"),
])
def test_the_code_the_handler_leaves_is_the_status(recorded, channel, request_bytes, code,
                                                   error):
    """``abort`` and ``set_code``: the code is recorded; only the server-error codes make the
    span an ERROR (with ``error.type``), and an abort is no exception event."""
    with pytest.raises(grpc.RpcError):
        _call(channel, request_bytes)
    served = recorded.span(SpanKind.SERVER)
    assert served.attributes["rpc.response.status_code"] == code
    assert served.attributes.get("error.type") == error
    assert served.status.status_code is (StatusCode.ERROR if error else StatusCode.UNSET)
    assert served.events == ()
    assert recorded.points("rpc.server.call.duration", **{"rpc.response.status_code": code})


def test_a_handler_that_raises_is_an_unknown_error_of_its_exception_class(recorded,
                                                                          channel):
    """An exception out of the handler: UNKNOWN (what grpc sends), ``error.type`` the
    exception's class, an exception event, status ERROR; the client sees UNKNOWN."""
    with pytest.raises(grpc.RpcError) as raised:
        _call(channel, b"fail")
    assert raised.value.code() is grpc.StatusCode.UNKNOWN
    served = recorded.span(SpanKind.SERVER)
    assert served.attributes["rpc.response.status_code"] == "UNKNOWN"
    assert served.attributes["error.type"] == "ValueError"
    assert served.status.status_code is StatusCode.ERROR
    assert [e.name for e in served.events] == ["exception"]


def test_a_streaming_response_is_produced_inside_the_span_which_ends_with_it(recorded,
                                                                            channel):
    """unary-stream: every response's work is a child of the server span, which ends after
    the last one; a handler failing mid-stream ends it as an error."""
    assert list(channel.unary_stream(f"/{STREAM}")(b"xyz")) == [b"x", b"y", b"z"]
    served = recorded.span(SpanKind.SERVER, STREAM)
    work = _work(recorded)
    assert len(work) == 3
    assert {w.parent.span_id for w in work} == {served.context.span_id}
    assert served.end_time >= max(w.end_time for w in work)
    recorded.exporter.clear()
    with pytest.raises(grpc.RpcError):
        list(channel.unary_stream(f"/{STREAM}")(b"fail"))
    failed = recorded.span(SpanKind.SERVER, STREAM)
    assert failed.attributes["error.type"] == "ValueError"


def test_streaming_requests_are_served_in_one_span_each(recorded, channel):
    """stream-unary and stream-stream handlers: one SERVER span each, the work inside."""
    assert channel.stream_unary(f"/{grpc_echo.SERVICE}/ClientStream")(iter([b"a", b"b"])) \
        == b"ab"
    assert list(channel.stream_stream(f"/{grpc_echo.SERVICE}/BidiStream")(
        iter([b"c", b"d"]))) == [b"C", b"D"]
    for name in ("ClientStream", "BidiStream"):
        served = recorded.span(SpanKind.SERVER, f"{grpc_echo.SERVICE}/{name}")
        assert served.attributes["rpc.response.status_code"] == "OK"
        assert any(w.parent.span_id == served.context.span_id for w in _work(recorded))


def test_a_call_without_trace_context_is_a_new_trace_not_the_servers_context(recorded,
                                                                             server):
    """An untraced caller (no traceparent): the server span is a root, even though the
    server was started, and is called, inside a span of this process."""
    with recorded.tracer.start_as_current_span("around"), \
            grpc.insecure_channel(f"localhost:{server}") as channel:
        from opentelemetry.context import (
            _SUPPRESS_INSTRUMENTATION_KEY,
            attach,
            detach,
            set_value,
        )

        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))  # (client untraced)
        try:
            _call(channel, b"x")
        finally:
            detach(token)
    served = recorded.span(SpanKind.SERVER)
    assert served.parent is None


def test_the_programs_interceptors_run_inside_our_span(recorded):
    """A server built with interceptors of its own: ours goes first, once; a call they
    reject themselves is still one span with their code."""

    class Deny(grpc.ServerInterceptor):
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            if dict(details.invocation_metadata).get("x-deny"):
                def deny(request: Any, context: Any) -> Any:
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
                return grpc.unary_unary_rpc_method_handler(deny)
            return continuation(details)

    running, port = grpc_echo.serve(interceptors=[Deny()])
    try:
        with grpc.insecure_channel(f"localhost:{port}") as channel:
            assert _call(channel, b"ok") == b"ok"
            with pytest.raises(grpc.RpcError):
                channel.unary_unary(f"/{grpc_echo.SERVICE}/Unary")(
                    b"x", metadata=(("x-deny", "1"),))
            with pytest.raises(grpc.RpcError) as missing:
                channel.unary_unary(f"/{grpc_echo.SERVICE}/Nope")(b"x")
    finally:
        running.stop(None)
    codes = sorted(s.attributes["rpc.response.status_code"]
                   for s in recorded.spans(SpanKind.SERVER))
    assert codes == ["OK", "PERMISSION_DENIED"]  # (an unknown method: no handler, no span)
    assert missing.value.code() is grpc.StatusCode.UNIMPLEMENTED
    nope = recorded.span(SpanKind.CLIENT, f"{grpc_echo.SERVICE}/Nope")
    assert nope.attributes["error.type"] == "UNIMPLEMENTED"


def test_aio_server_spans_for_coroutines_async_generators_and_sync_handlers(recorded):
    """grpc.aio.server: coroutine, async-generator and sync handlers (the last still run on
    grpc's thread pool) each in a SERVER span continuing the client's trace; an awaited
    abort is the code it aborted with."""

    async def main() -> Any:
        server, port = await grpc_echo.serve_async()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                unary = channel.unary_unary(f"/{grpc_echo.SERVICE}/Unary")
                seen = json.loads(await unary(b"who"))
                with pytest.raises(grpc.aio.AioRpcError):
                    await unary(b"abort:UNAVAILABLE")
                streamed = [item async for item in
                            channel.unary_stream(f"/{STREAM}")(b"ab")]
                synced = await channel.unary_unary(f"/{grpc_echo.SERVICE}/SyncUnary")(b"s")
                bidi = channel.stream_stream(f"/{grpc_echo.SERVICE}/BidiStream")
                echoed = [item async for item in bidi(iter([b"q"]))]
            return seen, streamed, synced, echoed
        finally:
            await server.stop(None)

    seen, streamed, synced, echoed = asyncio.run(asyncio.wait_for(main(), 30))
    assert (streamed, synced, echoed) == ([b"a", b"b"], b"s", [b"Q"])
    served = recorded.spans(SpanKind.SERVER, METHOD)
    ok = next(s for s in served if s.attributes["rpc.response.status_code"] == "OK")
    assert seen["traceparent"].split("-")[1] == f"{ok.context.trace_id:032x}"
    assert ok.parent.span_id == int(seen["traceparent"].split("-")[2], 16)
    aborted = next(s for s in served if s is not ok)
    assert aborted.attributes["rpc.response.status_code"] == "UNAVAILABLE"
    assert aborted.status.status_code is StatusCode.ERROR
    stream = recorded.span(SpanKind.SERVER, STREAM)
    assert len([w for w in _work(recorded) if w.parent.span_id == stream.context.span_id]) \
        == 2
    sync = recorded.span(SpanKind.SERVER, f"{grpc_echo.SERVICE}/SyncUnary")
    assert any(w.parent.span_id == sync.context.span_id for w in _work(recorded))
    recorded.span(SpanKind.SERVER, f"{grpc_echo.SERVICE}/BidiStream")


_PROGRAM = textwrap.dedent("""
    import json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":  # (grpc._channel and _server: grpc imports them lazily)
        import grpc, grpc._channel, grpc._server
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_rpc, registry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    registry.arm(context, _catalog_rpc.ENTRIES)
    if order == "twice":
        registry.arm(context, _catalog_rpc.ENTRIES)
    import asyncio, grpc
    from tests.apps import grpc_echo
    if order == "twice":  # a second patch call by hand must not wrap a second time
        from grpc import _channel, _server
        from grpc.aio import _channel as aio_channel, _server as aio_server
        from telemetryflow_bootstrap.instrumentation import grpc_client, grpc_server
        grpc_client.patch(_channel, context)
        grpc_client.patch_aio(aio_channel, context)
        grpc_server.patch(_server, context)
        grpc_server.patch_aio(aio_server, context)
    server, port = grpc_echo.serve()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary("/tf.test.Echo/Unary")(b"x")
    server.stop(None)

    async def main():
        server, port = await grpc_echo.serve_async()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await channel.unary_unary("/tf.test.Echo/Unary")(b"y")
        await server.stop(None)

    asyncio.run(main())
    print(json.dumps({
        "spans": sorted(f"{s.kind.name} {s.name}" for s in exporter.get_finished_spans()
                        if s.name != "handler-work"),
        "status": {name: state for name, (state, _) in registry.status().items()},
    }))
""")
_SCENARIOS = {"import-first": ("import-first", ""), "twice": ("twice", ""),
              "disabled": ("arm-first", "grpc_server,grpc_aio_client")}


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    """Every scenario's outcome; the interpreters run side by side to keep the suite quick."""
    processes = {name: subprocess.Popen([sys.executable, "-c", _PROGRAM, *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
                 for name, args in _SCENARIOS.items()}
    outcomes = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=90)
            assert process.returncode == 0, f"{name}: {stderr}"
            outcomes[name] = json.loads(stdout.strip().splitlines()[-1])
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return outcomes


_ALL = sorted(f"{kind} {METHOD}" for kind in ("CLIENT", "SERVER") for _ in range(2))
_ENTRIES = ("grpc_client", "grpc_aio_client", "grpc_server", "grpc_aio_server")


@pytest.mark.parametrize("scenario", ["import-first", "twice"])
def test_every_entry_applies_once_whenever_grpc_is_imported(results, scenario):
    """Armed after grpc was imported, or before (and armed twice, patched again by hand):
    each call is exactly one CLIENT and one SERVER span, sync and asyncio."""
    assert results[scenario]["spans"] == _ALL
    assert {results[scenario]["status"][name] for name in _ENTRIES} == {"applied"}


def test_each_side_can_be_disabled_by_name(results):
    """Disabling grpc_server and grpc_aio_client leaves the sync client and asyncio server
    spans only."""
    result = results["disabled"]
    assert result["spans"] == [f"CLIENT {METHOD}", f"SERVER {METHOD}"]
    assert result["status"]["grpc_server"] == "disabled"
    assert result["status"]["grpc_aio_client"] == "disabled"
    assert result["status"]["grpc_client"] == result["status"]["grpc_aio_server"] == "applied"


@pytest.mark.parametrize("carrier", [
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
    {"traceparent": "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
    {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
     "tracestate": "vendor=1"},
    {"traceparent": "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"},
    {"traceparent": "00-0x f7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
])
def test_the_fast_traceparent_reading_agrees_with_the_propagator(carrier):
    """``remote_parent`` continues exactly the span context ``propagate.extract`` would."""
    from opentelemetry.propagate import extract
    from opentelemetry.trace import get_current_span

    from telemetryflow_bootstrap.instrumentation._grpc_common import remote_parent

    ours = get_current_span(remote_parent(carrier)).get_span_context()
    theirs = get_current_span(extract(carrier)).get_span_context()
    assert ours == theirs
    assert ours.is_remote == theirs.is_remote and ours.trace_flags == theirs.trace_flags
    assert ours.trace_state == theirs.trace_state
