"""The Django integration against real Django (test client, sync and async): the middleware
inserted automatically (once), route templates, trace continuation, streaming, errors and
metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap.instrumentation.django import MIDDLEWARE_PATH

from .server_fixtures import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    ServerTelemetry,
    configure_django,
    server_telemetry,
)

__all__ = ["server_telemetry"]

_URLS = "tests.apps.server_django.server_django.urls"


@pytest.fixture
def django_settings(server_telemetry: ServerTelemetry) -> Iterator[object]:
    """The test project's URLs and middleware, whatever else configured Django before."""
    configure_django()
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF=_URLS, ALLOWED_HOSTS=["*"],
                           MIDDLEWARE=["django.middleware.common.CommonMiddleware"]) as settings:
        yield settings


@pytest.fixture
def client(django_settings: object):
    from django.test import Client

    return Client()


def test_middleware_is_inserted_first(django_settings, client):
    """Loading the middleware puts ours first in ``settings.MIDDLEWARE``."""
    from django.conf import settings

    client.get("/hello/x/")
    assert list(settings.MIDDLEWARE) == [MIDDLEWARE_PATH,
                                         "django.middleware.common.CommonMiddleware"]


def test_django_span_name_kind_and_attributes(server_telemetry, client):
    """One SERVER span named ``{method} {route}`` with the semantic-convention attributes."""
    response = client.get("/hello/dee/?AWSAccessKeyId=k&a=1", HTTP_USER_AGENT="probe/3")
    assert response.content == b"hello dee"
    span = server_telemetry.one_server_span()
    assert span.name == "GET /hello/<str:name>/"
    assert span.kind is SpanKind.SERVER
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/hello/dee/",
        "url.query": "AWSAccessKeyId=REDACTED&a=1", "server.address": "testserver",
        "server.port": 80, "network.protocol.version": "1.1",
        "user_agent.original": "probe/3", "client.address": "127.0.0.1",
        "http.route": "/hello/<str:name>/", "http.response.status_code": 200,
    }


def test_included_urls_give_the_full_route(server_telemetry, client):
    """Routes from ``include()`` carry their prefix."""
    client.get("/api/items/5/")
    assert server_telemetry.one_server_span().attributes["http.route"] == \
        "/api/items/<int:item_id>/"


def test_django_continues_incoming_traceparent(server_telemetry, client):
    """The server span is a child of the caller's span named in ``traceparent``."""
    client.get("/hello/tp/", headers={"traceparent": TRACEPARENT})
    span = server_telemetry.one_server_span()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_streaming_response_span_ends_after_the_body(server_telemetry, client):
    """A StreamingHttpResponse: no span while the body is unread; once consumed, the span's
    duration covers the generator's 3 x 50 ms."""
    response = client.get("/stream/")
    assert server_telemetry.server_spans() == []
    assert b"".join(response.streaming_content) == b"chunk 0\nchunk 1\nchunk 2\n"
    span = server_telemetry.one_server_span()
    assert span.name == "GET /stream/"
    assert (span.end_time - span.start_time) / 1e9 >= 0.12


def test_view_exception_propagates_unchanged_with_error_span(server_telemetry, client):
    """The test client re-raises the view's very exception; the span records it with the
    500 Django answered: exception event, ``error.type``, ERROR."""
    with pytest.raises(ValueError, match="boom from django"):
        client.get("/boom/")
    span = server_telemetry.one_server_span()
    assert span.name == "GET /boom/"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["http.response.status_code"] == 500
    assert [e.name for e in span.events] == ["exception"]


def test_5xx_is_a_server_error_and_4xx_is_not(server_telemetry, client):
    """503 is ERROR; Http404 from a view and an unrouted 404 are not; unrouted is named by
    the method alone."""
    for path in ("/status/503/", "/status/404/", "/nowhere/"):
        client.get(path)
    spans = {s.attributes["url.path"]: s for s in server_telemetry.server_spans()}
    assert spans["/status/503/"].status.status_code is StatusCode.ERROR
    assert spans["/status/503/"].attributes["error.type"] == "503"
    for path in ("/status/404/", "/nowhere/"):
        assert spans[path].status.status_code is StatusCode.UNSET
        assert "error.type" not in spans[path].attributes
        assert not spans[path].events
    assert spans["/nowhere/"].name == "GET"


def test_duration_metric_has_low_cardinality_attributes(server_telemetry, client):
    """Histogram points carry method, route, status and scheme, never the path."""
    client.get("/hello/a/")
    client.get("/hello/b/")
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http",
        "http.route": "/hello/<str:name>/", "http.response.status_code": 200}
    assert point.count == 2


def test_middleware_listed_by_hand_makes_one_span(server_telemetry, django_settings):
    """Listed in MIDDLEWARE already, ours is not added twice: one span per request."""
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=["django.middleware.common.CommonMiddleware",
                                       MIDDLEWARE_PATH]):
        Client().get("/hello/twice/")
        assert list(settings.MIDDLEWARE).count(MIDDLEWARE_PATH) == 1
    assert server_telemetry.one_server_span().name == "GET /hello/<str:name>/"


def test_async_view_under_the_asgi_handler(server_telemetry, django_settings):
    """Through Django's ASGI handler (AsyncClient) an async view gets the same span."""
    from django.test import AsyncClient

    async def call():
        return await AsyncClient().get("/async/ay/", headers={"traceparent": TRACEPARENT})

    response = asyncio.run(call())
    assert response.content == b"hello async ay"
    span = server_telemetry.one_server_span()
    assert span.name == "GET /async/<str:name>/"
    assert span.attributes["http.response.status_code"] == 200
    assert format(span.parent.span_id, "016x") == PARENT_ID
