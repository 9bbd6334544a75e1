"""Database and Redis instrumentation end to end: the installed launcher, a real program,
the real servers and the real OTLP receiver."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("postgres"), pytest.mark.service("redis")]

SQLITE_SPANS = {"CREATE orders", "INSERT orders", "SELECT orders"}
OTHER_SPANS = {"SET", "GET", "DEL", "SELECT pg_class"}


def test_db_spans_are_children_of_the_app_span(otlp_receiver):
    """SQLite, Redis and PostgreSQL calls made under the program's own span arrive as
    CLIENT children of it, in its trace, with their semconv attributes, and the duration
    metric arrives too."""
    proc = run(python(app("data_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "data_app 1 1 1"
    root = otlp_receiver.wait_for_spans(1, name="data-app")[0]
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= len(SQLITE_SPANS | OTHER_SPANS))
    children = {s.name: s for s in _db_spans(otlp_receiver)}
    assert set(children) == SQLITE_SPANS | OTHER_SPANS
    for span in children.values():
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
        assert span.kind == "CLIENT"
    assert children["SELECT orders"].attributes["db.system.name"] == "sqlite"
    assert children["GET"].attributes["db.query.text"] == "GET ?"
    assert children["SELECT pg_class"].attributes["server.port"] == 5432
    points = otlp_receiver.wait_for_metric("db.client.operation.duration")
    assert {p.attributes["db.system.name"] for p in points} >= {"sqlite", "redis",
                                                                "postgresql"}


def test_disabled_by_name_leaves_that_library_untraced(otlp_receiver):
    """TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=sqlite3: no SQLite spans, while Redis and
    PostgreSQL are still traced."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="sqlite3")
    proc = run(python(app("data_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    otlp_receiver.wait_for_spans(1, name="data-app")  # the program's span ends last
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= len(OTHER_SPANS))
    spans = _db_spans(otlp_receiver)
    assert {s.name for s in spans} == OTHER_SPANS
    assert {s.attributes["db.system.name"] for s in spans} == {"redis", "postgresql"}


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
