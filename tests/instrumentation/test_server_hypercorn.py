"""The hypercorn patch against a real hypercorn (``hypercorn.asyncio.serve``) on loopback: a
plain ASGI application, and a plain WSGI one, get one SERVER span per request over HTTP/1.1
and HTTP/2 (status, errors, trace continuation, the application running inside the span);
FastAPI and Flask applications keep their own single span, also inside hypercorn's
``ProxyFixMiddleware`` and ``AsyncioWSGIMiddleware``; and the registry entry patches once,
whatever the import order (``hypercorn.asyncio`` imported first keeps a copy of
``wrap_app``), and can be disabled by name."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import fastapi
import flask
import httpx
import hypercorn.asyncio  # (imported before the patch: the copy of wrap_app it holds)
import hypercorn.utils
import pytest
from hypercorn.config import Config
from hypercorn.middleware import AsyncioWSGIMiddleware, ProxyFixMiddleware
from opentelemetry.trace import StatusCode

from telemetryflow_bootstrap.instrumentation import hypercorn as hypercorn_patch

from ..apps.plain_servers import wsgi_app as plain_wsgi_app
from ..apps.server_hypercorn import app as plain_app
from ..e2e.launcher import REPO
from ..otlp_receiver import free_port
from .server_fixtures import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    ServerTelemetry,
    no_client_spans,
    server_telemetry,
)

__all__ = ["server_telemetry"]


@pytest.fixture
def telemetry(server_telemetry: ServerTelemetry) -> ServerTelemetry:
    """hypercorn patched with the shared context (patching twice is a no-op)."""
    hypercorn_patch.patch(hypercorn.utils, server_telemetry.context)
    return server_telemetry


@contextlib.contextmanager
def serving(application: Any, mode: str | None = None) -> Iterator[int]:
    """``hypercorn.asyncio.serve(application)`` on a free loopback port, its event loop in a
    thread, stopped through its ``shutdown_trigger``."""
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = config.errorlog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await hypercorn.asyncio.serve(application, config, shutdown_trigger=stop.wait,
                                      mode=mode)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "hypercorn did not listen"
                time.sleep(0.02)
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def get(port: int, path: str, headers: dict[str, str] | None = None,
        http2: bool = False) -> httpx.Response:
    with no_client_spans(), httpx.Client(http1=not http2, http2=http2) as client:
        response = client.get(f"http://127.0.0.1:{port}{path}", headers=headers)
        response.read()
        return response


def ids(span: Any) -> str:
    return f"{span.context.trace_id:032x}-{span.context.span_id:016x}"


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_plain_application_gets_one_span_per_request(telemetry, http2):
    """Each request, HTTP/1.1 or HTTP/2 (prior knowledge), is one SERVER span named by its
    method, continuing the ``traceparent`` sent, the application running inside it."""
    with serving(plain_app) as port:
        response = get(port, "/ok?q=1", {"traceparent": TRACEPARENT}, http2=http2)
    version = "2" if http2 else "1.1"
    assert (response.status_code, response.text) == (200, version)
    span = telemetry.one_server_span()
    assert span.name == "GET"
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == \
        (TRACE_ID, PARENT_ID)
    assert response.headers["x-trace-context"] == ids(span)
    attributes = span.attributes
    assert attributes["network.protocol.version"] == version
    assert attributes["url.path"] == "/ok" and attributes["url.query"] == "q=1"
    assert attributes["server.port"] == port and attributes["client.address"] == "127.0.0.1"
    assert attributes["http.response.status_code"] == 200 and "error.type" not in attributes
    (point,) = telemetry.duration_points()
    assert point.attributes == {"http.request.method": "GET", "url.scheme": "http",
                                "http.response.status_code": 200}


def test_failures_are_recorded(telemetry):
    """A 500 the application answers is an ERROR named ``500``; an exception it raises (to
    which hypercorn answers its own 500, unseen) is an ERROR named after the exception."""
    with serving(plain_app) as port:
        assert get(port, "/fail").status_code == 500
        assert get(port, "/boom").status_code == 500
    raised, failed = sorted(telemetry.server_spans(), key=lambda s: s.attributes["url.path"])
    assert (failed.status.status_code, failed.attributes["error.type"]) == \
        (StatusCode.ERROR, "500")
    assert (raised.status.status_code, raised.attributes["error.type"]) == \
        (StatusCode.ERROR, "LookupError")
    assert "http.response.status_code" not in raised.attributes


@pytest.mark.parametrize("http2", [False, True], ids=["HTTP/1.1", "HTTP/2"])
def test_plain_wsgi_application_gets_its_span(telemetry, http2):
    """A WSGI application hypercorn serves (in its threads) gets its span too."""
    with serving(plain_wsgi_app, mode="wsgi") as port:
        assert get(port, "/ok", http2=http2).text == "plain wsgi"
        assert get(port, "/fail", http2=http2).status_code == 500
    spans = {s.attributes["url.path"]: s for s in telemetry.server_spans()}
    assert {path: s.attributes["http.response.status_code"] for path, s in spans.items()} == \
        {"/ok": 200, "/fail": 500}
    assert spans["/ok"].attributes["network.protocol.version"] == ("2" if http2 else "1.1")


def _fastapi_app() -> fastapi.FastAPI:
    app = fastapi.FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return app


def _flask_app() -> flask.Flask:
    app = flask.Flask("hypercorn_flask")
    app.add_url_rule("/hello/<name>", "hello", lambda name: f"hello {name}")
    return app


@pytest.mark.parametrize(("make", "mode", "path", "name"), [
    (_fastapi_app, None, "/items/7", "GET /items/{item_id}"),
    (lambda: ProxyFixMiddleware(_fastapi_app()), None, "/items/7", "GET /items/{item_id}"),
    (_flask_app, "wsgi", "/hello/h", "GET /hello/<name>"),
    (lambda: AsyncioWSGIMiddleware(_flask_app()), None, "/hello/h", "GET /hello/<name>"),
], ids=["fastapi", "proxy-fix-fastapi", "flask", "asgi-adapted-flask"])
def test_framework_application_keeps_its_one_span(telemetry, make, mode, path, name):
    """A framework application is left to its own integration, also inside hypercorn's own
    middlewares: one span per request, named by its route."""
    with serving(make(), mode=mode) as port:
        assert get(port, path).status_code == 200
    assert telemetry.one_server_span().name == name


def test_span_inside_proxy_fix_sees_the_restored_client(telemetry):
    """Our middleware goes inside ``ProxyFixMiddleware`` (which deep-copies the scope): the
    span has the client and scheme it restores, as the application does."""
    with serving(ProxyFixMiddleware(plain_app, mode="legacy", trusted_hops=1)) as port:
        response = get(port, "/ok", {"X-Forwarded-For": "203.0.113.9",
                                     "X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    span = telemetry.one_server_span()
    assert (span.attributes["client.address"], span.attributes["url.scheme"]) == \
        ("203.0.113.9", "https")
    assert response.headers["x-trace-context"] == ids(span)


_PROGRAM = textwrap.dedent("""
    import asyncio, json, sys
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import hypercorn.asyncio

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_http_servers, registry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    registry.arm(context, _catalog_http_servers.ENTRIES)
    import hypercorn.asyncio, hypercorn.utils
    if order == "twice":
        registry.arm(context, _catalog_http_servers.ENTRIES)
        from telemetryflow_bootstrap.instrumentation import hypercorn as patch
        patch.patch(hypercorn.utils, context)

    from hypercorn.config import Config
    from tests.apps.server_hypercorn import app
    from tests.otlp_receiver import free_port

    async def main():
        config, stop, port = Config(), asyncio.Event(), free_port()
        config.bind = [f"127.0.0.1:{port}"]
        server = asyncio.create_task(hypercorn.asyncio.serve(app, config,
                                                             shutdown_trigger=stop.wait))
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        writer.write(b"GET /ok HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        await reader.read()
        writer.close()
        stop.set()
        await server

    asyncio.run(main())
    print(json.dumps({"spans": [s.name for s in exporter.get_finished_spans()],
                      "status": registry.status()["hypercorn"][0]}))
""")


@pytest.mark.parametrize(("order", "disabled", "expected"), [
    ("import-first", "", {"spans": ["GET"], "status": "applied"}),
    ("twice", "", {"spans": ["GET"], "status": "applied"}),
    ("arm-first", "", {"spans": ["GET"], "status": "applied"}),
    ("arm-first", "hypercorn", {"spans": [], "status": "disabled"}),
])
def test_registry_entry(order, disabled, expected):
    """Imported before arming (``hypercorn.asyncio`` holding its copy of ``wrap_app``) or
    after, armed twice and patched again by hand: one span per request; disabled by name:
    none, and ``--info`` says so."""
    result = subprocess.run([sys.executable, "-c", _PROGRAM, order, disabled], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
