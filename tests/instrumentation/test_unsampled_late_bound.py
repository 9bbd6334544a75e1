"""A server middleware that binds late to its ``TelemetryFlowClient`` (built before
``client.initialize()``, bound at the first request after it) takes the sampler shortcut for
the requests its client's sampler drops, as one built after ``initialize()`` does: the
request is an ``UnsampledRequest`` (no span attributes built, no ``start_span``), counted
by its duration point, exporting no span. The shortcut used to be made once, from the
placeholder tracer of the unbound middleware, and never answered. Real WSGI, ASGI and
Django applications, the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap import _diagnostics, middleware
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides
from telemetryflow_bootstrap.instrumentation import django as django_integration
from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware
from telemetryflow_bootstrap.middleware import REQUEST_KEY, TelemetryMiddleware

from .server_fixtures import configure_django


@dataclass
class Sdk:
    client: TelemetryFlowClient
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def duration_counts(self) -> list[int]:
        data = self.reader.get_metrics_data()
        return [p.count for rm in (data.resource_metrics if data else ())
                for sm in rm.scope_metrics for m in sm.metrics
                if m.name == "http.server.request.duration" for p in m.data.data_points]


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """A client sampling nothing, built and NOT initialized yet."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    config = TelemetryFlowBuilder().with_service("late-unsampled").with_sample_rate(
        0.0).with_batch_settings(timeout_ms=20).build_config()
    client = TelemetryFlowClient(
        config, exporters=ExporterOverrides(spans, reader, InMemoryLogRecordExporter()),
        set_global=False)
    _diagnostics.reset_for_tests()
    middleware._said.clear()
    yield Sdk(client, spans, reader)
    client.shutdown(2.0)


def _wsgi_app(seen: list[str]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(type(environ[REQUEST_KEY]).__name__)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def _call_wsgi(app: Callable[..., Any]) -> None:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/orders", "SERVER_NAME": "shop",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO()}
    body = app(environ, lambda status, headers, exc_info=None: None)
    b"".join(body)
    body.close()


def _assert_took_the_shortcut(sdk: Sdk, seen: list[str]) -> None:
    assert seen == ["UnsampledRequest"]
    assert sdk.client.flush(2.0)
    assert sdk.spans.get_finished_spans() == ()
    assert sdk.duration_counts() == [1]


def test_late_bound_wsgi_middleware_takes_the_shortcut(sdk: Sdk) -> None:
    """``TelemetryWSGIMiddleware(app, client)`` then ``client.initialize()``."""
    seen: list[str] = []
    app = TelemetryWSGIMiddleware(_wsgi_app(seen), client=sdk.client)
    sdk.client.initialize()
    _call_wsgi(app)
    _assert_took_the_shortcut(sdk, seen)


def test_early_bound_wsgi_middleware_takes_the_shortcut_too(sdk: Sdk) -> None:
    """The same request through a middleware built after ``initialize()``: the same way."""
    seen: list[str] = []
    sdk.client.initialize()
    _call_wsgi(TelemetryWSGIMiddleware(_wsgi_app(seen), client=sdk.client))
    _assert_took_the_shortcut(sdk, seen)


def test_late_bound_asgi_middleware_takes_the_shortcut(sdk: Sdk) -> None:
    """``TelemetryASGIMiddleware(app, client)`` then ``client.initialize()``."""
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(type(scope[REQUEST_KEY]).__name__)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    wrapped = TelemetryASGIMiddleware(app, client=sdk.client)
    sdk.client.initialize()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "http", "method": "GET", "path": "/orders", "query_string": b"",
             "headers": [(b"host", b"shop")], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 80)}
    asyncio.run(wrapped(scope, receive, send))
    _assert_took_the_shortcut(sdk, seen)


def test_late_bound_django_middleware_takes_the_shortcut(sdk: Sdk, monkeypatch) -> None:
    """``TelemetryDjangoMiddleware`` whose core is bound late (a hand-listed middleware
    whose process client is initialized after Django built its middleware chain)."""
    configure_django()
    from django.http import HttpResponse
    from django.test import RequestFactory

    monkeypatch.setattr(django_integration, "_core", TelemetryMiddleware(sdk.client))
    seen: list[str] = []

    def view(request: Any) -> HttpResponse:
        seen.append(type(request.META[REQUEST_KEY]).__name__)
        return HttpResponse("ok")

    handler = django_integration.TelemetryDjangoMiddleware(view)
    sdk.client.initialize()
    handler(RequestFactory().get("/orders")).close()
    _assert_took_the_shortcut(sdk, seen)
