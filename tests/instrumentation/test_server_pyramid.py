"""The Pyramid integration against real Pyramid (werkzeug's test client, and werkzeug's
server on loopback): spans named by the matched route's pattern, attributes, trace
continuation, views running inside the span, exception views, traversal, metrics,
exclusions, header capture, the sampler's cheap path, one span under an outer layer.
(The registry entry's fresh-interpreter scenarios are in test_server_falcon.py.)"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.serving import make_server
from werkzeug.test import Client, TestResponse

from telemetryflow_bootstrap.instrumentation import _served_app
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware

from ..apps.server_pyramid import create_app, create_traversal_app
from .server_fixtures import PARENT_ID, TRACE_ID, TRACEPARENT, ServerTelemetry
from .test_server_falcon import new_telemetry, patch_environment

_lock = threading.Lock()
_telemetry: ServerTelemetry | None = None


@pytest.fixture
def telemetry() -> ServerTelemetry:
    """Pyramid patched (once per process), the exporters emptied for this test."""
    global _telemetry
    with _lock:
        if _telemetry is None:
            import pyramid.router

            from telemetryflow_bootstrap.instrumentation import pyramid as ours

            _telemetry = new_telemetry()
            with patch_environment():
                ours.patch(pyramid.router, _telemetry.context)
    _telemetry.exporter.clear()
    _telemetry.reader.get_metrics_data()
    return _telemetry


@pytest.fixture
def client(telemetry: ServerTelemetry) -> Client:
    return Client(create_app())


def get(client: Client, path: str, **kwargs: Any) -> TestResponse:
    response = client.get(path, **kwargs)
    response.get_data()
    response.close()  # as every WSGI server does
    return response


def ran_inside(response: TestResponse, span: Any) -> bool:
    """The view ran with ``span`` current (its ``X-Trace-Context`` names it)."""
    return response.headers["X-Trace-Context"] == \
        f"{span.context.trace_id:032x}-{span.context.span_id:016x}"


def test_span_is_named_by_the_route_pattern(telemetry, client):
    """One SERVER span ``GET /items/{item_id}`` with the semantic-convention attributes (the
    signature redacted, configured headers captured, Authorization REDACTED), the view
    running with it current."""
    response = get(client, "/items/7?sig=s3cr3t&page=2", headers={
        "User-Agent": "probe/1.0", "X-Request-Id": "r-1", "Authorization": "Bearer t0ken"},
        environ_overrides={"REMOTE_ADDR": "10.1.2.3"})
    assert response.json == {"item_id": "7"}
    span = telemetry.one_server_span()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert ran_inside(response, span)
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/items/7",
        "url.query": "sig=REDACTED&page=2", "server.address": "localhost",
        "server.port": 80, "network.protocol.version": "1.1",
        "user_agent.original": "probe/1.0", "client.address": "10.1.2.3",
        "http.route": "/items/{item_id}", "http.response.status_code": 200,
        "http.request.header.x-request-id": ("r-1",),
        "http.request.header.authorization": ("REDACTED",),
        "http.response.header.x-trace-context": (response.headers["X-Trace-Context"],),
    }
    assert "t0ken" not in repr(span.attributes)


def test_continues_the_incoming_traceparent(telemetry, client):
    """The server span is a child of the caller's span named in ``traceparent``."""
    get(client, "/items/1", headers={"traceparent": TRACEPARENT})
    span = telemetry.one_server_span()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_route_gets_a_leading_slash_and_the_script_name(telemetry, client):
    """A pattern added without a leading ``/`` is reported with one, as Pyramid matches
    it; an app mounted under ``SCRIPT_NAME`` has it in front of the route."""
    assert get(client, "/hello/ann").text == "hello ann"
    assert get(client, "/api/items/2", environ_overrides={"SCRIPT_NAME": "/api",
                                                           "PATH_INFO": "/items/2"}).json \
        == {"item_id": "2"}
    assert sorted(s.name for s in telemetry.server_spans()) == ["GET /api/items/{item_id}",
                                                                 "GET /hello/{name}"]


@pytest.mark.parametrize(("path", "status_code", "error_type"), [
    ("/errors/unavailable", 503, "pyramid.httpexceptions.HTTPServiceUnavailable"),
    ("/errors/payment", 502, "tests.apps.server_pyramid.PaymentFailed"),
    ("/status/503", 503, "503"),
    ("/errors/notfound", 404, None),
    ("/status/404", 404, None),
])
def test_exception_views_keep_their_status(telemetry, client, path, status_code, error_type):
    """An exception an exception view answers (Pyramid's own for HTTP exceptions, the app's)
    keeps the response's status: a 5xx is an ERROR named after the exception's class (an
    exception event with it), a 4xx no error; the route stays."""
    assert get(client, path).status_code == status_code
    span = telemetry.one_server_span()
    assert span.attributes["http.response.status_code"] == status_code
    assert span.name.startswith("GET /")
    assert span.attributes.get("error.type") == error_type
    if error_type is None:
        assert span.status.status_code is StatusCode.UNSET
        assert list(span.events) == []
    else:
        assert span.status.status_code is StatusCode.ERROR
        exceptions = [e.attributes["exception.type"] for e in span.events]
        assert exceptions == ([] if error_type == "503" else [error_type])


