"""The Django integration against real Django (test client, sync and async): the middleware
inserted automatically (once), route templates, trace continuation, streaming, errors and
metrics."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from typing import Any

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
_RAISING_MIDDLEWARE = f"{__name__}.RaisingMiddleware"


class RaisingMiddleware:
    """A project middleware that fails before URL resolution, for ``?fail=1`` requests."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.GET.get("fail"):
            raise KeyError("middleware broke")
        return self.get_response(request)


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


def _assert_failed_stream(server_telemetry: ServerTelemetry, route: str) -> None:
    """One span and one duration point, both saying: 200 sent, then RuntimeError."""
    span = server_telemetry.one_server_span()
    assert span.name == f"GET {route}"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["error.type"] == "RuntimeError"
    [event] = span.events
    assert event.attributes["exception.message"] == "stream broke"
    [point] = server_telemetry.duration_points()
    assert dict(point.attributes) == {
        "http.request.method": "GET", "url.scheme": "http", "http.route": route,
        "http.response.status_code": 200, "error.type": "RuntimeError"}


def test_exception_mid_stream_after_a_200_is_an_error(server_telemetry, client):
    """A StreamingHttpResponse whose body raises after the 200 (WSGI): the exception
    passes unchanged and ends the span as ERROR, with ``error.type`` on the point too."""
    response = client.get("/stream/fail/")
    assert response.status_code == 200
    with pytest.raises(RuntimeError, match="stream broke"):
        b"".join(response.streaming_content)
    _assert_failed_stream(server_telemetry, "/stream/fail/")


def test_file_response_still_goes_to_the_servers_file_wrapper(server_telemetry,
                                                              django_settings):
    """A FileResponse under a WSGI server that offers ``wsgi.file_wrapper`` (sendfile) is
    still handed to it: watching streamed bodies leaves ``file_to_stream`` alone; the span
    ends when the server closes the wrapper."""
    from django.core.handlers.wsgi import WSGIHandler

    class FileWrapper:
        def __init__(self, filelike, block_size=8192):
            self.filelike = filelike

        def __iter__(self):
            return iter(lambda: self.filelike.read(8192), b"")

        def close(self):
            self.filelike.close()

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/source/", "SERVER_NAME": "testserver",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
               "wsgi.file_wrapper": FileWrapper}
    body = WSGIHandler()(environ, lambda status, headers, exc_info=None: None)
    assert type(body) is FileWrapper
    assert b"FileResponse" in b"".join(body)
    assert server_telemetry.server_spans() == []
    body.close()
    span = server_telemetry.one_server_span()
    assert span.name == "GET /source/"
    assert span.status.status_code is StatusCode.UNSET


async def _asgi_get(path: str, wrap: Any = None) -> list[dict[str, object]]:
    """GET ``path`` through Django's own ASGIHandler, the way uvicorn calls it (the test
    client's AsyncClient sends no body: it would not show how the handler ends a response).
    The client never disconnects. Returns the messages sent."""
    from django.core.handlers.asgi import ASGIHandler

    sent: list[dict[str, object]] = []
    requested = False
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"testserver")],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    app = ASGIHandler() if wrap is None else wrap(ASGIHandler())
    await app(scope, receive, send)
    return sent


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
def test_asgi_middleware_outside_django_makes_the_one_span(server_telemetry, django_settings):
    """A user's ASGI wrapper around Django, inside ``TelemetryASGIMiddleware`` (what
    uvicorn's patch does with such an app): one span, the outer one, with Django's route."""
    from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware

    def users_wrapper(inner: Any) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await inner(scope, receive, send)
        return app

    sent = asyncio.run(_asgi_get("/stream/", lambda django_app: TelemetryASGIMiddleware(
        users_wrapper(django_app), client=server_telemetry.context)))
    assert sent[0]["status"] == 200
    span = server_telemetry.one_server_span()
    assert span.name == "GET /stream/"


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
@pytest.mark.parametrize("path", ["/astream/fail/", "/stream/fail/"], ids=["async", "sync"])
def test_exception_mid_stream_under_the_asgi_handler_ends_the_span(server_telemetry,
                                                                   django_settings, path):
    """Under Django's ASGI handler a body that raises after the 200 never gets its
    response closed: the span still ends, then, as ERROR with the route, the status and
    ``error.type``, and the duration point is recorded (it used to stay open until the
    process exited)."""
    with pytest.raises(RuntimeError, match="stream broke"):
        asyncio.run(_asgi_get(path))
    _assert_failed_stream(server_telemetry, path)


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
def test_streamed_body_under_the_asgi_handler_ends_once(server_telemetry, django_settings):
    """A streamed body Django's ASGI handler sends in full: one span, ended without error."""
    sent = asyncio.run(_asgi_get("/stream/"))
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"chunk 0\nchunk 1\nchunk 2\n"
    span = server_telemetry.one_server_span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes["http.response.status_code"] == 200
    assert len(server_telemetry.duration_points()) == 1


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
@pytest.mark.parametrize("path", ["/stream/context/", "/astream/context/"],
                         ids=["sync", "async"])
@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_streaming_generator_runs_in_the_request_span(server_telemetry, django_settings,
                                                      kind, path):
    """The server pulls a streamed body after the view and the middleware have returned:
    each chunk is still produced with the request's span current (as under Flask), so work
    a streaming generator does belongs to the request."""
    from django.test import Client

    from tests.apps.server_django.server_django import views

    views.STREAM_SPANS.clear()
    if kind == "wsgi":
        response = Client().get(path)
        assert views.STREAM_SPANS == []  # (nothing pulled yet)
        assert b"".join(response) == b"chunk 0\nchunk 1\n"  # (as a WSGI server pulls it)
    else:
        sent = asyncio.run(_asgi_get(path))
        assert b"".join(m.get("body", b"") for m in sent[1:]) == b"chunk 0\nchunk 1\n"
    span = server_telemetry.one_server_span()
    assert len(views.STREAM_SPANS) == 2
    for seen in views.STREAM_SPANS:
        assert seen.span_id == span.context.span_id
        assert seen.trace_id == span.context.trace_id


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_middleware_exception_names_its_class_and_the_route(server_telemetry,
                                                            django_settings, kind):
    """An exception raised in a project middleware, before URL resolution, that Django
    answers with a 500: ``error.type`` is its class (not "500"), the span has the exception
    event and the route the path resolves to."""
    from django.test import AsyncClient, Client
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=[_RAISING_MIDDLEWARE]):
        if kind == "wsgi":
            response = Client(raise_request_exception=False).get("/hello/mw/?fail=1")
        else:
            response = asyncio.run(
                AsyncClient(raise_request_exception=False).get("/hello/mw/?fail=1"))
    assert response.status_code == 500
    span = server_telemetry.one_server_span()
    assert span.name == "GET /hello/<str:name>/"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert span.attributes["http.route"] == "/hello/<str:name>/"
    assert [e.name for e in span.events] == ["exception"]
    [point] = server_telemetry.duration_points()
    assert point.attributes["error.type"] == "KeyError"


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
