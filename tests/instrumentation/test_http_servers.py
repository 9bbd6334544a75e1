"""The WSGI server core and the Flask integration against real Flask (test client): span
names, attributes, trace continuation, streaming, errors, metrics, exclusions, header
capture, manual + automatic middleware, and failure isolation."""

from __future__ import annotations

import time

import flask
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.instrumentation._http_common import DURATION_BUCKETS
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware
from telemetryflow_bootstrap.middleware import FlaskTelemetryMiddleware, TelemetryMiddleware

from ..apps.server_flask import create_app
from .server_fixtures import PARENT_ID, TRACE_ID, TRACEPARENT, ServerTelemetry, server_telemetry

__all__ = ["server_telemetry"]


@pytest.fixture
def client(server_telemetry: ServerTelemetry) -> flask.testing.FlaskClient:
    return create_app().test_client()


def test_flask_span_name_kind_and_attributes(server_telemetry, client):
    """A routed request makes one SERVER span named after the route template, with the
    stable HTTP semantic-convention attributes and the signature redacted from the query."""
    response = client.get("/hello/ann?sig=s3cr3t&page=2", headers={"User-Agent": "probe/1.0"})
    assert response.get_data(as_text=True) == "hello ann"
    span = server_telemetry.one_server_span()
    assert span.name == "GET /hello/<name>"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope.name == "telemetryflow"
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/hello/ann",
        "url.query": "sig=REDACTED&page=2", "server.address": "localhost", "server.port": 80,
        "network.protocol.version": "1.1", "user_agent.original": "probe/1.0",
        "client.address": "127.0.0.1", "http.route": "/hello/<name>",
        "http.response.status_code": 200,
    }


def test_flask_continues_incoming_traceparent(server_telemetry, client):
    """The server span is a child of the caller's span named in ``traceparent``."""
    client.get("/hello/bob", headers={"traceparent": TRACEPARENT}).get_data()
    span = server_telemetry.one_server_span()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_request_without_traceparent_starts_a_new_trace(server_telemetry, client):
    """Without ``traceparent`` the server span is a root, even when the calling thread
    happens to have a span current."""
    tracer = server_telemetry.context.tracer
    with tracer.start_as_current_span("unrelated") as outer:
        client.get("/hello/cy").get_data()
    span = server_telemetry.one_server_span()
    assert span.parent is None
    assert span.context.trace_id != outer.get_span_context().trace_id


def test_flask_streaming_span_ends_after_the_body(server_telemetry, client):
    """A streamed body: the span is still open when the view has returned and ends only
    once the generator (sleeping 3 x 50 ms) has been consumed, so its duration covers it."""
    response = client.get("/stream")
    assert server_telemetry.server_spans() == []
    assert response.get_data(as_text=True) == "chunk 0\nchunk 1\nchunk 2\n"
    response.close()
    span = server_telemetry.one_server_span()
    assert span.name == "GET /stream"
    assert (span.end_time - span.start_time) / 1e9 >= 0.12


def test_work_inside_a_streaming_generator_is_a_child_of_the_server_span(server_telemetry):
    """Spans a streaming generator makes while the server pulls chunks are children of the
    server span, although they run after the view returned."""
    app = flask.Flask("streamer")
    tracer = server_telemetry.context.tracer

    @app.get("/gen")
    def gen() -> flask.Response:
        def chunks():
            with tracer.start_as_current_span("inside-generator"):
                yield "x"

        return flask.Response(chunks())

    app.test_client().get("/gen").get_data()
    spans = {s.name: s for s in server_telemetry.spans()}
    assert spans["inside-generator"].parent.span_id == spans["GET /gen"].context.span_id


def test_flask_exception_propagates_unchanged_with_error_span(server_telemetry):
    """With exceptions propagating (testing mode) the very exception reaches the caller and
    the span records it: exception event, ``error.type``, status ERROR."""
    app = create_app()
    app.testing = True
    with pytest.raises(ValueError, match="boom from flask") as raised:
        app.test_client().get("/boom")
    span = server_telemetry.one_server_span()
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["http.route"] == "/boom"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == str(raised.value)