def test_exception_view_runs_inside_the_span(telemetry, client):
    """The exception view, like the view, runs with the request's span current."""
    response = get(client, "/errors/payment")
    assert ran_inside(response, telemetry.one_server_span())


def test_unhandled_exception_propagates_unchanged(telemetry, client):
    """An exception no exception view answers reaches the server as it was, and the span
    (route kept, no status code) records it."""
    with pytest.raises(ValueError, match="boom from pyramid"):
        client.get("/errors/value")
    span = telemetry.one_server_span()
    assert span.name == "GET /errors/{kind}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert "http.response.status_code" not in span.attributes


def test_unrouted_and_traversal_requests_are_named_by_their_method(telemetry, client):
    """No route matched (a 404), or an app that finds its views by traversal: ``GET``
    alone, no ``http.route``."""
    assert get(client, "/no/such/page").status_code == 404
    assert get(Client(create_traversal_app()), "/about").text == "about"
    spans = {s.attributes["url.path"]: s for s in telemetry.server_spans()}
    assert [spans[p].name for p in ("/no/such/page", "/about")] == ["GET", "GET"]
    assert not any("http.route" in s.attributes for s in spans.values())
    assert spans["/about"].attributes["http.response.status_code"] == 200


def test_duration_metric_carries_the_route(telemetry, client):
    """One histogram point per (method, route, status, scheme[, error.type]), never the path."""
    for item in ("a", "b"):
        get(client, f"/items/{item}")
    get(client, "/errors/unavailable")
    points = {tuple(sorted(p.attributes.items())): p.count for p in telemetry.duration_points()}
    assert points == {
        (("http.request.method", "GET"), ("http.response.status_code", 200),
         ("http.route", "/items/{item_id}"), ("url.scheme", "http")): 2,
        (("error.type", "pyramid.httpexceptions.HTTPServiceUnavailable"),
         ("http.request.method", "GET"), ("http.response.status_code", 503),
         ("http.route", "/errors/{kind}"), ("url.scheme", "http")): 1,
    }


def test_excluded_url_gets_no_span_and_no_metric(telemetry, client):
    """``/healthz`` (excluded) is served normally without span or point."""
    assert get(client, "/healthz").text == "ok"
    assert telemetry.spans() == []
    assert telemetry.duration_points() == []


def test_unsampled_request_takes_the_cheap_path(telemetry, client):
    """An unsampled ``traceparent``: no span exported, the duration point still recorded
    with the route, and the view runs in the caller's (unsampled) trace."""
    response = get(client, "/items/9", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    assert response.status_code == 200
    assert telemetry.spans() == []
    assert response.headers["X-Trace-Context"].startswith(TRACE_ID)
    [point] = telemetry.duration_points()
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "http.route": "/items/{item_id}",
                                      "http.response.status_code": 200}


def test_pyramid_inside_an_outer_layer_makes_one_span_with_the_route(telemetry):
    """A server patch hands Pyramid apps back unwrapped; a user's middleware around one is
    wrapped, and that outer layer's one span learns the route and the answered error."""
    app = create_app()
    assert _served_app.wsgi(app, telemetry.context, "gunicorn") is app

    def user_middleware(environ, start_response):
        return app(environ, start_response)

    served = _served_app.wsgi(user_middleware, telemetry.context, "gunicorn")
    assert isinstance(served, TelemetryWSGIMiddleware)
    client = Client(served)
    get(client, "/items/3")
    get(client, "/errors/payment")
    spans = {s.attributes["url.path"]: s for s in telemetry.server_spans()}
    assert len(telemetry.server_spans()) == 2
    assert spans["/items/3"].name == "GET /items/{item_id}"
    assert spans["/errors/payment"].attributes["error.type"] == \
        "tests.apps.server_pyramid.PaymentFailed"


@pytest.fixture
def served(telemetry: ServerTelemetry) -> Iterator[int]:
    """The Pyramid app on werkzeug's threaded server (no patch of ours) on a loopback port."""
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_a_server_we_do_not_patch_serves_it_with_spans(telemetry, served):
    """Served by werkzeug (not a server we patch): route-named spans, traceparent continued,
    one per request."""
    for _ in range(2):
        connection = http.client.HTTPConnection("127.0.0.1", served, timeout=10)
        connection.request("GET", "/items/4", headers={"traceparent": TRACEPARENT})
        assert connection.getresponse().read() == b'{"item_id":"4"}'
        connection.close()
    # (the server's thread ends each span once the body is out: maybe after we read it)
    deadline = time.monotonic() + 10
    while len(telemetry.server_spans()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    spans = telemetry.server_spans()
    assert [s.name for s in spans] == ["GET /items/{item_id}"] * 2
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert spans[0].attributes["server.port"] == served
