"""Database and Redis operations the instrumentation used to leave out or describe wrongly,
end to end: the installed launcher, a real program, the real servers and OTLP receiver."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("postgres"), pytest.mark.service("redis")]

EXPECTED = ["COPY", "COPY", "SET", "WATCH", "GET", "MULTI", "HSET", "DEL"]


def test_copy_watch_and_redis_errors_arrive_as_child_spans(otlp_receiver):
    """psycopg's copy() block and psycopg2's copy_expert arrive as COPY spans, a WATCHed
    Redis transaction as WATCH, GET and MULTI spans, and a refused Redis command with its
    error prefix as db.response.status_code; all children of the program's span, with no
    row value anywhere."""
    proc = run(python(app("db_hunt_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "db_hunt_app 2 1"
    root = otlp_receiver.wait_for_spans(1, name="db-hunt-app")[0]
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= len(EXPECTED) + 2)
    spans = sorted(_db_spans(otlp_receiver), key=lambda s: s.start_ns)
    operations = [s.attributes["db.operation.name"] for s in spans]
    assert operations == ["CREATE", "COPY", "CREATE", *EXPECTED[1:]]
    for span in spans:
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
        assert span.kind == "CLIENT"
    copies = [s for s in spans if s.name.startswith("COPY ")]
    assert len(copies) == 2
    hset = next(s for s in spans if s.name == "HSET")
    assert hset.status_code == "ERROR"
    assert hset.attributes["db.response.status_code"] == "WRONGTYPE"
    assert "row-value-never-exported-4411" not in repr([(s.name, s.attributes, s.events,
                                                         s.status_message) for s in spans])
    points = otlp_receiver.wait_for_metric("db.client.operation.duration")
    assert any(p.attributes.get("db.response.status_code") == "WRONGTYPE" for p in points)


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