def test_flask_exception_turned_into_500_is_recorded(server_telemetry, client):
    """In production mode Flask answers 500; the span still names the exception."""
    response = client.get("/boom")
    assert response.status_code == 500
    response.close()
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "ValueError"
    assert [e.name for e in span.events] == ["exception"]


def test_exception_mid_stream_after_a_200_is_an_error(server_telemetry, client):
    """A streamed body that raises after the 200 went out: the very exception reaches the
    server, and the span and the duration point record it (exception event, ``error.type``
    = its class, ERROR) next to the 200 that was sent: that response never completed."""
    response = client.get("/stream/fail")
    assert response.status_code == 200
    with pytest.raises(RuntimeError, match="stream broke"):
        response.get_data()
    response.close()
    span = server_telemetry.one_server_span()
    assert span.name == "GET /stream/fail"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["error.type"] == "RuntimeError"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == "stream broke"
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "http.route": "/stream/fail",
        "http.response.status_code": 200, "error.type": "RuntimeError"}


def test_generic_wsgi_body_that_raises_ends_the_span_with_the_error(server_telemetry):
    """``TelemetryWSGIMiddleware`` around a plain app whose body raises after a 201: the
    exception passes unchanged and ends the span as ERROR, before the server closes."""
    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain")])

        def chunks():
            yield b"one"
            raise OSError("disk gone")

        return chunks()

    wrapped = TelemetryWSGIMiddleware(app, client=server_telemetry.context)
    body = wrapped({"REQUEST_METHOD": "PUT", "PATH_INFO": "/f", "SERVER_NAME": "h",
                    "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
                   lambda status, headers, exc_info=None: None)
    chunks = iter(body)
    assert next(chunks) == b"one"
    with pytest.raises(OSError, match="disk gone"):
        next(chunks)
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "OSError"
    assert span.attributes["http.response.status_code"] == 201
    body.close()
    assert len(server_telemetry.server_spans()) == 1


def test_5xx_is_a_server_error_and_4xx_is_not(server_telemetry, client):
    """503 sets ERROR with ``error.type`` "503"; 404 (routed or not) leaves the status unset;
    an unrouted request is named by its method alone."""
    for path in ("/status/503", "/status/404", "/no/such/page"):
        client.get(path).close()
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    failed = spans["/status/503"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "503"
    not_found = spans["/status/404"]
    assert not_found.status.status_code is StatusCode.UNSET
    assert "error.type" not in not_found.attributes
    assert not_found.name == "GET /status/<int:code>"
    unrouted = spans["/no/such/page"]
    assert unrouted.name == "GET"
    assert "http.route" not in unrouted.attributes
    assert unrouted.attributes["http.response.status_code"] == 404


def test_unknown_method_is_reported_as_other(server_telemetry, client):
    """A method outside the known set is ``_OTHER`` (original kept) and names the span HTTP."""
    client.open("/purge", method="PURGE").close()
    span = server_telemetry.one_server_span()
    assert span.name == "HTTP /purge"
    assert span.attributes["http.request.method"] == "_OTHER"
    assert span.attributes["http.request.method_original"] == "PURGE"


def test_duration_metric_has_low_cardinality_attributes(server_telemetry, client):
    """One histogram point per (method, route, status, scheme), in seconds with the
    semantic-convention buckets, never the path or query, with exemplars of the requests'
    traces."""
    for name in ("a", "b", "c"):
        client.get(f"/hello/{name}?q={name}").close()
    client.get("/status/503").close()
    points = {tuple(sorted(p.attributes.items())): p for p in server_telemetry.duration_points()}
    hello = points[(("http.request.method", "GET"), ("http.response.status_code", 200),
                    ("http.route", "/hello/<name>"), ("url.scheme", "http"))]
    assert hello.count == 3
    assert tuple(hello.explicit_bounds) == DURATION_BUCKETS
    assert 0 < hello.sum < 5
    failed = points[(("error.type", "503"), ("http.request.method", "GET"),
                     ("http.response.status_code", 503), ("http.route", "/status/<int:code>"),
                     ("url.scheme", "http"))]
    assert failed.count == 1
    for attributes in points:
        assert not {"url.path", "url.query", "url.full"} & {k for k, _ in attributes}
    trace_ids = {span.context.trace_id for span in server_telemetry.server_spans()}
    assert hello.exemplars and {e.trace_id for e in hello.exemplars} <= trace_ids


def test_excluded_urls_get_no_span_and_no_metric(server_telemetry, client):
    """A URL matching the excluded patterns is served normally but makes no span and no
    metric point."""
    response = client.get("/healthz")
    assert response.get_data(as_text=True) == "ok"
    response.close()
    assert server_telemetry.spans() == []
    assert server_telemetry.duration_points() == []


def test_manual_and_automatic_middleware_make_one_span(server_telemetry):
    """``FlaskTelemetryMiddleware`` on an app that is also patched: one span per request."""
    app = create_app()
    middleware = FlaskTelemetryMiddleware(app, client=server_telemetry.context)
    assert app.wsgi_app is middleware
    app.test_client().get("/hello/dup").close()
    span = server_telemetry.one_server_span()
    assert span.name == "GET /hello/<name>"
    assert len(server_telemetry.duration_points()) == 1


def test_header_capture_redacts_credentials(server_telemetry, monkeypatch):
    """Configured request/response headers become attributes; Authorization, Cookie and
    Set-Cookie values are recorded as REDACTED."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
                       "x-request-id,authorization,cookie")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
                       "content-type,set-cookie")
    app = flask.Flask("headers")

    @app.get("/h")
    def h() -> flask.Response:
        response = flask.Response("h")
        response.set_cookie("session", "abc")
        return response

    FlaskTelemetryMiddleware(app, client=server_telemetry.context)
    client = app.test_client()
    client.set_cookie("a", "b")
    client.get("/h", headers={"X-Request-Id": "r-1", "Authorization": "Bearer t"}).close()
    attributes = server_telemetry.one_server_span().attributes
    assert attributes["http.request.header.x-request-id"] == ("r-1",)
    assert attributes["http.request.header.authorization"] == ("REDACTED",)
    assert attributes["http.request.header.cookie"] == ("REDACTED",)
    assert attributes["http.response.header.content-type"] == ("text/html; charset=utf-8",)
    assert attributes["http.response.header.set-cookie"] == ("REDACTED",)


def test_generic_wsgi_middleware_ends_span_on_close(server_telemetry):
    """``TelemetryWSGIMiddleware`` around a plain WSGI app: the span (named by the method,
    no route) ends when the server closes the body, and the body is passed on unchanged."""
    closed = []

    class Body:
        def __iter__(self):
            yield b"one"
            yield b"two"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("201 Created", [("Content-Type", "text/plain")])
        return Body()

    wrapped = TelemetryWSGIMiddleware(app, client=server_telemetry.context)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "SERVER_NAME": "example.org",
               "SERVER_PORT": "8080", "wsgi.url_scheme": "https",
               "SERVER_PROTOCOL": "HTTP/1.0", "REMOTE_ADDR": "10.0.0.9",
               "HTTP_X_FORWARDED_FOR": "203.0.113.7, 10.0.0.1"}
    statuses = []
    body = wrapped(environ, lambda status, headers, exc_info=None: statuses.append(status))
    chunks = [next(iter(body))]
    assert server_telemetry.spans() == []
    body.close()
    assert chunks == [b"one"] and statuses == ["201 Created"] and closed == [True]
    span = server_telemetry.one_server_span()
    assert span.name == "POST"
    assert span.attributes["server.address"] == "example.org"
    assert span.attributes["server.port"] == 8080
    assert span.attributes["url.scheme"] == "https"
    assert span.attributes["network.protocol.version"] == "1.0"
    assert span.attributes["client.address"] == "203.0.113.7"
    assert span.attributes["http.response.status_code"] == 201


@pytest.mark.parametrize("shape", ["list", "generator"])
@pytest.mark.parametrize("pull", ["for", "next"])
def test_generic_wsgi_body_ends_span_after_the_last_chunk(server_telemetry, shape, pull):
    """The body's chunks pass through unchanged and the span ends when they run out, whether
    the server loops over the body or calls ``next`` on it without ``iter`` first."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b"] if shape == "list" else (c for c in (b"a", b"b"))

    wrapped = TelemetryWSGIMiddleware(app, client=server_telemetry.context)
    body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "h",
                    "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
                   lambda status, headers, exc_info=None: None)
    if pull == "for":
        chunks = list(body)
    else:
        chunks = [next(body), next(body)]
        assert server_telemetry.spans() == []
        with pytest.raises(StopIteration):
            next(body)
    assert chunks == [b"a", b"b"]
    assert server_telemetry.one_server_span().attributes["http.response.status_code"] == 200


