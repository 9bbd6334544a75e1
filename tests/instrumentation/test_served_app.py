"""Which applications the server-level patches wrap (``_served_app``): a framework's
application (its integration makes the span) is left alone, anything else is wrapped."""

from __future__ import annotations

import django.core.handlers.wsgi
import fastapi
import flask
import starlette.applications
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from telemetryflow_bootstrap.instrumentation import _served_app
from telemetryflow_bootstrap.instrumentation.asgi import TelemetryASGIMiddleware
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware

from ..apps.plain_servers import asgi_app, wsgi_app
from .server_fixtures import server_telemetry

__all__ = ["server_telemetry"]


def test_framework_applications_are_left_to_their_integrations(server_telemetry):
    flask_app = flask.Flask("t")
    for app in (flask_app, flask_app.wsgi_app, starlette.applications.Starlette(),
                fastapi.FastAPI(), django.core.handlers.wsgi.WSGIHandler.__new__(
                    django.core.handlers.wsgi.WSGIHandler)):
        assert _served_app.instrumented_by_framework(app), app
        assert _served_app.wsgi(app, server_telemetry.context, "test") is app


def test_other_applications_are_wrapped_once(server_telemetry):
    wrapped = _served_app.wsgi(wsgi_app, server_telemetry.context, "test")
    assert type(wrapped) is TelemetryWSGIMiddleware and wrapped.app is wsgi_app
    assert _served_app.wsgi(wrapped, server_telemetry.context, "test") is wrapped
    dispatcher = DispatcherMiddleware(flask.Flask("t"))  # a framework app inside: wrapped
    assert type(_served_app.wsgi(dispatcher, server_telemetry.context, "test")) is \
        TelemetryWSGIMiddleware
    assert type(_served_app.asgi(asgi_app, server_telemetry.context, "test")) is \
        TelemetryASGIMiddleware
    assert _served_app.wsgi(None, server_telemetry.context, "test") is None


def test_a_plain_application_served_in_process_gets_its_span(server_telemetry):
    app = _served_app.wsgi(wsgi_app, server_telemetry.context, "test")
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/ok", "SERVER_NAME": "h",
                "SERVER_PORT": "80", "wsgi.url_scheme": "http"},
               lambda status, headers, exc_info=None: None)
    assert list(body) == [b"plain wsgi"]
    span = server_telemetry.one_server_span()
    assert span.name == "GET" and span.attributes["http.response.status_code"] == 200
