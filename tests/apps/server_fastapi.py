"""A FastAPI app for the server-instrumentation tests; run it by hand with
``telemetryflow-run uvicorn tests.apps.server_fastapi:app`` and open
http://127.0.0.1:8000/items/7."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI, HTTPException, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse


def create_app() -> FastAPI:
    app = FastAPI()
    api = APIRouter(prefix="/api")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @api.get("/users/{user_id}")
    def user(user_id: str) -> dict[str, str]:
        return {"user_id": user_id}

    @app.get("/status/{code}")
    async def status(code: int) -> PlainTextResponse:
        if code == 404:
            raise HTTPException(status_code=404)
        return PlainTextResponse(f"status {code}", status_code=code)

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError("boom from fastapi")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for i in range(3):
                await asyncio.sleep(0.05)
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/stream/fail")
    async def stream_fail() -> StreamingResponse:
        """A 200 whose body breaks after its first chunk."""
        async def chunks():
            yield b"chunk 0\n"
            raise RuntimeError("stream broke")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/healthz")
    async def healthz() -> str:
        return "ok"

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    sub = FastAPI()

    @sub.get("/deep/{x}")
    async def deep(x: str) -> dict[str, str]:
        return {"x": x}

    app.include_router(api)
    app.mount("/sub", sub)
    return app


app = create_app()
