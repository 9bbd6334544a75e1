"""Falcon and Pyramid applications under the installed ``telemetryflow-run``, on loopback,
exporting to the real OTLP receiver: ``gunicorn`` serving the Falcon app, ``python
server_pyramid.py`` (wsgiref) the Pyramid one, side by side; nothing added to the apps."""

from __future__ import annotations

import time

import pytest

from ..otlp_receiver import free_port
from .launcher import python
from .test_http_servers_e2e import TRACE_ID, TRACEPARENT, assert_continued, env_for, get, serving

pytestmark = pytest.mark.e2e

DURATION = "http.server.request.duration"


def test_falcon_under_gunicorn_and_pyramid_under_wsgiref(otlp_receiver, tmp_path):
    """Each request is exactly one SERVER span named ``GET {route}`` (the gunicorn and
    wsgiref patches leave these apps to their own integrations), the ``traceparent`` sent
    is continued, a 503 an HTTPError made is an ERROR named after it, and the duration
    metric carries ``http.route``."""
    falcon_port, pyramid_port = free_port(), free_port()
    falcon = (["gunicorn", "-b", f"127.0.0.1:{falcon_port}", "-w", "1",
               "tests.apps.server_falcon:app"],
              env_for(otlp_receiver, "gunicorn-falcon", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300"),
              falcon_port, tmp_path / "falcon.log")
    pyramid = ([*python("tests/apps/server_pyramid.py")],
               env_for(otlp_receiver, "wsgiref-pyramid", PORT=str(pyramid_port),
                       TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300"),
               pyramid_port, tmp_path / "pyramid.log")
    with serving(falcon, pyramid):
        status, body = get(falcon_port, "/items/7", {"traceparent": TRACEPARENT})
        assert (status, body) == (200, '{"item_id": "7"}')
        assert get(falcon_port, "/errors/unavailable")[0] == 503
        status, body = get(pyramid_port, "/items/8", {"traceparent": TRACEPARENT})
        assert (status, body) == (200, '{"item_id":"8"}')
        assert get(pyramid_port, "/hello/py") == (200, "hello py")

        def service_of(point) -> str:
            return point.resource.get("service.name", "")

        def routed(service: str):
            return lambda p: service_of(p) == service and \
                p.attributes.get("http.route") == "/items/{item_id}"

        falcon_points = otlp_receiver.wait_for_metric(DURATION, where=routed("gunicorn-falcon"))
        pyramid_points = otlp_receiver.wait_for_metric(DURATION,
                                                       where=routed("wsgiref-pyramid"))
        assert otlp_receiver.wait_for(
            lambda _: len([s for s in otlp_receiver.spans() if s.kind == "SERVER"]) >= 4)
        time.sleep(0.3)  # anything late (a second span per request) would have arrived
    spans = [s for s in otlp_receiver.spans() if s.kind == "SERVER"]
    by_service = {(s.resource["service.name"], s.attributes["url.path"]): s for s in spans}
    assert len(spans) == 4, [(s.resource["service.name"], s.name) for s in spans]
    assert {key: s.name for key, s in by_service.items()} == {
        ("gunicorn-falcon", "/items/7"): "GET /items/{item_id}",
        ("gunicorn-falcon", "/errors/unavailable"): "GET /errors/{kind}",
        ("wsgiref-pyramid", "/items/8"): "GET /items/{item_id}",
        ("wsgiref-pyramid", "/hello/py"): "GET /hello/{name}",
    }
    for service in ("gunicorn-falcon", "wsgiref-pyramid"):
        item = by_service[(service, "/items/7" if service == "gunicorn-falcon" else "/items/8")]
        assert_continued(item)
        assert item.trace_id == TRACE_ID
        assert item.attributes["http.route"] == "/items/{item_id}"
        assert item.scope_name == "telemetryflow"
    failed = by_service[("gunicorn-falcon", "/errors/unavailable")]
    assert (failed.status_code, failed.attributes["error.type"]) == \
        ("ERROR", "falcon.errors.HTTPServiceUnavailable")
    for points in (falcon_points, pyramid_points):
        assert points[0].attributes == {"http.request.method": "GET", "url.scheme": "http",
                                        "http.route": "/items/{item_id}",
                                        "http.response.status_code": 200}
        assert points[0].count == 1
