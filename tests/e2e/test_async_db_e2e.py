"""aiomysql and aiopg end to end: the installed launcher, a real asyncio program, the real
MariaDB and PostgreSQL, and the OTLP receiver."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("mariadb"),
              pytest.mark.service("postgres")]

PASSWORD = "app-pw-never-exported-5521"
SECRET = "row-value-never-exported-4411"
EXPECTED = {"SELECT", "SELECT seq_1_to_100", "FETCH seq_1_to_100",  # aiomysql
            "SELECT missing_async_db_app"}  # aiopg (its SELECT is one of the two above)


def test_async_drivers_spans_arrive_as_children_of_the_programs_span(otlp_receiver):
    """One run querying MariaDB through an aiomysql pool (and an SSCursor's rows) and
    PostgreSQL through aiopg: each statement is a CLIENT span, child of the program's span,
    lasting until its result arrived; the failing one an ERROR with its SQLSTATE; duration
    points for both systems; the DSN's password and the parameter values nowhere."""
    proc = run(python(app("async_db_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "async_db_app 1 100 1 42P01"
    root = otlp_receiver.wait_for_spans(1, name="async-db-app")[0]
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= 5)
    spans = _db_spans(otlp_receiver)
    assert sorted(s.name for s in spans) == sorted([*EXPECTED, "SELECT"])
    for span in spans:
        assert span.kind == "CLIENT"
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
    by_system = {(s.attributes["db.system.name"], s.name): s for s in spans}
    for system in ("mariadb", "postgresql"):
        sleeping = by_system[system, "SELECT"]
        assert sleeping.duration_ns >= 100_000_000  # the server slept that long
        assert sleeping.attributes["db.namespace"] == "test"
        assert sleeping.attributes["server.address"] == "127.0.0.1"
    failed = by_system["postgresql", "SELECT missing_async_db_app"]
    assert failed.status_code == "ERROR"
    assert failed.attributes["error.type"] == "psycopg2.errors.UndefinedTable"
    assert failed.attributes["db.response.status_code"] == "42P01"
    for system in ("mariadb", "postgresql"):
        otlp_receiver.wait_for_metric(
            "db.client.operation.duration",
            where=lambda p, system=system: p.attributes.get("db.system.name") == system)
    exported = repr([r.message for r in otlp_receiver.requests()])
    for secret in (PASSWORD, SECRET):
        assert secret not in exported and secret not in proc.stderr


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
