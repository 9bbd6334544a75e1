"""The SDK embedded in a program (plain ``python``, ``set_global=False``) exporting to the
real OTLP receiver: span ids misused are said the same way whether the span is sampled or
not, and a Flask middleware built before ``client.initialize()`` exports its requests with
that client."""

from __future__ import annotations

import re
import subprocess

import pytest

from .launcher import APPS, REPO, python, receiver_env

pytestmark = pytest.mark.e2e


def _run(receiver, rate: str) -> subprocess.CompletedProcess[str]:
    env = receiver_env(receiver, TELEMETRYFLOW_SERVICE_NAME="late-init",
                       TELEMETRYFLOW_SAMPLE_RATE=rate)
    return subprocess.run(python(str(APPS / "sdk_late_init_app.py")), env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def _said(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [re.sub(r"'[0-9a-f]{16}'", "<id>", line) for line in result.stderr.splitlines()
            if "(said once)" in line]


def test_sampled_and_unsampled_ids_are_said_alike(otlp_receiver):
    """Rate 1 and rate 0: the same three warnings (a double end, an event after the end,
    an id no span has), nothing else said; only the sampled run exports the spans."""
    sampled, unsampled = _run(otlp_receiver, "1"), _run(otlp_receiver, "0")
    for result in (sampled, unsampled):
        assert result.returncode == 0, result.stderr
        assert "done" in result.stdout and "bad arguments: 3" in result.stdout, result.stdout
        assert "Traceback" not in result.stderr
    assert _said(sampled) == _said(unsampled)
    assert [line.split("warning: ", 1)[1] for line in _said(sampled)] == [
        "end_span(<id>): this span was already ended; ignored (said once)",
        "add_span_event(<id>, 'late'): this span was already ended; the event is dropped "
        "(said once)",
        "end_span(<id>): no open span has this id (not one start_span() "
        "returned, or one ended long ago); ignored (said once)"]
    [work] = otlp_receiver.wait_for_spans(1, name="work")
    assert [name for name, _ in work.events] == ["step"]
    otlp_receiver.wait_for_spans(1, name="ended-twice")
    assert len([s for s in otlp_receiver.spans() if s.name == "work"]) == 1  # (rate 0: none)


def test_flask_middleware_built_before_initialize_exports_with_that_client(otlp_receiver):
    """FlaskTelemetryMiddleware(app, client) before client.initialize(), the client not
    global: the request's server span and duration reach the client's collector (they
    went to the global providers, which were no-ops: nothing arrived)."""
    result = _run(otlp_receiver, "1")
    assert result.returncode == 0, result.stderr
    [server] = otlp_receiver.wait_for_spans(1, name="GET /orders/<int:order_id>")
    assert (server.kind, server.attributes["http.response.status_code"]) == ("SERVER", 200)
    assert server.resource["service.name"] == "late-init"
    points = otlp_receiver.wait_for_metric("http.server.request.duration")
    assert {p.attributes["http.route"] for p in points} == {"/orders/<int:order_id>"}
    assert "not initialized" not in result.stderr
