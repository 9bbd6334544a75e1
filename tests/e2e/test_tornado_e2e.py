"""tornado under the installed ``telemetryflow-run``: a server handler calling another
handler of the same server with ``AsyncHTTPClient`` makes one trace of SERVER and CLIENT
spans at the real OTLP receiver, with both duration metrics."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e


def test_server_and_client_spans_form_one_trace(otlp_receiver: Any) -> None:
    """``python tests/apps/tornado_app.py``: the program's CLIENT call to /hop, the SERVER
    span ``GET /hop``, its handler's CLIENT call and the SERVER span
    ``GET /items/([0-9]+)`` chain parent to child in one trace (under the process span),
    and http.server/client.request.duration arrive with the route and status."""
    proc = run(python(app("tornado_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "200 hop -> item 7"
    otlp_receiver.wait_for_spans(1, name="GET /items/([0-9]+)")
    otlp_receiver.wait_for_spans(1, name="GET /hop")
    spans = {(s.kind.rsplit("_", 1)[-1], s.name, s.attributes.get("url.path")
              or s.attributes.get("url.full", "").rsplit("/", 1)[-1]): s
             for s in otlp_receiver.spans() if s.kind.endswith(("SERVER", "CLIENT"))}
    outer_client = spans["CLIENT", "GET", "hop"]
    outer_server = spans["SERVER", "GET /hop", "/hop"]
    inner_client = spans["CLIENT", "GET", "7"]
    inner_server = spans["SERVER", "GET /items/([0-9]+)", "/items/7"]
    chain = [outer_client, outer_server, inner_client, inner_server]
    assert len({s.trace_id for s in chain}) == 1
    for parent, child in itertools.pairwise(chain):
        assert child.parent_span_id == parent.span_id
    assert outer_client.parent_span_id  # (the process span)
    assert inner_server.attributes["http.route"] == "/items/([0-9]+)"
    assert inner_client.attributes["http.response.status_code"] == 200
    server_points = otlp_receiver.wait_for_metric(
        "http.server.request.duration",
        where=lambda p: p.attributes.get("http.route") == "/items/([0-9]+)")
    assert server_points[0].unit == "s"
    assert server_points[0].attributes["http.response.status_code"] == 200
    client_points = otlp_receiver.wait_for_metric("http.client.request.duration")
    assert max(p.count for p in client_points) == 2  # (both calls: the same attributes)
    assert {p.attributes["server.address"] for p in client_points} == {"127.0.0.1"}
