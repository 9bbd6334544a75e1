"""A Falcon app, WSGI (``app``) and ASGI (``asgi_app``), for the server-instrumentation
tests; run it by hand with ``telemetryflow-run python tests/apps/server_falcon.py``
(wsgiref, ``PORT`` or 8000), ``telemetryflow-run gunicorn tests.apps.server_falcon:app`` or
``telemetryflow-run uvicorn tests.apps.server_falcon:asgi_app``, and open
http://127.0.0.1:8000/items/7.

Responders answer with the ids of the span current while they run (``X-Trace-Context``),
so a test can tell that they ran inside the request's server span.
"""

from __future__ import annotations

import os

import falcon
import falcon.asgi
from opentelemetry import trace


def _current() -> str:
    """``{trace id}-{span id}`` of the span current while the view runs."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}"


class PaymentFailed(Exception):
    """An application error an error handler of its own answers with a 502."""


def _fail(kind: str) -> None:
    if kind == "value":
        raise ValueError("boom from falcon")
    if kind == "unavailable":
        raise falcon.HTTPServiceUnavailable(description="try later")
    if kind == "notfound":
        raise falcon.HTTPNotFound()
    if kind == "status":
        raise falcon.HTTPStatus(falcon.HTTP_503, text="status 503")
    if kind == "payment":
        raise PaymentFailed("card declined")
    if kind == "escape":
        raise LookupError("re-raised by its handler")


class Items:
    def on_get(self, req: falcon.Request, resp: falcon.Response, item_id: str) -> None:
        resp.media = {"item_id": item_id}
        resp.set_header("X-Trace-Context", _current())


class Status:
    def on_get(self, req: falcon.Request, resp: falcon.Response, code: int) -> None:
        resp.status = code
        resp.text = f"status {code}"


class Errors:
    def on_get(self, req: falcon.Request, resp: falcon.Response, kind: str) -> None:
        resp.set_header("X-Trace-Context", _current())
        _fail(kind)


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.text = "ok"


class AsyncItems:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     item_id: str) -> None:
        resp.media = {"item_id": item_id}
        resp.set_header("X-Trace-Context", _current())


class AsyncErrors:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response,
                     kind: str) -> None:
        _fail(kind)


def _payment_failed(req, resp, error, params) -> None:
    resp.status = falcon.HTTP_502
    resp.text = "payment failed"


async def _payment_failed_async(req, resp, error, params, **_) -> None:
    _payment_failed(req, resp, error, params)


def _reraise(req, resp, error, params, **_) -> None:
    raise error


async def _reraise_async(req, resp, error, params, **_) -> None:
    raise error


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/items/{item_id}", Items())
    app.add_route("/status/{code:int}", Status())
    app.add_route("/errors/{kind}", Errors())
    app.add_route("/healthz", Health())
    app.add_error_handler(PaymentFailed, _payment_failed)
    app.add_error_handler(LookupError, _reraise)
    return app


def create_asgi_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route("/items/{item_id}", AsyncItems())
    app.add_route("/errors/{kind}", AsyncErrors())
    app.add_error_handler(PaymentFailed, _payment_failed_async)
    app.add_error_handler(LookupError, _reraise_async)
    return app


app = create_app()
asgi_app = create_asgi_app()

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", int(os.environ.get("PORT", "8000")), app) as server:
        server.serve_forever()
