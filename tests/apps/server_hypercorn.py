"""A plain ASGI application (no framework of ours) served by hypercorn, for the server-patch
tests; run it by hand with ``telemetryflow-run hypercorn -b 127.0.0.1:8000
tests.apps.server_hypercorn:app`` (``--workers 2`` too) or ``telemetryflow-run python
tests/apps/server_hypercorn.py`` (``hypercorn.asyncio.serve`` from the program, ``PORT`` or
8000; stops on SIGTERM or Ctrl-C), and open http://127.0.0.1:8000/ok.

Every response says which span was current while the application ran (``X-Trace-Context``:
``{trace id}-{span id}``) and which process served it (``X-Pid``).
"""

from __future__ import annotations

import asyncio
import os
import signal

from opentelemetry import trace


def _current() -> bytes:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}".encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/boom":
        raise LookupError("no such thing")  # hypercorn answers a 500 of its own
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"1"))
    status = 500 if path == "/fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"x-trace-context", _current()),
                            (b"x-pid", str(os.getpid()).encode())]})
    await send({"type": "http.response.body", "body": scope["http_version"].encode()})


async def _main() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{os.environ.get('PORT', '8000')}"]
    stop = asyncio.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(number, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    asyncio.run(_main())
