"""The Falcon integration against real Falcon (``falcon.testing``, WSGI and ASGI apps): spans
named by the URI template, attributes, trace continuation, the responder running inside the
span, HTTPError/HTTPStatus/uncaught exceptions, metrics, exclusions, header capture, the
sampler's cheap path, one span under an outer layer; and the registry entries of Falcon and
Pyramid in fresh interpreters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import falcon
import falcon.asgi
import falcon.testing
import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _served_app
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware

from ..apps.server_falcon import create_app, create_asgi_app
from ..side_by_side import run_scenarios
from .server_fixtures import PARENT_ID, TRACE_ID, TRACEPARENT, ServerTelemetry

# What the patches are built with (read once, at patch time, as the launcher's are).
CAPTURE = {"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "x-request-id,authorization",
           "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE": "x-trace-context"}


@contextlib.contextmanager
def patch_environment() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in CAPTURE}
    os.environ.update(CAPTURE)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def new_telemetry() -> ServerTelemetry:
    """In-memory exporters and a patch context excluding ``/healthz``."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    context = PatchContext(
        tracer=tracer_provider.get_tracer("telemetryflow"),
        meter=MeterProvider(metric_readers=[reader]).get_meter("telemetryflow"),
        logger_provider=None, config=TelemetryConfig(excluded_urls=("/healthz",)), handler=None)
    return ServerTelemetry(exporter, reader, context)


_lock = threading.Lock()
_telemetry: ServerTelemetry | None = None


@pytest.fixture
def telemetry() -> ServerTelemetry:
    """Falcon patched (once per process), the exporters emptied for this test."""
    global _telemetry
    with _lock:
        if _telemetry is None:
            import falcon.app

            from telemetryflow_bootstrap.instrumentation import falcon as ours

            _telemetry = new_telemetry()
            with patch_environment():
                ours.patch(falcon.app, _telemetry.context)
    _telemetry.exporter.clear()
    _telemetry.reader.get_metrics_data()
    return _telemetry


@pytest.fixture
def client(telemetry: ServerTelemetry) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app())


@pytest.fixture
def asgi_client(telemetry: ServerTelemetry) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_asgi_app())


def ran_inside(result: falcon.testing.Result, span: Any) -> bool:
    """The responder ran with ``span`` current (its ``X-Trace-Context`` names it)."""
    return result.headers["X-Trace-Context"] == \
        f"{span.context.trace_id:032x}-{span.context.span_id:016x}"


def test_wsgi_span_is_named_by_the_uri_template(telemetry, client):
    """One SERVER span ``GET /items/{item_id}`` with the semantic-convention attributes (the
    signature redacted, the configured headers captured, Authorization REDACTED), the
    responder running with it current."""
    result = client.simulate_get("/items/7", query_string="sig=s3cr3t&page=2", headers={
        "User-Agent": "probe/1.0", "X-Request-Id": "r-1", "Authorization": "Bearer t0ken"},
        remote_addr="10.1.2.3")
    assert result.json == {"item_id": "7"}
    span = telemetry.one_server_span()
    assert span.name == "GET /items/{item_id}"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert ran_inside(result, span)
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/items/7",
        "url.query": "sig=REDACTED&page=2", "server.address": "falconframework.org",
        "server.port": 80, "network.protocol.version": "1.1",
        "user_agent.original": "probe/1.0", "client.address": "10.1.2.3",
        "http.route": "/items/{item_id}", "http.response.status_code": 200,
        "http.request.header.x-request-id": ("r-1",),
        "http.request.header.authorization": ("REDACTED",),
        "http.response.header.x-trace-context": (result.headers["X-Trace-Context"],),
    }
    assert "t0ken" not in repr(span.attributes)


def test_wsgi_continues_the_incoming_traceparent(telemetry, client):
    """The server span is a child of the caller's span named in ``traceparent``."""
    client.simulate_get("/items/1", headers={"traceparent": TRACEPARENT})
    span = telemetry.one_server_span()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format(span.parent.span_id, "016x") == PARENT_ID


@pytest.mark.parametrize(("path", "status_code", "error_type"), [
    ("/errors/value", 500, "ValueError"),
    ("/errors/unavailable", 503, "falcon.errors.HTTPServiceUnavailable"),
    ("/errors/status", 503, "falcon.http_status.HTTPStatus"),
    ("/errors/payment", 502, "tests.apps.server_falcon.PaymentFailed"),
    ("/status/503", 503, "503"),
    ("/errors/notfound", 404, None),
    ("/status/404", 404, None),
])
def test_wsgi_answered_errors_keep_their_status(telemetry, client, path, status_code,
                                                error_type):
    """An exception Falcon answers (HTTPError, HTTPStatus, an error handler's, the default
    500) keeps the response's status: a 5xx is an ERROR named after the exception's class
    (an exception event with it), a 4xx no error at all; the route stays."""
    assert client.simulate_get(path).status_code == status_code
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


