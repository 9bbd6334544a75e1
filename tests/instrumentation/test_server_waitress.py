"""The waitress patch against a real waitress server on loopback: a plain WSGI application
gets one SERVER span per request (status, errors, streaming, trace continuation, the
application running inside the span), the span sees what waitress's trusted-proxy handling
restores, a Flask application keeps its own single span, and the registry entry patches
once, whatever the import order, and can be disabled by name."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import flask
import pytest
import waitress.server
from opentelemetry.trace import StatusCode
from waitress import wasyncore

from telemetryflow_bootstrap.instrumentation import waitress as waitress_patch

from ..apps.server_waitress import app as plain_app
from ..e2e.launcher import REPO
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
    """waitress patched with the shared context (patching twice is a no-op)."""
    waitress_patch.patch(waitress.server, server_telemetry.context)
    return server_telemetry


@contextlib.contextmanager
def serving(application: Any, **adjustments: Any) -> Iterator[list[int]]:
    """A real waitress server for ``application`` on free loopback ports (one unless
    ``listen`` says more), its loop in a thread; the ports it listens on."""
    adjustments.setdefault("listen", "127.0.0.1:0")
    server = waitress.server.create_server(application, threads=2, **adjustments)
    sockets = server.map if hasattr(server, "effective_listen") else server._map
    stopped = threading.Event()

    def loop() -> None:  # (server.run() cannot be stopped from another thread)
        while not stopped.is_set():
            wasyncore.loop(timeout=0.05, map=sockets, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield [int(port) for _, port in getattr(server, "effective_listen", None)
               or [(None, server.effective_port)]]
    finally:
        stopped.set()
        thread.join(timeout=5)
        wasyncore.close_all(sockets)
        server.task_dispatcher.shutdown()


def get(port: int, path: str, headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, str], bytes]:
    with no_client_spans():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def ids(span: Any) -> str:
    return f"{span.context.trace_id:032x}-{span.context.span_id:016x}"


def test_plain_application_gets_one_span_per_request(telemetry):
    """Each request is one SERVER span named by its method (a plain callable knows no
    route), continuing the ``traceparent`` sent, with the application running inside it."""
    with serving(plain_app) as [port]:
        status, headers, body = get(port, "/ok?q=1", {"traceparent": TRACEPARENT})
    assert (status, body) == (200, b"127.0.0.1 http")
    span = telemetry.one_server_span()
    assert span.name == "GET"
    assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == \
        (TRACE_ID, PARENT_ID)
    assert headers["X-Trace-Context"] == ids(span)
    attributes = span.attributes
    assert attributes["url.path"] == "/ok" and attributes["url.query"] == "q=1"
    assert attributes["server.port"] == port and attributes["client.address"] == "127.0.0.1"
    assert attributes["http.response.status_code"] == 200
    assert attributes["network.protocol.version"] == "1.1"
    assert "error.type" not in attributes
    (point,) = telemetry.duration_points()
    assert point.attributes == {"http.request.method": "GET", "url.scheme": "http",
                                "http.response.status_code": 200}


def test_failures_are_recorded(telemetry):
    """A 500 the application answers is an ERROR named ``500``; an exception it raises (to
    which waitress answers its own 500) is an ERROR named after the exception."""
    with serving(plain_app) as [port]:
        assert get(port, "/fail")[0] == 500
        assert get(port, "/boom")[0] == 500
    raised, failed = sorted(telemetry.server_spans(), key=lambda s: s.attributes["url.path"])
    assert failed.attributes["url.path"] == "/fail"
    assert (failed.status.status_code, failed.attributes["error.type"]) == \
        (StatusCode.ERROR, "500")
    assert (raised.status.status_code, raised.attributes["error.type"]) == \
        (StatusCode.ERROR, "LookupError")
    assert [event.name for event in raised.events] == ["exception"]


def test_streamed_body_is_produced_inside_the_span(telemetry):
    """Every chunk of a streamed body comes with the request's span current, and the span
    ends once waitress has taken the last."""
    with serving(plain_app) as [port]:
        status, _, body = get(port, "/stream")
    assert (status, body) == (200, b"chunk 0 True\nchunk 1 True\nchunk 2 True\n")
    assert telemetry.one_server_span().attributes["http.response.status_code"] == 200


def test_span_sees_what_the_trusted_proxy_headers_restore(telemetry):
    """With ``trusted_proxy``, waitress's own proxy-headers middleware goes around ours: the
    span has the client and scheme the application sees, not the proxy's."""
    with serving(plain_app, trusted_proxy="127.0.0.1",
                 trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"}) as [port]:
        _, _, body = get(port, "/ok", {"X-Forwarded-For": "203.0.113.9",
                                       "X-Forwarded-Proto": "https"})
    assert body == b"203.0.113.9 https"
    attributes = telemetry.one_server_span().attributes
    assert (attributes["client.address"], attributes["url.scheme"]) == ("203.0.113.9", "https")


def test_flask_application_keeps_its_one_span(telemetry):
    """A Flask application is left to its own integration: one span, named by its route."""
    app = flask.Flask("waitress_flask")
    app.add_url_rule("/hello/<name>", "hello", lambda name: f"hello {name}")
    with serving(app) as [port]:
        assert get(port, "/hello/w")[2] == b"hello w"
    assert telemetry.one_server_span().name == "GET /hello/<name>"


def test_every_listening_socket_serves_the_application_in_one_span(telemetry):
    """Two ``listen`` addresses are two waitress servers built with the same application:
    each request through either is one span (never a middleware of ours inside another)."""
    with serving(plain_app, listen="127.0.0.1:0 127.0.0.1:0") as ports:
        assert len(ports) == 2
        for port in ports:
            assert get(port, "/ok")[0] == 200
    spans = telemetry.server_spans()
    assert sorted(s.attributes["server.port"] for s in spans) == sorted(ports)
    assert all(s.parent is None for s in spans)


def test_untrusted_forwarded_headers_are_not_believed(telemetry):
    """Without ``trusted_proxy`` waitress clears the ``X-Forwarded-*`` headers before the
    application sees them, and so before our span does: a client cannot name itself."""
    with serving(plain_app) as [port]:
        _, _, body = get(port, "/ok", {"X-Forwarded-For": "203.0.113.9"})
    assert body == b"127.0.0.1 http"
    assert telemetry.one_server_span().attributes["client.address"] == "127.0.0.1"


def test_a_one_chunk_body_keeps_its_content_length(telemetry):
    """waitress sets ``Content-Length`` for a one-item body of unknown length; wrapped, the
    application's response should go out as it would unwrapped."""
    def one_chunk(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"one"]

    with serving(one_chunk) as [port]:
        _, headers, body = get(port, "/")
    assert body == b"one"
    assert headers.get("Content-Length") == "3"


_PROGRAM = textwrap.dedent("""
    import json, sys, threading, urllib.request
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import waitress

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
    import waitress, waitress.server
    if order == "twice":
        registry.arm(context, _catalog_http_servers.ENTRIES)
        from telemetryflow_bootstrap.instrumentation import waitress as patch
        patch.patch(waitress.server, context)

    from tests.apps.server_waitress import app
    server = waitress.server.create_server(app, host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    urllib.request.urlopen(f"http://127.0.0.1:{server.effective_port}/ok").read()
    server.close()
    print(json.dumps({"spans": [s.name for s in exporter.get_finished_spans()],
                      "status": registry.status()["waitress"][0]}))
""")


@pytest.mark.parametrize(("order", "disabled", "expected"), [
    ("import-first", "", {"spans": ["GET"], "status": "applied"}),
    ("twice", "", {"spans": ["GET"], "status": "applied"}),
    ("arm-first", "waitress", {"spans": [], "status": "disabled"}),
])
def test_registry_entry(order, disabled, expected):
    """Imported before or after arming, armed twice and patched again by hand: one span per
    request; disabled by name: none, and ``--info`` says so."""
    result = subprocess.run([sys.executable, "-c", _PROGRAM, order, disabled], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
