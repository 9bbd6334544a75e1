"""FastAPI under uvicorn the way users run it (``telemetryflow-run uvicorn …`` and
``telemetryflow-run python app.py`` calling ``uvicorn.run``), against the real OTLP receiver:
the corners of ASGI serving (streaming bodies that do work, background tasks, errors raised
in endpoints and middleware, unrouted and unknown-method requests), the application root in
``http.route``, and requests that never join the process span's trace."""

from __future__ import annotations

import http.client
import socket
import time

import pytest

from ..otlp_receiver import OTLPReceiver, ReceivedSpan, free_port
from .launcher import python
from .test_http_servers_e2e import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    env_for,
    server_spans,
    serving,
)

pytestmark = pytest.mark.e2e

APP = "tests.apps.server_asgi_hunt:app"


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def uvicorn(port: int, *extra: str) -> list[str]:
    return ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            *extra, APP]


def by_path(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.attributes["url.path"]: s for s in spans if s.kind == "SERVER"}


def duration_counts(receiver: OTLPReceiver) -> dict[tuple[tuple[str, object], ...], int]:
    """Requests counted per attribute set (the receiver gets cumulative points: the
    latest export's count)."""
    counts: dict[tuple[tuple[str, object], ...], int] = {}
    for point in receiver.metrics():
        if point.name == "http.server.request.duration":
            key = tuple(sorted(point.attributes.items()))
            counts[key] = max(counts.get(key, 0), point.count or 0)
    return counts


def test_uvicorn_root_path_is_part_of_http_route(otlp_receiver, tmp_path):
    """``uvicorn --root-path /prefix`` (behind a proxy that strips the prefix): the route
    includes the application root, as the semantic conventions ask and as Flask and Django
    routes include SCRIPT_NAME, so it is a template of ``url.path``; routers and mounts
    below it keep their prefixes, and the duration point carries the same route."""
    port = free_port()
    env = env_for(otlp_receiver, "asgi-root-path", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with serving((uvicorn(port, "--root-path", "/prefix"), env, port, tmp_path / "u.log")):
        assert request(port, "GET", "/items/1") == (200, b'{"item_id":1}')
        assert request(port, "GET", "/sub/deep/q") == (200, b'{"x":"q"}')
        assert request(port, "GET", "/api/v1/users/ann") == (200, b'{"name":"ann"}')
        assert request(port, "GET", "/nowhere")[0] == 404
        spans = by_path(server_spans(otlp_receiver, 4))
        otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.attributes.get("http.route") == "/prefix/sub/deep/{x}")
    routes = {path: (s.name, s.attributes.get("http.route")) for path, s in spans.items()}
    assert routes == {
        "/prefix/items/1": ("GET /prefix/items/{item_id}", "/prefix/items/{item_id}"),
        "/prefix/sub/deep/q": ("GET /prefix/sub/deep/{x}", "/prefix/sub/deep/{x}"),
        "/prefix/api/v1/users/ann": ("GET /prefix/api/v1/users/{name}",
                                     "/prefix/api/v1/users/{name}"),
        "/prefix/nowhere": ("GET", None),
    }
    metric_routes = {dict(key).get("http.route") for key in duration_counts(otlp_receiver)}
    assert metric_routes == {"/prefix/items/{item_id}", "/prefix/sub/deep/{x}",
                             "/prefix/api/v1/users/{name}", None}


def test_python_app_running_uvicorn_keeps_each_request_its_own_trace(otlp_receiver,
                                                                       tmp_path):
    """``telemetryflow-run python app.py`` where the app calls ``uvicorn.run`` has a process
    span, current in every connection's task. With a propagator that starts from the
    current context (``baggage,tracecontext``), a request carrying only ``baggage`` or an
    invalid ``traceparent`` used to become a child of that process span: the server's whole
    traffic in one endless trace. Each is a new trace; a valid traceparent is continued."""
    port = free_port()
    env = env_for(otlp_receiver, "asgi-python-app",
                  TELEMETRYFLOW_PROPAGATORS="baggage,tracecontext")
    args = python("tests/apps/server_asgi_hunt.py", str(port))
    with serving((args, env, port, tmp_path / "p.log")):
        assert request(port, "GET", "/items/1", {"baggage": "tenant=a"})[0] == 200
        assert request(port, "GET", "/items/2", {"traceparent": "00-zz-garbage-01"})[0] == 200
        assert request(port, "GET", "/items/3")[0] == 200
        assert request(port, "GET", "/items/4", {"traceparent": TRACEPARENT})[0] == 200
        spans = by_path(server_spans(otlp_receiver, 4))
    [process] = otlp_receiver.wait_for_spans(1, name="server_asgi_hunt")
    for path in ("/items/1", "/items/2", "/items/3"):
        assert spans[path].parent_span_id == "", path
        assert spans[path].trace_id != process.trace_id, path
    assert len({spans[p].trace_id for p in ("/items/1", "/items/2", "/items/3")}) == 3
    continued = spans["/items/4"]
    assert (continued.trace_id, continued.parent_span_id) == (TRACE_ID, PARENT_ID)