def test_wsgi_unrouted_request_is_named_by_its_method(telemetry, client):
    """A path no route matches: ``GET`` alone, no ``http.route``, a 404 that is no error."""
    assert client.simulate_get("/no/such/page").status_code == 404
    span = telemetry.one_server_span()
    assert span.name == "GET"
    assert "http.route" not in span.attributes
    assert span.status.status_code is StatusCode.UNSET


def test_wsgi_exception_escaping_falcon_propagates_unchanged(telemetry, client):
    """An error handler that re-raises: the very exception reaches the caller, and the span
    (route kept, no status code) records it."""
    with pytest.raises(LookupError, match="re-raised by its handler"):
        client.simulate_get("/errors/escape")
    span = telemetry.one_server_span()
    assert span.name == "GET /errors/{kind}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "LookupError"
    assert "http.response.status_code" not in span.attributes


def test_duration_metric_carries_the_route(telemetry, client):
    """One histogram point per (method, route, status, scheme[, error.type]), never the path."""
    for item in ("a", "b", "c"):
        client.simulate_get(f"/items/{item}")
    client.simulate_get("/errors/value")
    points = {tuple(sorted(p.attributes.items())): p.count for p in telemetry.duration_points()}
    assert points == {
        (("http.request.method", "GET"), ("http.response.status_code", 200),
         ("http.route", "/items/{item_id}"), ("url.scheme", "http")): 3,
        (("error.type", "ValueError"), ("http.request.method", "GET"),
         ("http.response.status_code", 500), ("http.route", "/errors/{kind}"),
         ("url.scheme", "http")): 1,
    }


def test_excluded_url_gets_no_span_and_no_metric(telemetry, client):
    """``/healthz`` (excluded) is served normally without span or point."""
    assert client.simulate_get("/healthz").text == "ok"
    assert telemetry.spans() == []
    assert telemetry.duration_points() == []


def test_unsampled_request_takes_the_cheap_path(telemetry, client):
    """An unsampled ``traceparent``: no span exported, the duration point still recorded
    with the route, and the responder runs in the caller's (unsampled) trace."""
    unsampled = f"00-{TRACE_ID}-{PARENT_ID}-00"
    result = client.simulate_get("/items/9", headers={"traceparent": unsampled})
    assert result.status_code == 200
    assert telemetry.spans() == []
    assert result.headers["X-Trace-Context"].startswith(TRACE_ID)
    [point] = telemetry.duration_points()
    assert dict(point.attributes) == {"http.request.method": "GET", "url.scheme": "http",
                                      "http.route": "/items/{item_id}",
                                      "http.response.status_code": 200}


def test_falcon_inside_an_outer_layer_makes_one_span_with_the_route(telemetry):
    """A server patch hands Falcon apps back unwrapped; a user's middleware around one is
    wrapped, and that outer layer's one span learns the route and the answered error."""
    app = create_app()
    assert _served_app.wsgi(app, telemetry.context, "gunicorn") is app

    def user_middleware(environ, start_response):
        return app(environ, start_response)

    served = _served_app.wsgi(user_middleware, telemetry.context, "gunicorn")
    assert isinstance(served, TelemetryWSGIMiddleware)
    client = falcon.testing.TestClient(served)
    client.simulate_get("/items/3")
    client.simulate_get("/errors/unavailable")
    spans = {s.attributes["url.path"]: s for s in telemetry.server_spans()}
    assert len(telemetry.server_spans()) == 2
    assert spans["/items/3"].name == "GET /items/{item_id}"
    assert spans["/errors/unavailable"].attributes["error.type"] == \
        "falcon.errors.HTTPServiceUnavailable"


def test_asgi_span_is_named_by_the_uri_template(telemetry, asgi_client):
    """``falcon.asgi.App``: the same route-named span, continuing ``traceparent``, with the
    responder running inside it."""
    result = asgi_client.simulate_get("/items/5", headers={"traceparent": TRACEPARENT})
    assert result.json == {"item_id": "5"}
    span = telemetry.one_server_span()
    assert span.name == "GET /items/{item_id}"
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert ran_inside(result, span)


