"""A FastAPI app whose requests end without finishing: clients that go away while a handler
works, a server stopping with requests in flight, and the application's own timeouts and
cancellations that escape its handlers.

Run it by hand with ``telemetryflow-run uvicorn tests.apps.asgi_cancel_app:app`` (add
``--timeout-graceful-shutdown 1`` and press Ctrl-C while ``/slow`` runs to see a request
the server cancels), or as a program that starts uvicorn itself:
``telemetryflow-run python tests/apps/asgi_cancel_app.py 8000 [graceful-timeout]``.
"""

from __future__ import annotations

import asyncio

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

app = FastAPI()


def _working(path: str) -> None:
    """One line on stdout once a handler is under way (tests wait for it before they leave
    or stop the server)."""
    print(f"working {path}", flush=True)


@app.get("/slow")
async def slow(seconds: float = 3.0) -> PlainTextResponse:
    """Works for ``seconds`` before it answers (a client with a shorter timeout leaves)."""
    _working("/slow")
    await asyncio.sleep(seconds)
    return PlainTextResponse("done")


@app.get("/watch")
async def watch(request: Request) -> PlainTextResponse:
    """Works until its client goes away, polling ``is_disconnected`` as the Starlette docs
    suggest for long requests, then gives up and answers nobody (a 499 by convention)."""
    _working("/watch")
    for _ in range(300):
        if await request.is_disconnected():
            return PlainTextResponse("client gone", status_code=499)
        await asyncio.sleep(0.02)
    return PlainTextResponse("done")


@app.get("/stream/late")
async def stream_late() -> StreamingResponse:
    """A stream whose first chunk takes long: its 200 has gone out before the client
    leaves."""
    async def chunks():
        _working("/stream/late")
        await asyncio.sleep(3)
        yield b"late\n"

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/timeout/asyncio")
async def timeout_asyncio() -> PlainTextResponse:
    """``asyncio.wait_for`` around work that takes too long: its ``TimeoutError`` escapes."""
    await asyncio.wait_for(asyncio.sleep(5), timeout=0.05)
    return PlainTextResponse("never")


@app.get("/timeout/anyio")
async def timeout_anyio() -> PlainTextResponse:
    """``anyio.fail_after`` around work that takes too long: its ``TimeoutError`` escapes."""
    with anyio.fail_after(0.05):
        await anyio.sleep(5)
    return PlainTextResponse("never")


@app.get("/cancelled/inner")
async def cancelled_inner() -> PlainTextResponse:
    """Awaits a task the application cancels itself (a shared lookup another request
    abandoned): ``CancelledError`` escapes the handler though nobody cancelled the request."""
    task = asyncio.create_task(asyncio.sleep(5))
    await asyncio.sleep(0.01)
    task.cancel()
    await task
    return PlainTextResponse("never")


if __name__ == "__main__":
    import sys

    import uvicorn

    graceful = float(sys.argv[2]) if len(sys.argv) > 2 else None
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), timeout_graceful_shutdown=graceful)