def test_uvicorn_fastapi_corners_one_span_and_one_point_per_request(otlp_receiver, tmp_path):
    """Streaming bodies from a sync and an async generator, whose queries and outbound
    calls are children of the server span though they run after the endpoint returned;
    a background task's query (in the task's span, a child too); SSE and a file response;
    405 keeps its route, 404 has none; an unknown method is ``_OTHER`` named ``HTTP``;
    HTTPException(404) is not an error, a 503 and exceptions from an endpoint or a
    middleware are (500, ``error.type`` = the class, an exception event); one duration
    point per request."""
    port = free_port()
    env = env_for(otlp_receiver, "asgi-corners", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300",
                  HUNT_DOWNSTREAM=f"http://127.0.0.1:{port}")
    calls = [("GET", "/stream/sync"), ("GET", "/stream/async"), ("GET", "/sse"),
             ("GET", "/file"), ("GET", "/background"), ("POST", "/items/1"),
             ("GET", "/nowhere"), ("FOO", "/plain"), ("GET", "/status/404"),
             ("GET", "/status/503"), ("GET", "/boom"), ("GET", "/middleware/boom")]
    with serving((uvicorn(port), env, port, tmp_path / "c.log")):
        statuses = [request(port, method, path)[0] for method, path in calls]
        assert request(port, "POST", "/echo", body=b"x" * 200_000) == (200, b"200000")
        # 12 calls + /echo + the two /plain requests the streams made downstream
        servers = server_spans(otlp_receiver, 15)
        otlp_receiver.wait_for_metric(
            "http.server.request.duration",
            where=lambda p: p.attributes.get("error.type") == "KeyError")
    spans = by_path(servers)
    assert statuses == [200, 200, 200, 200, 200, 405, 404, 405, 404, 503, 500, 500]
    everything = {s.span_id: s for s in otlp_receiver.spans()}
    for path, expected in (("/stream/sync", 3), ("/stream/async", 3)):
        server = spans[path]
        children = [s for s in everything.values() if s.parent_span_id == server.span_id]
        assert len(children) == expected, (path, [c.name for c in children])
        assert all(c.kind == "CLIENT" and c.trace_id == server.trace_id for c in children)
    # the background task's query: a child of the task's span, itself the request's child
    [task] = [s for s in everything.values() if s.parent_span_id == spans["/background"].span_id]
    assert (task.name, task.kind) == ("BackgroundTask _query", "INTERNAL")
    [query] = [s for s in everything.values() if s.parent_span_id == task.span_id]
    assert query.kind == "CLIENT"
    assert [spans[p].name for p in ("/sse", "/file", "/items/1", "/nowhere")] == [
        "GET /sse", "GET /file", "POST /items/{item_id}", "GET"]
    assert len(servers) == 15
    other = [s for s in servers if s.attributes["http.request.method"] == "_OTHER"]
    assert [(s.name, s.attributes["http.request.method_original"]) for s in other] == [
        ("HTTP /plain", "FOO")]
    not_found = spans["/status/404"]
    assert (not_found.status_code, "error.type" in not_found.attributes) == ("UNSET", False)
    for path, error_type, status in (("/status/503", "503", 503), ("/boom", "ValueError", 500),
                                     ("/middleware/boom", "KeyError", 500)):
        span = spans[path]
        assert span.status_code == "ERROR", path
        assert span.attributes["error.type"] == error_type
        assert span.attributes["http.response.status_code"] == status
    assert [e[0] for e in spans["/boom"].events] == ["exception"]
    assert spans["/middleware/boom"].name == "GET"  # raised before routing: no route
    time.sleep(0.5)  # the last export of the points
    counts = duration_counts(otlp_receiver)
    assert sum(counts.values()) == 15
    assert counts[(("error.type", "KeyError"), ("http.request.method", "GET"),
                   ("http.response.status_code", 500), ("url.scheme", "http"))] == 1


def test_client_gone_mid_stream_ends_the_span_as_is(otlp_receiver, tmp_path):
    """An endless SSE stream whose client disconnects: the span is exported while the
    server runs, with its 200 and no error (the client went away; the server did not
    fail)."""
    port = free_port()
    env = env_for(otlp_receiver, "asgi-sse")
    with serving((uvicorn(port), env, port, tmp_path / "s.log")):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET /sse/endless HTTP/1.1\r\nHost: t\r\n\r\n")
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        [span] = server_spans(otlp_receiver, 1)
    assert span.name == "GET /sse/endless"
    assert span.status_code == "UNSET"
    assert span.attributes["http.response.status_code"] == 200
    assert "telemetryflow.process.terminated" not in span.attributes


def test_uvicorn_background_task_failure_is_on_its_own_span(otlp_receiver, tmp_path):
    """``telemetryflow-run uvicorn``: a FastAPI background task that fails after its 200
    went out is exported as an INTERNAL ``BackgroundTask {function}`` span, the request's
    child, with the exception (ERROR, ``error.type``, an event); the request stays a
    success whose duration point does not wait for the task."""
    port = free_port()
    env = env_for(otlp_receiver, "asgi-background", TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="300")
    with serving((uvicorn(port), env, port, tmp_path / "b.log")):
        assert request(port, "GET", "/background/fail") == (200, b"scheduled")
        [server] = server_spans(otlp_receiver, 1)
        [task] = otlp_receiver.wait_for_spans(1, name="BackgroundTask _fail_later")
        point = otlp_receiver.wait_for_metric("http.server.request.duration")[-1]
    assert (server.name, server.status_code) == ("GET /background/fail", "UNSET")
    assert "error.type" not in server.attributes
    assert (task.kind, task.status_code, task.parent_span_id, task.trace_id) == (
        "INTERNAL", "ERROR", server.span_id, server.trace_id)
    assert task.attributes["error.type"] == "LookupError"
    assert task.attributes["code.function.name"] == "tests.apps.server_asgi_hunt._fail_later"
    assert [e[0] for e in task.events] == ["exception"]
    assert server.end_ns <= task.start_ns, "the server span waited for the task"
    assert "error.type" not in point.attributes
    assert point.sum * 1e9 < task.end_ns - task.start_ns  # (the task sleeps 0.2 s)
