"""The registry entries of the server instrumentations (flask, django, starlette, fastapi), each
scenario in a fresh interpreter: armed before or after the frameworks are imported, armed
twice and patched again by hand, and disabled by name."""

from __future__ import annotations

import textwrap

import pytest

from ..side_by_side import run_scenarios

_PROGRAM = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    order, disabled = sys.argv[1], tuple(filter(None, sys.argv[2].split(",")))

    def import_frameworks():
        import django.core.handlers.base, fastapi, flask, starlette.applications

    if order == "import-first":
        import_frameworks()

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind
    from telemetryflow_bootstrap.domain.config import TelemetryConfig
    from telemetryflow_bootstrap.instrumentation import _catalog_http_servers, registry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = registry.PatchContext(
        tracer=provider.get_tracer("t"), meter=None, logger_provider=None,
        config=TelemetryConfig(disabled_instrumentations=disabled), handler=None)
    registry.arm(context, _catalog_http_servers.ENTRIES)
    if order == "twice":
        registry.arm(context, _catalog_http_servers.ENTRIES)
    import_frameworks()
    if order == "twice":  # a second patch call must not wrap a second time
        import django.core.handlers.base, fastapi, flask, starlette.applications
        from telemetryflow_bootstrap.instrumentation import django as d, flask as f
        from telemetryflow_bootstrap.instrumentation import starlette as s
        f.patch(flask, context)
        d.patch(django.core.handlers.base, context)
        s.patch(starlette.applications, context)
        s.patch_fastapi(fastapi, context)

    from django.conf import settings
    settings.configure(ROOT_URLCONF="tests.apps.server_django.server_django.urls",
                       ALLOWED_HOSTS=["*"], MIDDLEWARE=[], SECRET_KEY="x", DATABASES={})
    import django
    django.setup()
    from django.test import Client
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient
    from tests.apps.server_fastapi import create_app as fastapi_app
    from tests.apps.server_flask import create_app as flask_app

    flask_app().test_client().get("/hello/f").get_data()
    Client().get("/hello/d/")
    TestClient(fastapi_app()).get("/items/1")
    TestClient(Starlette(routes=[Route("/s", lambda r: PlainTextResponse("s"))])).get("/s")
    print(json.dumps({
        "spans": sorted(s.name for s in exporter.get_finished_spans()
                        if s.kind is SpanKind.SERVER),
        "status": {name: state for name, (state, _) in registry.status().items()},
    }))
""")

_ALL = ["GET /hello/<name>", "GET /hello/<str:name>/", "GET /items/{item_id}", "GET /s"]
_SCENARIOS = {"import-first": ("import-first", ""), "twice": ("twice", ""),
              "disabled": ("arm-first", "flask,starlette")}


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    """Every scenario's outcome; the interpreters run side by side to keep the suite quick."""
    return run_scenarios(_PROGRAM, _SCENARIOS, timeout=90)


@pytest.mark.parametrize("scenario", ["import-first", "twice"])
def test_every_framework_gets_exactly_one_server_span(results, scenario):
    """Whether the frameworks were imported before or after arming, and even armed twice and
    patched again by hand, each request makes exactly one route-named SERVER span."""
    assert results[scenario]["spans"] == _ALL
    status = results[scenario]["status"]
    frameworks = {name: status.get(name) for name in ("flask", "django", "starlette", "fastapi")}
    assert frameworks == {"flask": "applied", "django": "applied", "starlette": "applied",
                          "fastapi": "applied"}
    # (the servers' patches: armed until their module is imported, never failed)
    assert {status[name] for name in ("gunicorn", "uvicorn", "wsgiref")} <= {"armed", "applied"}


def test_disabled_by_name_leaves_the_framework_alone(results):
    """Disabling flask and starlette by name: their apps still answer but make no span,
    while FastAPI (its own entry) and Django are still instrumented."""
    result = results["disabled"]
    assert result["spans"] == ["GET /hello/<str:name>/", "GET /items/{item_id}"]
    assert result["status"]["flask"] == "disabled"
    assert result["status"]["starlette"] == "disabled"
