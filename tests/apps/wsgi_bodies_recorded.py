"""``wsgi_bodies_app`` inside ``TelemetryWSGIMiddleware`` with an in-memory exporter, for a
server we do not patch (``uwsgi --http-socket … --module tests.apps.wsgi_bodies_recorded:app``):
``/spans`` answers the server spans ended so far in this worker (path, status) and the type
of each body handed to the server."""

from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation.registry import PatchContext
from telemetryflow_bootstrap.instrumentation.wsgi import TelemetryWSGIMiddleware

from .wsgi_bodies_app import app as _plain

_exporter = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(_exporter))
_wrapped = TelemetryWSGIMiddleware(_plain, client=PatchContext(
    tracer=_provider.get_tracer("t"), meter=None, logger_provider=None,
    config=TelemetryConfig(), handler=None))
_bodies: list[str] = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/spans":
        start_response("200 OK", [("Content-Type", "application/json")])
        spans = [[s.attributes["url.path"], s.attributes.get("http.response.status_code")]
                 for s in _exporter.get_finished_spans()]
        return [json.dumps({"spans": spans, "bodies": _bodies}).encode()]
    body = _wrapped(environ, start_response)
    _bodies.append(type(body).__name__)
    return body
