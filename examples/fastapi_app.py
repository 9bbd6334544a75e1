"""A small FastAPI app that knows nothing about telemetryflow.

    telemetryflow-run --service-name catalog python examples/fastapi_app.py
    curl localhost:8000/items/1

or with uvicorn's own command line (the launcher execs it, so uvicorn keeps the PID and the
signals)::

    telemetryflow-run uvicorn examples.fastapi_app:app --port 8000

Each request becomes a server span; the ``httpx`` call in ``/items/{id}/price`` a client span
in the same trace. ``PORT`` picks the port (default 8000).
"""

from __future__ import annotations

import asyncio
import logging
import os

from fastapi import FastAPI, HTTPException

app = FastAPI(title="catalog")
log = logging.getLogger("catalog")

_ITEMS = {1: {"id": 1, "name": "teapot", "price": 12.5}}


@app.get("/")
async def index() -> dict[str, str]:
    return {"status": "up"}


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> dict[str, object]:
    item = _ITEMS.get(item_id)
    if item is None:
        log.warning("item %s not found", item_id)
        raise HTTPException(status_code=404, detail="no such item")
    await asyncio.sleep(0.005)  # pretend to look it up
    log.info("item %s read", item_id)
    return item


@app.get("/items/{item_id}/price")
async def get_price(item_id: int) -> dict[str, object]:
    import httpx  # an outgoing call that joins the request's trace

    port = os.environ.get("PORT", "8000")
    async with httpx.AsyncClient(timeout=5) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/items/{item_id}")
    if answer.status_code != 200:
        raise HTTPException(status_code=answer.status_code, detail="lookup failed")
    return {"id": item_id, "price": answer.json()["price"]}


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(
        app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000"))
    )
