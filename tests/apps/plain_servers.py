"""Applications of no framework we have an integration for, for the server-level patches:
a plain WSGI callable, a plain ASGI 3 callable, and one served by ``wsgiref`` in-process
(``python plain_servers.py PORT N``: serves N requests, then exits)."""

from __future__ import annotations

import sys


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/fail":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"failed"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain wsgi"]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status = 500 if scope["path"] == "/fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"plain asgi"})


if __name__ == "__main__":
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    port, count = int(sys.argv[1]), int(sys.argv[2])
    with make_server("127.0.0.1", port, wsgi_app, handler_class=_Quiet) as server:
        for _ in range(count):
            server.handle_request()
