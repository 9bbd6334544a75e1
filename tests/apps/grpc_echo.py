"""A gRPC echo service without protobuf code generation (bytes in, bytes out), sync and asyncio,
for the gRPC instrumentation tests and ``grpc_app.py``.

Methods of ``tf.test.Echo``:
    Unary          echoes the request; ``who`` answers with the trace headers it received
                   (JSON); ``abort:CODE`` aborts with that code; ``code:CODE`` sets it and
                   returns; ``fail`` raises ValueError
    ServerStream   the request's bytes one by one (``fail`` raises after the first)
    ClientStream   the requests joined
    BidiStream     each request back, upper-cased

Every handler does its work in a span of its own ("handler-work"), which must be a child of
the server span. Run by hand: ``python tests/apps/grpc_echo.py [port]`` serves until Ctrl-C.
"""

from __future__ import annotations

import json
import sys
from concurrent import futures
from typing import Any

import grpc
from opentelemetry import trace

SERVICE = "tf.test.Echo"
_tracer = trace.get_tracer("tests.apps.grpc_echo")


def _seen(context: Any) -> bytes:
    found = {key: value for key, value in context.invocation_metadata()
             if key in ("traceparent", "tracestate", "baggage", "x-caller")}
    return json.dumps(found).encode()


def _unary_answer(request: bytes, context: Any) -> tuple[bytes | None, Any, str | None]:
    """(response, code to set, code to abort with) for a unary request."""
    if request == b"who":
        return _seen(context), None, None
    if request.startswith(b"abort:"):
        return None, None, request[6:].decode()
    if request.startswith(b"code:"):
        return b"", getattr(grpc.StatusCode, request[5:].decode()), None
    if request == b"fail":
        raise ValueError("handler failed")
    return request, None, None


def unary(request: bytes, context: Any) -> bytes:
    with _tracer.start_as_current_span("handler-work"):
        response, code, abort = _unary_answer(request, context)
        if abort:
            context.abort(getattr(grpc.StatusCode, abort), "aborted on request")
        if code is not None:
            context.set_code(code)
        return response  # type: ignore[return-value]


def server_stream(request: bytes, context: Any) -> Any:
    for index, byte in enumerate(request):
        with _tracer.start_as_current_span("handler-work"):
            if index == 1 and request == b"fail":
                raise ValueError("stream failed")
            yield bytes([byte])


def client_stream(requests: Any, context: Any) -> bytes:
    with _tracer.start_as_current_span("handler-work"):
        return b"".join(requests)


def bidi_stream(requests: Any, context: Any) -> Any:
    for request in requests:
        with _tracer.start_as_current_span("handler-work"):
            yield request.upper()


async def unary_async(request: bytes, context: Any) -> bytes:
    with _tracer.start_as_current_span("handler-work"):
        response, code, abort = _unary_answer(request, context)
        if abort:
            await context.abort(getattr(grpc.StatusCode, abort), "aborted on request")
        if code is not None:
            context.set_code(code)
        return response  # type: ignore[return-value]


async def server_stream_async(request: bytes, context: Any) -> Any:
    for byte in request:
        with _tracer.start_as_current_span("handler-work"):
            yield bytes([byte])


async def client_stream_async(requests: Any, context: Any) -> bytes:
    with _tracer.start_as_current_span("handler-work"):
        return b"".join([request async for request in requests])


async def bidi_stream_async(requests: Any, context: Any) -> Any:
    async for request in requests:
        with _tracer.start_as_current_span("handler-work"):
            yield request.upper()


def handlers(aio: bool = False) -> Any:
    """The generic handler of the service (coroutine handlers for a grpc.aio server; a sync
    one there too, ``SyncUnary``, which grpc.aio runs on its thread pool)."""
    if aio:
        methods = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary_async),
            "SyncUnary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream_async),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream_async),
            "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream_async),
        }
    else:
        methods = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream),
        }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def serve(port: int = 0, interceptors: Any = ()) -> tuple[Any, int]:
    """A started sync server on 127.0.0.1 and its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         interceptors=interceptors)
    server.add_generic_rpc_handlers((handlers(),))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, port


async def serve_async(port: int = 0) -> tuple[Any, int]:
    """A started grpc.aio server on 127.0.0.1 and its port."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(aio=True),))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, port


if __name__ == "__main__":
    running, bound = serve(int(sys.argv[1]) if len(sys.argv) > 1 else 50051)
    print(f"serving {SERVICE} on 127.0.0.1:{bound}", flush=True)
    running.wait_for_termination()
