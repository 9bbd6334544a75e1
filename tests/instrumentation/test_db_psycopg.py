"""psycopg 3 (sync and asyncio) under the DB-API instrumentation, against PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import psycopg.errors
import pytest
from opentelemetry.trace import StatusCode
from psycopg.rows import dict_row

from .data_fixtures import (
    PASSWORD,
    PG_DSN,
    PG_SECRET_DSN,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    our_frames,
    recorded,
    scenario_psycopg,
    scenario_psycopg_async,
    scenario_psycopg_proxied,
    tag,
    unpatched,
)

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")

PG = {"db.system.name": "postgresql", "db.namespace": "test", "server.address": "127.0.0.1",
      "server.port": 5432}


def test_cursor_and_connection_execute_are_traced(recorded: Recorded):
    """Cursor execute, connection execute and row_factory cursors each make one span with
    the connection's attributes; the connection is still a psycopg.Connection."""
    with psycopg.connect(PG_DSN) as conn:
        assert isinstance(conn, psycopg.Connection)
        conn.execute("SELECT 1 FROM pg_class LIMIT 1")
        with conn.cursor(row_factory=dict_row) as cur:
            assert cur.execute("SELECT 2 AS two").fetchone() == {"two": 2}
    first, second = recorded.spans("postgresql")
    assert first.name == "SELECT pg_class"
    assert dict(first.attributes) == {
        **PG, "db.operation.name": "SELECT", "db.collection.name": "pg_class",
        "db.query.text": "SELECT ? FROM pg_class LIMIT ?"}
    assert second.name == "SELECT"


def test_connect_classmethod_and_server_cursor_are_traced(recorded: Recorded):
    """Connections made with Connection.connect (as pools do) are traced too, and so are
    server-side cursors: their DECLARE and the FETCH of the rows (more in
    test_db_server_cursors)."""
    with psycopg.Connection.connect(PG_DSN) as conn, conn.cursor(name="tf_server") as cur:
        cur.execute("SELECT generate_series(1, 4)")
        assert [row[0] for row in cur] == [1, 2, 3, 4]
    spans = recorded.spans("postgresql")
    assert [s.name for s in spans] == ["SELECT", "FETCH"]
    assert [s.attributes["db.query.text"] for s in spans] == [
        "SELECT generate_series(?, ?)"] * 2


def test_failing_statement_is_an_error_span_with_sqlstate(recorded: Recorded):
    """A failing statement gives an ERROR span (exception event, error.type, SQLSTATE)
    and psycopg's own exception object."""
    with psycopg.connect(PG_DSN) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as caught:
            conn.execute("SELECT * FROM tf_missing_psycopg")
        assert caught.value.sqlstate == "42P01" and caught.value.__context__ is None
    span = recorded.span("SELECT tf_missing_psycopg")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "psycopg.errors.UndefinedTable"
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.events[0].name == "exception"


def test_no_password_or_parameter_value_in_any_attribute(recorded: Recorded):
    """A password-bearing DSN and secret parameters (execute, executemany, async) appear
    in no span attribute, event or metric point."""
    with psycopg.connect(PG_SECRET_DSN) as conn:
        conn.execute("SELECT %s::text", (SECRET_VALUE,))
        conn.cursor().executemany("SELECT %s::text", [(SECRET_VALUE,), (SECRET_VALUE,)])

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(PG_SECRET_DSN) as conn:
            await conn.execute("SELECT %(s)s::text", {"s": SECRET_VALUE})

    asyncio.run(run())
    assert len(recorded.spans("postgresql")) == 3
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_async_connection_cursor_and_errors(recorded: Recorded):
    """AsyncConnection.connect, async cursors and connection execute are traced under
    asyncio; a failure is an ERROR span and psycopg's exception."""

    async def run() -> list[object]:
        async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
            assert isinstance(conn, psycopg.AsyncConnection)
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1 FROM pg_proc LIMIT 1")
                rows = await cur.fetchall()
            with pytest.raises(psycopg.errors.UndefinedTable):
                await conn.execute("SELECT * FROM tf_missing_async")
            return rows

    assert asyncio.run(run()) == [(1,)]
    ok, failed = recorded.spans("postgresql")
    assert ok.name == "SELECT pg_proc" and ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "psycopg.errors.UndefinedTable"


