"""``error.type`` of a server request that an application's own exception failed: its
fully-qualified class name, on the span and on the duration point, for every server flavour
(WSGI/Flask, ASGI/Starlette and its background tasks, Django, the hand-used
``TelemetryMiddleware``), as the HTTP clients and the databases already record it. The bare
class name collided across libraries and applications."""

from __future__ import annotations

import asyncio
import warnings

import flask
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap.instrumentation._error_type import error_type
from telemetryflow_bootstrap.middleware import TelemetryMiddleware

from .server_fixtures import ServerTelemetry, configure_django, no_client_spans, server_telemetry

with warnings.catch_warnings():  # starlette 1.x nags about httpx → httpx2
    warnings.simplefilter("ignore")
    from fastapi import BackgroundTasks, FastAPI
    from starlette.testclient import TestClient

__all__ = ["server_telemetry"]


class PaymentFailed(Exception):
    """An application's own exception (``myapp.errors.PaymentFailed`` in a real project)."""


class Checkout:
    class Declined(Exception):
        """A nested one: its qualified name names the class it lives in."""


FULL_NAME = f"{__name__}.PaymentFailed"
_RAISING_MIDDLEWARE = f"{__name__}.PaymentMiddleware"


class PaymentMiddleware:
    """A Django project middleware whose payment step fails."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise PaymentFailed("card declined")


def _assert_recorded_in_full(telemetry: ServerTelemetry, name: str = FULL_NAME) -> None:
    span = telemetry.one_server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == name
    assert [e.name for e in span.events] == ["exception"]
    [point] = telemetry.duration_points()
    assert point.attributes["error.type"] == name


def test_the_name_is_the_module_and_qualified_name_and_a_builtin_stays_bare():
    """The rule itself: ``module.QualName``, a nested class's outer class included; a
    built-in's bare name; a class claiming no module keeps its bare name."""
    assert error_type(PaymentFailed()) == FULL_NAME
    assert error_type(Checkout.Declined()) == f"{__name__}.Checkout.Declined"
    assert error_type(TimeoutError()) == "TimeoutError"
    assert error_type(asyncio.CancelledError()) == "asyncio.exceptions.CancelledError"
    nameless = type("Nameless", (Exception,), {"__module__": None})
    assert error_type(nameless()) == "Nameless"


def test_wsgi_flask_records_the_full_name(server_telemetry):
    """Flask (WSGI) answering an application exception with a 500."""
    app = flask.Flask(__name__)

    @app.route("/pay")
    def pay() -> str:
        raise PaymentFailed("card declined")

    response = app.test_client().get("/pay")
    assert response.status_code == 500
    response.close()
    _assert_recorded_in_full(server_telemetry)


def test_wsgi_exception_escaping_to_the_server_records_the_full_name(server_telemetry):
    """Flask in testing mode lets the exception escape to the server (WSGI layer)."""
    app = flask.Flask(__name__)
    app.testing = True

    @app.route("/pay")
    def pay() -> str:
        raise Checkout.Declined("no funds")

    with pytest.raises(Checkout.Declined):
        app.test_client().get("/pay")
    _assert_recorded_in_full(server_telemetry, f"{__name__}.Checkout.Declined")


def _fastapi_client(app: FastAPI) -> TestClient:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TestClient(app)


def test_asgi_starlette_records_the_full_name(server_telemetry):
    """FastAPI (ASGI, Starlette's error middleware re-raising after its 500)."""
    app = FastAPI()

    @app.get("/pay")
    async def pay() -> str:
        raise PaymentFailed("card declined")

    with no_client_spans(), pytest.raises(PaymentFailed):
        _fastapi_client(app).get("/pay")
    _assert_recorded_in_full(server_telemetry)


def test_starlette_background_task_span_records_the_full_name(server_telemetry):
    """A background task's INTERNAL span names its exception in full too."""
    app = FastAPI()

    def settle() -> None:
        raise PaymentFailed("settlement failed")

    @app.post("/pay")
    async def pay(tasks: BackgroundTasks) -> str:
        tasks.add_task(settle)
        return "ok"

    with no_client_spans(), pytest.raises(PaymentFailed):
        _fastapi_client(app).post("/pay")
    [task] = [s for s in server_telemetry.spans() if s.kind is SpanKind.INTERNAL]
    assert task.attributes["error.type"] == FULL_NAME
    assert task.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_django_records_the_full_name(server_telemetry, kind):
    """Django (its WSGI and ASGI handlers) answering a project middleware's exception."""
    configure_django()
    from django.test import AsyncClient, Client
    from django.test.utils import override_settings

    with override_settings(ROOT_URLCONF="tests.apps.server_django.server_django.urls",
                           ALLOWED_HOSTS=["*"], MIDDLEWARE=[_RAISING_MIDDLEWARE]):
        if kind == "wsgi":
            response = Client(raise_request_exception=False).get("/hello/pay/")
        else:
            response = asyncio.run(
                AsyncClient(raise_request_exception=False).get("/hello/pay/"))
    assert response.status_code == 500
    _assert_recorded_in_full(server_telemetry)


@pytest.mark.parametrize("status", [None, 500])
def test_telemetry_middleware_records_the_full_name(server_telemetry, status):
    """``TelemetryMiddleware.end_request``: an exception that escaped (no status) and one a
    framework answered with a 500."""
    core = TelemetryMiddleware(server_telemetry.context)
    scope = core.start_request("POST", "/pay", route="/pay")
    core.end_request(scope, status_code=status, error=PaymentFailed("card declined"))
    _assert_recorded_in_full(server_telemetry)