@pytest.mark.parametrize(("path", "status_code", "error_type"), [
    ("/errors/value", 500, "ValueError"),
    ("/errors/unavailable", 503, "falcon.errors.HTTPServiceUnavailable"),
    ("/errors/payment", 502, "tests.apps.server_falcon.PaymentFailed"),
    ("/errors/notfound", 404, None),
])
def test_asgi_answered_errors_keep_their_status(telemetry, asgi_client, path, status_code,
                                                error_type):
    """Under ASGI too: a 5xx answer is an ERROR named after the exception, a 4xx none."""
    assert asgi_client.simulate_get(path).status_code == status_code
    span = telemetry.one_server_span()
    assert span.name == "GET /errors/{kind}"
    assert span.attributes["http.response.status_code"] == status_code
    assert span.attributes.get("error.type") == error_type
    assert span.status.status_code is (StatusCode.UNSET if error_type is None
                                       else StatusCode.ERROR)


def test_asgi_exception_escaping_falcon_propagates_unchanged(telemetry, asgi_client):
    """An ASGI error handler that re-raises: the exception reaches the caller, recorded."""
    with pytest.raises(LookupError):
        asgi_client.simulate_get("/errors/escape")
    span = telemetry.one_server_span()
    assert (span.name, span.attributes["error.type"]) == ("GET /errors/{kind}", "LookupError")
    assert span.status.status_code is StatusCode.ERROR


def test_asgi_lifespan_passes_through(telemetry):
    """Lifespan events reach Falcon untouched (its startup handlers run) and make no span."""
    started = []

    class Lifespan:
        async def process_startup(self, scope, event):
            started.append(scope["type"])

    async def serve() -> None:
        async with falcon.testing.ASGIConductor(app) as conductor:  # (runs the lifespan)
            await conductor.simulate_get("/nothing")

    app = falcon.asgi.App(middleware=[Lifespan()])
    asyncio.run(serve())
    assert started == ["lifespan"]
    assert [s.name for s in telemetry.server_spans()] == ["GET"]


# ----- the registry entries (falcon, pyramid), in fresh interpreters ---------------------------

_PROGRAM = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))
    if order == "import-first":
        import falcon, falcon.asgi, pyramid.router
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import registry
    from telemetryflow_bootstrap.instrumentation import _catalog_http_servers as s

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    entries = tuple(e for e in s.ENTRIES if e.name in ("falcon", "pyramid"))
    registry.arm(context, entries)
    if order == "twice":
        registry.arm(context, entries)
    import falcon, falcon.testing
    if order == "twice":  # a second patch call must not wrap a second time
        import falcon.app, pyramid.router
        from telemetryflow_bootstrap.instrumentation import falcon as f, pyramid as p
        f.patch(falcon.app, context)
        p.patch(pyramid.router, context)
    import falcon.asgi  # (after falcon: the entry patches the ASGI App when it comes)
    from werkzeug.test import Client
    from tests.apps.server_falcon import create_app, create_asgi_app
    from tests.apps.server_pyramid import create_app as pyramid_app

    falcon.testing.TestClient(create_app()).simulate_get("/items/1")
    falcon.testing.TestClient(create_asgi_app()).simulate_get("/items/2")
    Client(pyramid_app()).get("/items/3").close()
    print(json.dumps({
        "spans": sorted(f"{s.kind.name} {s.name}" for s in exporter.get_finished_spans()),
        "status": {n: st for n, (st, _) in registry.status().items()}}))
""")
_SCENARIOS = {"import-first": ("import-first", ""), "twice": ("twice", ""),
              "disabled": ("arm-first", "falcon,pyramid")}


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every scenario's outcome; the interpreters run side by side."""
    return run_scenarios(_PROGRAM, _SCENARIOS, timeout=60)


@pytest.mark.parametrize("scenario", ["import-first", "twice"])
def test_the_entries_patch_once_whatever_the_order(results: dict[str, Any],
                                                   scenario: str) -> None:
    """Imported before or after arming, even armed twice and patched again by hand: one
    route-named SERVER span per request, Falcon's WSGI and ASGI apps and Pyramid's."""
    assert results[scenario]["spans"] == ["SERVER GET /items/{item_id}"] * 3
    assert results[scenario]["status"] == {"falcon": "applied", "pyramid": "applied"}


def test_the_entries_disabled_by_name_leave_the_frameworks_alone(results: dict[str, Any]
                                                                 ) -> None:
    """Disabling ``falcon`` and ``pyramid`` by name: the apps answer, no spans."""
    assert results["disabled"]["spans"] == []
    assert results["disabled"]["status"] == {"falcon": "disabled", "pyramid": "disabled"}