def test_commenter_sends_traceparent_to_the_server(recorded: Recorded):
    """With the commenter on, the server sees the traceparent comment of the span."""
    recorded.telemetry().commenter = True
    with psycopg.connect(PG_DSN) as conn:
        text = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()[0]
    context = recorded.span("SELECT pg_stat_activity").get_span_context()
    assert f"traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-" in text


def test_duration_metric_points(recorded: Recorded):
    """Executes record duration points with the low-cardinality attributes."""
    with psycopg.connect(PG_DSN) as conn:
        conn.execute("SELECT 1 FROM pg_am LIMIT 1")
    points = recorded.points(**{"db.collection.name": "pg_am"})
    assert [dict(p.attributes) for p in points] == [
        {**PG, "db.operation.name": "SELECT", "db.collection.name": "pg_am"}]
    assert points[0].count >= 1


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday psycopg use (with-blocks, fetch*, iteration, executemany, row factories,
    transactions and rollback, server cursors, pipelines, sql composition, errors,
    isinstance) gives the same results patched as in an unpatched interpreter."""
    name = tag()
    expected = unpatched("psycopg", name)
    assert scenario_psycopg(name) == expected
    assert len(recorded.spans("postgresql")) >= 15


def test_async_behaviour_is_unchanged(recorded: Recorded):
    """The same for AsyncConnection and async cursors under asyncio.run."""
    name = tag()
    expected = unpatched("psycopg_async", name)
    assert scenario_psycopg_async(name) == expected
    assert len(recorded.spans("postgresql")) >= 8


def test_a_cursor_returned_by_connection_execute_stays_traced(recorded: Recorded):
    """``cur = conn.execute(...)`` returns a traced cursor (sync and async), so running it
    again is traced too, and its connection is the program's connection."""
    with psycopg.connect(PG_DSN) as conn:
        cur = conn.execute("SELECT 1 FROM pg_class LIMIT 1")
        assert cur.execute("SELECT 2 FROM pg_am LIMIT 1").fetchone() == (2,)
        assert cur.connection is conn

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
            cur = await conn.execute("SELECT 3 FROM pg_proc LIMIT 1")
            await cur.execute("SELECT 4 FROM pg_type LIMIT 1")
            assert await cur.fetchone() == (4,)
            assert cur.connection is conn

    asyncio.run(run())
    assert [s.name for s in recorded.spans("postgresql")] == [
        "SELECT pg_class", "SELECT pg_am", "SELECT pg_proc", "SELECT pg_type"]


def test_class_names_pickling_and_copying_act_as_unpatched(recorded: Recorded):
    """A proxied connection's and cursor's classes read as the driver's (they read
    ``_Connection``), and pickling and copying them gives the driver's own outcome (the
    proxy raised NotImplementedError)."""
    name = tag()
    assert scenario_psycopg_proxied(name) == unpatched("psycopg_proxied", name)


def test_proxies_have_exactly_the_methods_of_the_real_objects(recorded: Recorded):
    """A proxied cursor and connection answer hasattr() like the real ones for the methods
    we add (psycopg 3 has no callproc or executescript)."""
    with psycopg.connect(PG_DSN) as conn:
        cur = conn.cursor()
        for name in ("execute", "executemany", "executescript", "callproc", "__next__"):
            assert hasattr(cur, name) == hasattr(cur.__wrapped__, name), name
        for name in ("execute", "executemany", "executescript", "cursor"):
            assert hasattr(conn, name) == hasattr(conn.__wrapped__, name), name
        assert repr(conn) == repr(conn.__wrapped__)


def test_a_driver_error_shows_two_frames_of_ours(recorded: Recorded):
    """The traceback of an error psycopg raises in a traced execute holds two frames of
    ours (the traced method and the runner)."""
    with psycopg.connect(PG_DSN) as conn, pytest.raises(psycopg.errors.UndefinedTable) as caught:
        conn.cursor().execute("SELECT * FROM tf_missing_frames")
    assert our_frames(caught.value) == ["execute", "run"]