def test_failing_instrumentation_serves_the_request_uninstrumented(server_telemetry):
    """If our span cannot be started the application still answers, unchanged, and the
    failure is reported (once a minute)."""

    class BrokenTracer:
        def start_span(self, *args, **kwargs):
            raise RuntimeError("tracer exploded")

    _diagnostics.reset_for_tests()
    broken = PatchContext(tracer=BrokenTracer(), meter=None, logger_provider=None,
                          config=server_telemetry.context.config, handler=None)
    app = flask.Flask("broken")

    @app.get("/")
    def index() -> str:
        return "still here"

    FlaskTelemetryMiddleware(app, client=broken)
    response = app.test_client().get("/")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "still here")
    assert any("tracer exploded" in message for _, message in _diagnostics.recorded())


def test_core_start_and_end_request_for_other_frameworks(server_telemetry):
    """``TelemetryMiddleware.start_request``/``end_request`` make the same span by hand:
    current while the request runs, route-named, 500 as ERROR."""
    core = TelemetryMiddleware(server_telemetry.context)
    scope = core.start_request("GET", "/orders/42", route="/orders/{id}",
                               headers={"traceparent": TRACEPARENT, "Host": "shop:9000"})
    from opentelemetry import trace

    assert trace.get_current_span() is scope.span
    core.end_request(scope, status_code=500)
    assert trace.get_current_span() is not scope.span
    span = server_telemetry.one_server_span()
    assert span.name == "GET /orders/{id}"
    assert span.attributes["server.port"] == 9000
    assert span.status.status_code is StatusCode.ERROR
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_core_end_request_keeps_an_exception_answered_with_a_4xx_out(server_telemetry):
    """``end_request(scope, 404, error)``: the framework answered the exception with a 404,
    the client's error: no ERROR, no ``error.type``; with a 500 it is recorded."""
    core = TelemetryMiddleware(server_telemetry.context)
    for status in (404, 500):
        scope = core.start_request("GET", f"/lookup/{status}")
        core.end_request(scope, status_code=status, error=LookupError("missing"))
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    assert spans["/lookup/404"].status.status_code is StatusCode.UNSET
    assert "error.type" not in spans["/lookup/404"].attributes
    assert not spans["/lookup/404"].events
    assert spans["/lookup/500"].status.status_code is StatusCode.ERROR
    assert spans["/lookup/500"].attributes["error.type"] == "LookupError"


