"""A program that knows nothing of telemetryflow: an aiohttp server whose ``/hop`` handler
fetches ``/items/{id}`` from the same server with an aiohttp client; the program calls
``/hop`` once, prints the answer and stops the server.

Run by hand: ``telemetryflow-run python tests/apps/aiohttp_app.py``.
"""

import asyncio

import aiohttp
from aiohttp import web

PORT = web.AppKey("port", int)


async def item(request: web.Request) -> web.Response:
    return web.Response(text=f"item {request.match_info['id']}")


async def hop(request: web.Request) -> web.Response:
    url = f"http://127.0.0.1:{request.app[PORT]}/items/7"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return web.Response(text=f"hop -> {await response.text()}")


async def main() -> None:
    app = web.Application()
    app.router.add_get("/items/{id}", item)
    app.router.add_get("/hop", hop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app[PORT] = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{app[PORT]}/hop") as response:
            print(response.status, await response.text())
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
