"""Layers inside our middlewares that copy the ASGI scope or the WSGI environ (hypercorn's
``ProxyFixMiddleware`` deep-copies the scope; user middlewares do ``copy.deepcopy(scope)``,
``environ.copy()``): the request we keep there is copied as itself, so the copy still says
the request is instrumented (the framework inside adds no second span, only its route) and
the request is served, not failed with ``cannot pickle '_thread.lock' object``."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import flask
import pytest
from hypercorn.middleware import ProxyFixMiddleware
from opentelemetry.trace import StatusCode
from werkzeug.test import EnvironBuilder

from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware
from telemetryflow_bootstrap.middleware import REQUEST_KEY, SKIPPED

from .server_fixtures import server_telemetry

__all__ = ["server_telemetry"]


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope.get("scheme", "?").encode()})


def _deep_copying(app: Any) -> Any:
    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        copied = copy.deepcopy(scope)
        assert copied[REQUEST_KEY] is scope[REQUEST_KEY]  # the same request, not a copy
        await app(copied, receive, send)

    return middleware


def _request(app: Any, path: str = "/items/7", headers: list[tuple[bytes, bytes]] = ()
             ) -> list[dict[str, Any]]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": list(headers),
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


@pytest.mark.parametrize("inner", [
    lambda: ProxyFixMiddleware(_hello, mode="legacy", trusted_hops=1),
    lambda: _deep_copying(_hello),
], ids=["hypercorn-proxy-fix", "user-deepcopy"])
def test_a_layer_that_deep_copies_the_scope_is_served(server_telemetry, inner):
    """``TelemetryASGIMiddleware(ProxyFixMiddleware(app))`` and a user middleware doing
    ``copy.deepcopy(scope)``: the response goes out (ProxyFix's restored scheme included)
    and the one server span ends with its status."""
    app = TelemetryASGIMiddleware(inner(), client=server_telemetry.context)
    sent = _request(app, headers=[(b"x-forwarded-proto", b"https")])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200
    span = server_telemetry.one_server_span()
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET


def test_a_framework_inside_a_deep_copy_still_tells_the_route(server_telemetry):
    """Patched FastAPI inside a deep-copying layer inside our middleware: still one span
    (the copied scope says the request is ours), named with FastAPI's route."""
    import fastapi

    api = fastapi.FastAPI()

    @api.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app = TelemetryASGIMiddleware(_deep_copying(api), client=server_telemetry.context)
    sent = _request(app)
    assert sent[0]["status"] == 200
    assert server_telemetry.one_server_span().name == "GET /items/{item_id}"


def test_copies_of_an_excluded_request_keep_the_marker(server_telemetry):
    """An excluded URL's ``SKIPPED`` marker survives ``copy``/``deepcopy`` as itself (a
    layer inside compares it by identity)."""
    seen: list[Any] = []

    async def keep(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope[REQUEST_KEY])
        await _hello(scope, receive, send)

    app = TelemetryASGIMiddleware(_deep_copying(keep), client=server_telemetry.context)
    _request(app, path="/healthz")
    assert seen == [SKIPPED] and seen[0] is SKIPPED
    assert copy.copy(SKIPPED) is SKIPPED and copy.deepcopy(SKIPPED) is SKIPPED
    assert server_telemetry.server_spans() == []


def _deep_copy_but_streams(environ: dict[str, Any]) -> dict[str, Any]:
    # (a server's wsgi.input/wsgi.errors cannot be deep-copied whatever we do: a middleware
    # that deep-copies an environ leaves them out)
    streams = {key: environ[key] for key in ("wsgi.input", "wsgi.errors")}
    rest = {key: value for key, value in environ.items() if key not in streams}
    return {**copy.deepcopy(rest), **streams}


@pytest.mark.parametrize("copier", [dict.copy, copy.copy, _deep_copy_but_streams],
                         ids=["environ.copy", "copy.copy", "copy.deepcopy"])
def test_a_wsgi_layer_that_copies_the_environ_is_served(server_telemetry, copier):
    """A WSGI middleware handing a copy of the environ (shallow, or deep but for the
    streams) to a patched Flask application: the response goes out, one span, with Flask's
    route."""
    app = flask.Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> str:
        return str(item_id)

    def copying(environ: dict[str, Any], start_response: Any) -> Any:
        copied = copier(environ)
        assert copied[REQUEST_KEY] is environ[REQUEST_KEY]
        return app(copied, start_response)

    wrapped = TelemetryWSGIMiddleware(copying, client=server_telemetry.context)
    statuses: list[str] = []
    body = wrapped(EnvironBuilder("/items/7").get_environ(),
                   lambda status, headers, exc_info=None: statuses.append(status))
    try:
        assert b"".join(body) == b"7"
    finally:
        body.close()
    assert statuses == ["200 OK"]
    span = server_telemetry.one_server_span()
    assert span.name == "GET /items/<int:item_id>"
    assert span.attributes["http.response.status_code"] == 200
