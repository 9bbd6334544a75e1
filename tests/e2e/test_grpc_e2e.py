"""gRPC end to end: ``telemetryflow-run python tests/apps/grpc_app.py`` serves and calls a gRPC
service while exporting over OTLP/gRPC to the loopback receiver."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

METHOD = "tf.test.Echo/Unary"
STREAM = "tf.test.Echo/ServerStream"


def test_client_and_server_spans_form_one_trace_and_the_exporter_is_never_traced(
        otlp_receiver):
    """With grpc first imported by our own exporter (on its export thread, where the patches
    are then applied): each call is a CLIENT span with the matching SERVER span as its
    child and the handler's work inside, one trace under the program's span; the aborted
    call is NOT_FOUND on both sides (an error for the client only); both duration metrics
    arrive; the exporter's own Export calls make no span; the credentials never leave."""
    proc = run(python(app("grpc_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert "grpc imported by the exporter first: True" in proc.stdout
    assert "StatusCode.NOT_FOUND" in proc.stdout
    assert otlp_receiver.wait_for(
        lambda r: len([s for s in r.spans() if s.name in (METHOD, STREAM)]) >= 6,
        timeout=20), [s.name for s in otlp_receiver.spans()]
    spans = otlp_receiver.spans()
    (work,) = [s for s in spans if s.name == "client-work"]
    clients = [s for s in spans if s.kind == "CLIENT"]
    servers = {s.parent_span_id: s for s in spans if s.kind == "SERVER"}
    assert sorted(s.name for s in clients) == sorted([METHOD, METHOD, STREAM])
    for client in clients:
        assert client.trace_id == work.trace_id and client.parent_span_id == work.span_id
        served = servers[client.span_id]
        assert served.trace_id == work.trace_id and served.name == client.name
        assert served.attributes["rpc.response.status_code"] \
            == client.attributes["rpc.response.status_code"]
        assert any(s.name == "handler-work" and s.parent_span_id == served.span_id
                   for s in spans)
    aborted = next(c for c in clients if c.attributes["rpc.response.status_code"] != "OK")
    assert aborted.attributes["error.type"] == "NOT_FOUND"
    assert aborted.status_code == "ERROR"
    assert servers[aborted.span_id].status_code != "ERROR"
    assert all(s.attributes["rpc.system.name"] == "grpc" for s in clients)
    # the exporter's calls (trace, metric and log exports over gRPC) are not spans
    assert not [s for s in spans if "opentelemetry.proto" in s.name or "Export" in s.name]
    assert len([s for s in spans if s.kind in ("CLIENT", "SERVER")]) == 6
    points = {p.name for p in otlp_receiver.metrics()}
    assert {"rpc.client.call.duration", "rpc.server.call.duration"} <= points
    assert "s3cr3t" not in repr([(s.attributes, s.events) for s in spans])
