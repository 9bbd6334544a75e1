"""A program that knows nothing of telemetryflow: a tornado server whose ``/hop`` handler
fetches ``/items/<id>`` from the same server with ``AsyncHTTPClient``; the program calls
``/hop`` once, prints the answer and stops the server.

Run by hand: ``telemetryflow-run python tests/apps/tornado_app.py``.
"""

import asyncio

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web


class Item(tornado.web.RequestHandler):
    def get(self, item: str) -> None:
        self.write(f"item {item}")


class Hop(tornado.web.RequestHandler):
    async def get(self) -> None:
        url = f"http://127.0.0.1:{self.settings['port']}/items/7"
        response = await tornado.httpclient.AsyncHTTPClient().fetch(url)
        self.write(f"hop -> {response.body.decode()}")


async def main() -> None:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    app = tornado.web.Application([(r"/items/([0-9]+)", Item), (r"/hop", Hop)], port=port)
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        # (a blocking urllib call from the event loop's thread would stall the server)
        response = await tornado.httpclient.AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/hop")
        print(response.code, response.body.decode())
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
