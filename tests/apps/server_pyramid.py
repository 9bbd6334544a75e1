"""A Pyramid app for the server-instrumentation tests; run it by hand with
``telemetryflow-run python tests/apps/server_pyramid.py`` (wsgiref, ``PORT`` or 6543) or
``telemetryflow-run gunicorn tests.apps.server_pyramid:app``, and open
http://127.0.0.1:6543/items/7.

Views answer with the ids of the span current while they run (``X-Trace-Context``), so a
test can tell that they ran inside the request's server span. ``create_traversal_app()`` builds one
that finds its views by traversal alone (no routes).
"""

from __future__ import annotations

import os

from opentelemetry import trace
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPNotFound, HTTPServiceUnavailable
from pyramid.response import Response


def _current() -> str:
    """``{trace id}-{span id}`` of the span current while the view runs."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}"


class PaymentFailed(Exception):
    """An application error an exception view of its own answers with a 502."""


def item(request) -> Response:
    response = Response(json_body={"item_id": request.matchdict["item_id"]})
    response.headers["X-Trace-Context"] = _current()
    return response


def hello(request) -> Response:
    return Response(f"hello {request.matchdict['name']}")


def status(request) -> Response:
    code = int(request.matchdict["code"])
    return Response(f"status {code}", status=code)


def errors(request) -> Response:
    kind = request.matchdict["kind"]
    if kind == "value":
        raise ValueError("boom from pyramid")  # no exception view: escapes to the server
    if kind == "unavailable":
        raise HTTPServiceUnavailable("try later")
    if kind == "notfound":
        raise HTTPNotFound()
    if kind == "payment":
        raise PaymentFailed("card declined")
    return Response("no such error")


def payment_failed(exc, request) -> Response:
    response = Response("payment failed", status=502)
    response.headers["X-Trace-Context"] = _current()
    return response


def healthz(request) -> Response:
    return Response("ok")


def create_app():
    with Configurator() as config:
        config.add_route("item", "/items/{item_id}")
        config.add_route("hello", "hello/{name}")  # (no leading slash: Pyramid allows it)
        config.add_route("status", r"/status/{code:\d+}")
        config.add_route("errors", "/errors/{kind}")
        config.add_route("healthz", "/healthz")
        config.add_view(item, route_name="item")
        config.add_view(hello, route_name="hello")
        config.add_view(status, route_name="status")
        config.add_view(errors, route_name="errors")
        config.add_view(healthz, route_name="healthz")
        config.add_exception_view(payment_failed, context=PaymentFailed)
        return config.make_wsgi_app()


class Root:
    """The traversal root: ``/`` and ``/anything`` (a view name) answer."""

    def __getitem__(self, name: str):
        raise KeyError(name)


def create_traversal_app():
    with Configurator(root_factory=lambda request: Root()) as config:
        config.add_view(lambda request: Response("root"), context=Root)
        config.add_view(lambda request: Response("about"), context=Root, name="about")
        return config.make_wsgi_app()


app = create_app()

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    with make_server("127.0.0.1", int(os.environ.get("PORT", "6543")), app) as server:
        server.serve_forever()
