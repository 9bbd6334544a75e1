"""A middleware given a ``TelemetryFlowClient`` that is not initialized yet: building the
app before ``client.initialize()`` is a normal order (FastAPI builds its middleware stack at
the lifespan startup, before a lifespan handler runs; gunicorn initializes in post_fork), so
it is no error. The middleware uses that client's own providers from the first request
after ``initialize()``; a request before it is served untraced and said once — never sent to
the global OpenTelemetry providers (where it went, silently). Against the SDK's in-memory
exporters, with real Flask and a real ASGI application."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetryflow_bootstrap import _diagnostics, middleware
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides
from telemetryflow_bootstrap.middleware import TelemetryMiddleware


@dataclass
class Sdk:
    client: TelemetryFlowClient
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def exported(self) -> list[Any]:
        assert self.client.flush(2.0)
        return list(self.spans.get_finished_spans())

    def durations(self) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
                for m in sm.metrics if m.name == "http.server.request.duration"
                for p in m.data.data_points]


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """A client built and NOT initialized (the test initializes it when it means to)."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    config = TelemetryFlowBuilder().with_service("late-init").with_batch_settings(
        timeout_ms=20).build_config()
    client = TelemetryFlowClient(
        config, exporters=ExporterOverrides(spans, reader, InMemoryLogRecordExporter()),
        set_global=False)
    _diagnostics.reset_for_tests()
    middleware._said.clear()
    yield Sdk(client, spans, reader)
    client.shutdown(2.0)


@dataclass
class Globals:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader


@pytest.fixture
def global_providers() -> Iterator[Globals]:
    """Global OpenTelemetry providers that record, restored after: where the requests of a
    middleware with an uninitialized client used to go."""
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done,
             metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE._done)
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    trace._TRACER_PROVIDER_SET_ONCE._done = False
    metrics_internal._METER_PROVIDER_SET_ONCE._done = False
    trace.set_tracer_provider(tracer_provider)
    from opentelemetry import metrics

    metrics.set_meter_provider(meter_provider)
    yield Globals(spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done,
     metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE._done) = saved


def _warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("telemetryflow: warning:")]


def _request(core: TelemetryMiddleware, path: str = "/orders/7") -> None:
    scope = core.start_request("GET", path, route="/orders/{id}",
                               headers={"host": "shop.example:8080"})
    core.end_request(scope, 200)


def test_the_core_built_before_initialize_uses_that_clients_providers(
        sdk: Sdk, global_providers: Globals, capsys: pytest.CaptureFixture[str]) -> None:
    """TelemetryMiddleware(client) then client.initialize(): the request's server span
    and duration point go to the client's exporters, not the global providers, and
    nothing is said."""
    core = TelemetryMiddleware(sdk.client)
    sdk.client.initialize()
    _request(core)
    [span] = sdk.exported()
    assert (span.name, span.kind) == ("GET /orders/{id}", SpanKind.SERVER)
    assert [p.count for p in sdk.durations()] == [1]
    assert global_providers.spans.get_finished_spans() == ()
    assert _warnings(capsys) == []


def test_requests_before_initialize_are_served_untraced_and_said_once(
        sdk: Sdk, global_providers: Globals, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests while the client is still not initialized: served, untraced (nothing to
    the global providers either), one warning naming the problem and what to do; the
    first request after initialize() is traced."""
    core = TelemetryMiddleware(sdk.client)
    for _ in range(3):
        _request(core, "/early")
    [said] = _warnings(capsys)
    assert "TelemetryMiddleware" in said and "'late-init'" in said
    assert "not initialized" in said and "client.initialize()" in said
    assert global_providers.spans.get_finished_spans() == ()
    sdk.client.initialize()
    _request(core, "/late")
    assert [s.attributes["url.path"] for s in sdk.exported()] == ["/late"]
    assert _warnings(capsys) == []


def test_an_untraced_early_request_still_passes_its_callers_trace_on(sdk: Sdk) -> None:
    """While untraced, the request's context is the caller's (from traceparent), so what
    the application calls downstream stays in the caller's trace."""
    core = TelemetryMiddleware(sdk.client)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    scope = core.start_request("GET", "/early", headers={"traceparent": traceparent})
    try:
        current = trace.get_current_span().get_span_context()
        assert (format(current.trace_id, "032x"), format(current.span_id, "016x")) == (
            "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    finally:
        core.end_request(scope, 200)


def test_flask_middleware_added_before_initialize(sdk: Sdk,
                                                   global_providers: Globals) -> None:
    """FlaskTelemetryMiddleware(app, client) in an app factory, client.initialize() later
    (gunicorn's post_fork): the client's exporters get the Flask request's span."""
    flask = pytest.importorskip("flask")
    from telemetryflow_bootstrap.instrumentation.flask import FlaskTelemetryMiddleware

    app = flask.Flask("late")

    @app.route("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return f"order {order_id}"

    FlaskTelemetryMiddleware(app, sdk.client)
    sdk.client.initialize()
    response = app.test_client().get("/orders/7")
    assert response.status_code == 200 and response.data == b"order 7"
    [span] = sdk.exported()
    assert span.name == "GET /orders/<int:order_id>"
    assert span.attributes["http.response.status_code"] == 200
    assert global_providers.spans.get_finished_spans() == ()


def test_asgi_middleware_built_at_lifespan_startup_before_initialize(
        sdk: Sdk, global_providers: Globals) -> None:
    """The order of an ASGI app whose lifespan startup initializes the client (the
    middleware was built before): the HTTP request after it is traced by the client."""
    from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            sdk.client.initialize()
            await send({"type": "lifespan.startup.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = TelemetryASGIMiddleware(app, sdk.client)
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        async def startup() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def body() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, startup, send)
        await wrapped({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                       "method": "POST", "scheme": "http", "path": "/hooks",
                       "raw_path": b"/hooks", "query_string": b"", "root_path": "",
                       "headers": [(b"host", b"api.example")], "server": ("127.0.0.1", 80),
                       "client": ("127.0.0.1", 5000)}, body, send)

    asyncio.run(run())
    assert [m["type"] for m in sent][-2:] == ["http.response.start", "http.response.body"]
    [span] = sdk.exported()
    assert (span.name, span.attributes["http.response.status_code"]) == ("POST", 204)
    assert global_providers.spans.get_finished_spans() == ()


def test_a_shut_down_client_is_taken_as_not_initialized(
        global_providers: Globals, capsys: pytest.CaptureFixture[str]) -> None:
    """A client shut down before the middleware is built (its providers stopped): said
    at the first request like an uninitialized one, traced once initialized again.
    (Metrics off: a metric reader serves one provider only.)"""
    spans = InMemorySpanExporter()
    config = TelemetryFlowBuilder().with_service("restarted").with_signals(
        metrics=False).with_batch_settings(timeout_ms=20).build_config()
    client = TelemetryFlowClient(config, exporters=ExporterOverrides(
        spans, None, InMemoryLogRecordExporter()), set_global=False)
    _diagnostics.reset_for_tests()
    middleware._said.clear()
    client.initialize()
    client.shutdown(2.0)
    core = TelemetryMiddleware(client)
    _request(core, "/while-down")
    [said] = _warnings(capsys)
    assert "'restarted') is not initialized" in said
    client.initialize()
    try:
        _request(core, "/up-again")
        assert client.flush(2.0)
        assert [s.attributes["url.path"] for s in spans.get_finished_spans()] == ["/up-again"]
    finally:
        client.shutdown(2.0)
