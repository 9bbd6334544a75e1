"""A FastAPI app exercising the corners of ASGI serving: streaming bodies that do work
(sqlite, outbound HTTP) while the server pulls them, Server-Sent Events, a file response,
background tasks, a websocket, a middleware that raises, request bodies, HEAD/OPTIONS.

Run it by hand with ``telemetryflow-run uvicorn tests.apps.server_asgi_hunt:app`` and open
http://127.0.0.1:8000/stream/sync, or as a program that starts uvicorn itself (it then has a
process span): ``telemetryflow-run python tests/apps/server_asgi_hunt.py 8000``.
``HUNT_DOWNSTREAM`` is the base URL the outbound calls go to (default: this server itself,
``http://127.0.0.1:8000``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import urllib.request

import httpx
from fastapi import APIRouter, BackgroundTasks, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse
from starlette.middleware.base import BaseHTTPMiddleware

_FILE = os.path.join(tempfile.gettempdir(), f"server_asgi_hunt_{os.getpid()}.txt")


def _downstream() -> str:
    return os.environ.get("HUNT_DOWNSTREAM", "http://127.0.0.1:8000")


def _query(label: str) -> None:
    with sqlite3.connect(":memory:") as connection:
        connection.execute(f"SELECT 1 AS {label}").fetchall()


async def _fail_later() -> None:
    """A background task that outlives its response, then fails."""
    await asyncio.sleep(0.2)
    raise LookupError("the background task failed")


class _RaisingMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        if request.url.path == "/middleware/boom":
            raise KeyError("from middleware")
        return await call_next(request)


def create_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(_RaisingMiddleware)
    api = APIRouter(prefix="/api/v1")

    @app.get("/plain")
    async def plain() -> PlainTextResponse:
        return PlainTextResponse("plain")

    @app.get("/stream/sync")
    def stream_sync() -> StreamingResponse:
        """A sync generator (run in a thread pool by Starlette) doing a query and an
        outbound call per chunk."""
        def chunks():
            for i in range(2):
                _query(f"sync_{i}")
                yield f"chunk {i}\n".encode()
            with urllib.request.urlopen(f"{_downstream()}/plain", timeout=10) as response:
                yield response.read() + b"\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/stream/async")
    async def stream_async() -> StreamingResponse:
        async def chunks():
            for i in range(2):
                _query(f"async_{i}")
                yield f"chunk {i}\n".encode()
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{_downstream()}/plain")
            yield response.content + b"\n"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/sse")
    async def sse() -> StreamingResponse:
        async def events():
            for i in range(3):
                await asyncio.sleep(0.01)
                yield f"data: {i}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/sse/endless")
    async def sse_endless() -> StreamingResponse:
        async def events():
            i = 0
            while True:
                yield f"data: {i}\n\n"
                i += 1
                await asyncio.sleep(0.02)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/file")
    def file() -> FileResponse:
        with open(_FILE, "w") as out:
            out.write("file body\n")
        return FileResponse(_FILE)

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> PlainTextResponse:
        tasks.add_task(_query, "background")
        return PlainTextResponse("scheduled")

    @app.get("/background/fail")
    async def background_fail(tasks: BackgroundTasks) -> PlainTextResponse:
        tasks.add_task(_fail_later)
        return PlainTextResponse("scheduled")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @api.get("/users/{name}")
    def user(name: str) -> dict[str, str]:
        return {"name": name}

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    @app.get("/status/{code}")
    async def status(code: int) -> PlainTextResponse:
        if code < 500:
            raise HTTPException(status_code=code)
        return PlainTextResponse(f"status {code}", status_code=code)

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("boom")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        _query("websocket")
        await websocket.send_text(f"echo {text}")
        await websocket.close()

    sub = FastAPI()

    @sub.get("/deep/{x}")
    async def deep(x: str) -> dict[str, str]:
        return {"x": x}

    app.include_router(api)
    app.mount("/sub", sub)
    return app


app = create_app()

if __name__ == "__main__":
    import sys

    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
