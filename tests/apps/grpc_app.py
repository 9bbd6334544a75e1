"""A gRPC server and its client in one program that knows nothing of telemetryflow.

First it records a span and waits until the OTLP/gRPC exporter (when one is configured) has
imported grpc on its export thread, so the gRPC patches are applied there, inside that
import; then it serves ``tf.test.Echo`` (``grpc_echo.py``) and calls it: a unary call, a
server-streaming call and a call the server aborts with NOT_FOUND, inside a span of its own
("client-work"), with ``authorization`` metadata that must never be recorded. Prints the
answers.

Run by hand: ``telemetryflow-run python tests/apps/grpc_app.py``.
"""

import sys
import time

from opentelemetry import trace

tracer = trace.get_tracer("grpc_app")

with tracer.start_as_current_span("warm-up"):
    pass
deadline = time.monotonic() + 10
while "grpc._channel" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.02)  # (no exporter configured: nothing imports grpc, go on after 10 s)
print("grpc imported by the exporter first:", "grpc._channel" in sys.modules, flush=True)

import grpc  # noqa: E402
import grpc_echo  # noqa: E402  (next to this file)

server, port = grpc_echo.serve()
secret = (("authorization", "Bearer app-s3cr3t-4471"),)
with grpc.insecure_channel(f"localhost:{port}") as channel, \
        tracer.start_as_current_span("client-work"):
    print(channel.unary_unary(f"/{grpc_echo.SERVICE}/Unary")(b"hello", metadata=secret))
    stream = channel.unary_stream(f"/{grpc_echo.SERVICE}/ServerStream")
    print(list(stream(b"ok", metadata=secret)))
    try:
        channel.unary_unary(f"/{grpc_echo.SERVICE}/Unary")(b"abort:NOT_FOUND")
    except grpc.RpcError as error:
        print(error.code())
server.stop(None)