def test_streaming_duration_is_measured_to_the_last_chunk(server_telemetry, client):
    """The duration point of a streamed response covers the time spent producing the body."""
    started = time.perf_counter()
    client.get("/stream").get_data()
    elapsed = time.perf_counter() - started
    [point] = server_telemetry.duration_points()
    assert 0.12 <= point.sum <= elapsed + 0.01


def test_generic_middleware_around_patched_flask_learns_the_route(server_telemetry):
    """``TelemetryWSGIMiddleware`` around a patched Flask app makes the one span, and the
    Flask layer inside still tells it the route."""
    app = TelemetryWSGIMiddleware(create_app(), client=server_telemetry.context)
    from werkzeug.test import Client

    Client(app).get("/hello/outer").close()
    span = server_telemetry.one_server_span()
    assert span.name == "GET /hello/<name>"


def test_url_excluded_by_an_outer_middleware_stays_excluded_inside(server_telemetry,
                                                                   monkeypatch):
    """An outer middleware that excludes a URL marks the request, so the patched Flask app
    inside does not instrument it either."""
    monkeypatch.setenv("TELEMETRYFLOW_EXCLUDED_URLS", "/hello/quiet")
    app = TelemetryWSGIMiddleware(create_app())  # no client: reads the environment
    from werkzeug.test import Client

    assert Client(app).get("/hello/quiet").get_data() == b"hello quiet"
    assert server_telemetry.spans() == []
