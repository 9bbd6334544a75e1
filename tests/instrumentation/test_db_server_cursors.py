"""Database time spent outside ``execute``: server-side cursors' fetches (psycopg2 named
cursors, psycopg 3 ``ServerCursor``, asyncpg cursors), psycopg 3 ``cursor.stream()``,
asyncpg prepared statements and COPY, and psycopg_pool's connections; plus the end-to-end
run of tests/apps/db_server_cursor_app.py under the launcher."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import psycopg
import psycopg.errors
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest
from opentelemetry.trace import StatusCode

from ..e2e.launcher import app, python, receiver_env, run
from .data_fixtures import PG_DSN, SECRET_VALUE, Recorded, all_attribute_text, recorded

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")

SLOW = "SELECT pg_sleep(0.2), n FROM generate_series(1, 2) AS n"  # 0.2 s per row fetched
SLOW_TEXT = "SELECT pg_sleep(?), n FROM generate_series(?, ?) AS n"
PG = {"db.system.name": "postgresql", "db.namespace": "test", "server.address": "127.0.0.1",
      "server.port": 5432}


def _seconds(span) -> float:
    return (span.end_time - span.start_time) / 1e9


def _fetch_points(recorded: Recorded) -> tuple[int, float]:
    """(count, sum) of the FETCH duration points so far (the session's metrics add up)."""
    points = recorded.points(**{"db.operation.name": "FETCH"})
    return sum(p.count for p in points), sum(p.sum for p in points)


def _names(recorded: Recorded) -> list[str]:
    return [s.name for s in recorded.spans("postgresql")]


# ----- psycopg2 named cursors ---------------------------------------------------------------


def test_psycopg2_named_cursor_fetches_are_fetch_spans(recorded: Recorded):
    """A named cursor's execute is the DECLARE span and each fetch a FETCH span with the
    declared statement's text and a duration point: the query's run time (pg_sleep, which
    PostgreSQL runs during the fetches) is inside the FETCH spans, never lost."""
    count, total = _fetch_points(recorded)
    conn = psycopg2.connect(PG_DSN)
    try:
        with conn.cursor(name="tf_named") as cur:
            cur.execute("SELECT pg_sleep(0.2), n FROM generate_series(1, 3) AS n")
            rows = [*cur.fetchmany(1), cur.fetchone(), *cur.fetchall()]
    finally:
        conn.close()
    assert [r[1] for r in rows] == [1, 2, 3]
    declare, *fetches = recorded.spans("postgresql")
    assert declare.attributes["db.operation.name"] == "SELECT"
    assert [s.name for s in fetches] == ["FETCH", "FETCH", "FETCH"]
    assert dict(fetches[0].attributes) == {
        **PG, "db.operation.name": "FETCH",
        "db.query.text": "SELECT pg_sleep(?), n FROM generate_series(?, ?) AS n"}
    # A lower bound only: the server cannot finish pg_sleep(0.2) sooner.
    assert all(_seconds(s) >= 0.2 for s in fetches)
    now_count, now_total = _fetch_points(recorded)
    assert now_count - count == 3 and now_total - total >= 0.6


def test_psycopg2_named_cursor_iteration_traces_each_page_only(recorded: Recorded):
    """Iterating a named cursor (here a DictCursor) makes one FETCH span per page of
    itersize rows, the last (empty) page included and not an error; the rows in between
    come from memory and make none."""
    conn = psycopg2.connect(PG_DSN)
    try:
        with conn.cursor("tf_pages", cursor_factory=psycopg2.extras.DictCursor) as cur:
            cur.itersize = 2
            cur.execute("SELECT n FROM generate_series(1, 5) AS n")
            assert [row["n"] for row in cur] == [1, 2, 3, 4, 5]
    finally:
        conn.close()
    spans = recorded.spans("postgresql")
    assert [s.name for s in spans] == ["SELECT", "FETCH", "FETCH", "FETCH", "FETCH"]
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert "error.type" not in spans[-1].attributes


def test_psycopg2_client_side_cursor_fetches_stay_the_drivers(recorded: Recorded):
    """A plain cursor's fetches are psycopg2's own C methods (no wrapper, no cost) and make
    no span; only a named cursor's class overrides them, its program-chosen class kept."""
    conn = psycopg2.connect(PG_DSN)
    try:
        plain = conn.cursor()
        named = conn.cursor("tf_kind", cursor_factory=psycopg2.extras.RealDictCursor)
        for method in ("fetchone", "fetchmany", "fetchall", "__next__"):
            assert getattr(type(plain), method) is getattr(psycopg2.extensions.cursor, method)
            assert getattr(type(named), method) is not getattr(type(plain), method)
        assert isinstance(named, psycopg2.extras.RealDictCursor)
        plain.execute("SELECT generate_series(1, 3)")
        assert plain.fetchone() == (1,) and plain.fetchall() == [(2,), (3,)]
        named.close()
    finally:
        conn.close()
    assert _names(recorded) == ["SELECT"]


def test_psycopg2_fetch_from_a_cursor_declared_in_sql(recorded: Recorded):
    """Fetching through a named cursor from a cursor the program DECLAREd in SQL (no
    execute of ours saw its statement) is a plain FETCH span."""
    conn = psycopg2.connect(PG_DSN)
    try:
        conn.cursor().execute("DECLARE tf_sql_declared CURSOR FOR SELECT 1 UNION SELECT 2")
        assert sorted(conn.cursor("tf_sql_declared").fetchall()) == [(1,), (2,)]
    finally:
        conn.close()
    fetch = recorded.span("FETCH")
    assert dict(fetch.attributes) == {**PG, "db.operation.name": "FETCH"}


def test_psycopg2_named_cursor_fetch_failure_is_an_error_span(recorded: Recorded):
    """A fetch that fails on the server (the query divides by zero while running) is an
    ERROR FETCH span with the SQLSTATE, and the program gets psycopg2's exception."""
    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor("tf_fails")
        cur.execute("SELECT 1 / (n - 2) FROM generate_series(1, 3) AS n")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.fetchall()
    finally:
        conn.close()
    fetch = recorded.span("FETCH")
    assert fetch.status.status_code is StatusCode.ERROR
    assert fetch.attributes["db.response.status_code"] == "22012"


# ----- psycopg 3 server cursors and stream() ------------------------------------------------


def test_psycopg_server_cursor_fetches_are_fetch_spans(recorded: Recorded):
    """psycopg 3's server cursor: execute is the DECLARE span; fetchone, fetchmany,
    fetchall and each page iteration pulls are FETCH spans (with duration points) that
    hold the query's run time."""
    count, _ = _fetch_points(recorded)
    with psycopg.connect(PG_DSN) as conn:
        with conn.cursor(name="tf_server_fetch") as cur:
            cur.execute(SLOW)
            rows = [cur.fetchone(), *cur.fetchmany(1), *cur.fetchall()]
        with conn.cursor("tf_server_iter") as cur:
            cur.itersize = 2
            cur.execute("SELECT n FROM generate_series(1, 5) AS n")
            iterated = [row[0] for row in cur]
    assert [r[1] for r in rows] == [1, 2] and iterated == [1, 2, 3, 4, 5]
    assert _names(recorded) == ["SELECT", "FETCH", "FETCH", "FETCH",
                                "SELECT", "FETCH", "FETCH", "FETCH"]
    slow = recorded.spans("postgresql")[1:4]
    assert all(s.attributes["db.query.text"] == SLOW_TEXT for s in slow)
    assert _seconds(slow[0]) >= 0.2 and _seconds(slow[1]) >= 0.2  # lower bounds only
    assert _fetch_points(recorded)[0] - count == 6


def test_psycopg_async_server_cursor_iteration(recorded: Recorded):
    """The asyncio server cursor's fetches are traced the same way."""

    async def main() -> list[int]:
        async with (await psycopg.AsyncConnection.connect(PG_DSN) as conn,
                    conn.cursor("tf_async_server") as cur):
            await cur.execute("SELECT n FROM generate_series(1, 3) AS n")
            first = await cur.fetchone()
            return [first[0]] + [row[0] async for row in cur]

    assert asyncio.run(main()) == [1, 2, 3]
    assert _names(recorded) == ["SELECT", "FETCH", "FETCH"]


def test_psycopg_client_side_fetches_and_cursors_from_classes_make_no_fetch_span(
        recorded: Recorded):
    """A client-side cursor's fetches make no span, and a server cursor built from the
    class directly (not from one of our connections) stays untraced."""
    with psycopg.connect(PG_DSN) as conn:
        cur = conn.cursor()
        cur.execute("SELECT generate_series(1, 3)")
        assert cur.fetchone() == (1,) and cur.fetchall() == [(2,), (3,)]
        with psycopg.ServerCursor(conn.__wrapped__, "tf_by_class") as by_class:
            by_class.execute("SELECT 1")
            assert by_class.fetchall() == [(1,)]
    assert _names(recorded) == ["SELECT"]


def test_psycopg_stream_is_one_span(recorded: Recorded):
    """cursor.stream() is one span per statement: run to the end, left early (psycopg
    cancels the rest: not a failure), or failing on the server (an ERROR span with the
    SQLSTATE and psycopg's exception)."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        cur = conn.cursor()
        assert [r[0] for r in cur.stream("SELECT generate_series(1, 3)")] == [1, 2, 3]
        for _row in cur.stream("SELECT n FROM generate_series(1, 100000) AS n"):
            break
        with pytest.raises(psycopg.errors.DivisionByZero):
            list(cur.stream("SELECT 1 / (n - 2) FROM generate_series(1, 3) AS n"))
        assert cur.execute("SELECT 5").fetchone() == (5,)
    whole, left, failed, after = recorded.spans("postgresql")
    assert whole.attributes["db.query.text"] == "SELECT generate_series(?, ?)"
    assert left.status.status_code is StatusCode.UNSET and "error.type" not in left.attributes
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["db.response.status_code"] == "22012"
    assert after.name == "SELECT"


def test_psycopg_async_stream_is_one_span(recorded: Recorded):
    """AsyncCursor.stream() is traced the same way, rows and values untouched."""

    async def main() -> list[int]:
        async with await psycopg.AsyncConnection.connect(PG_DSN, autocommit=True) as conn:
            cur = conn.cursor()
            return [r[0] async for r in cur.stream("SELECT %s::text, 2", (SECRET_VALUE,))]

    assert asyncio.run(main()) == [SECRET_VALUE]
    span = recorded.span("SELECT")
    assert span.attributes["db.query.text"] == "SELECT %s::text, ?"
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_psycopg_pool_connections_are_traced(recorded: Recorded):
    """Connections psycopg_pool opens (it calls Connection.connect) are traced, their
    server cursors' fetches included, and the pool takes them back as its own."""
    pool_module = pytest.importorskip("psycopg_pool", reason="psycopg-pool not installed")
    with pool_module.ConnectionPool(PG_DSN, min_size=1, max_size=1, open=True) as pool:
        for _ in range(2):
            with pool.connection() as conn, conn.cursor("tf_pooled") as cur:
                # (not pg_am: test_db_psycopg reads that table's cumulative points)
                cur.execute("SELECT 1 FROM pg_opclass LIMIT 1")
                assert cur.fetchall() == [(1,)]
        assert pool.get_stats()["connections_num"] == 1
    assert _names(recorded) == ["SELECT pg_opclass", "FETCH pg_opclass"] * 2


# ----- asyncpg --------------------------------------------------------------------------------


def test_asyncpg_prepared_statements_are_traced(recorded: Recorded):
    """fetch/fetchrow/fetchval/executemany of a prepared statement are spans for its
    query (executemany with its batch size), after the PREPARE span of prepare() itself
    (see test_db_cursor_moves); explain's EXPLAIN is one too."""

    async def main() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            stmt = await conn.prepare("SELECT oid FROM pg_class WHERE oid > $1 LIMIT 2")
            assert len(await stmt.fetch(0)) == 2
            assert (await stmt.fetchrow(0)) is not None and await stmt.fetchval(0) > 0
            await stmt.executemany([(1,), (2,)])
        finally:
            await conn.close()

    asyncio.run(main())
    prepare, *spans = recorded.spans("postgresql")
    assert prepare.name == "PREPARE pg_class"
    assert [s.name for s in spans] == ["SELECT pg_class"] * 4
    assert spans[0].attributes["db.query.text"] == (
        "SELECT oid FROM pg_class WHERE oid > $1 LIMIT ?")
    assert spans[3].attributes["db.operation.batch.size"] == 2


def test_asyncpg_cursors_trace_each_round_trip(recorded: Recorded):
    """An asyncpg cursor's first round trip is a span for its query and each later one
    that pulls rows a FETCH span holding the query's run time; prefetched rows make none."""

    async def main() -> tuple[list[int], list[int]]:
        conn = await asyncpg.connect(PG_DSN)
        try:
            async with conn.transaction():
                iterated = [r[0] async for r in conn.cursor(
                    "SELECT n FROM generate_series(1, 5) AS n", prefetch=2)]
                cur = await conn.cursor(SLOW)
                fetched = [r[1] for r in await cur.fetch(1)]
                fetched.append((await cur.fetchrow())[1])
            return iterated, fetched
        finally:
            await conn.close()

    assert asyncio.run(main()) == ([1, 2, 3, 4, 5], [1, 2])
    names = [n for n in _names(recorded) if n not in ("BEGIN", "COMMIT")]
    assert names == ["SELECT", "FETCH", "FETCH", "SELECT", "FETCH", "FETCH"]
    slow = [s for s in recorded.spans("postgresql")
            if s.attributes.get("db.query.text") == SLOW_TEXT]
    assert [s.name for s in slow] == ["SELECT", "FETCH", "FETCH"]
    assert all(_seconds(s) >= 0.2 for s in slow[1:])  # lower bounds only


def test_asyncpg_copy_methods_are_copy_spans(recorded: Recorded):
    """copy_records_to_table, copy_to_table, copy_from_table and copy_from_query are COPY
    spans (the table named, schema-qualified when given); asyncpg's own quoting query
    inside copy_from_query is not the program's, and no row value is recorded."""

    async def main() -> bytes:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute("CREATE TEMP TABLE tf_copied (id int, note text)")
            await conn.copy_records_to_table("tf_copied", records=[(1, SECRET_VALUE)])
            await conn.copy_to_table("tf_copied", source=io.BytesIO(b"2\tb\n"),
                                     schema_name="pg_temp")
            await conn.copy_from_table("tf_copied", output=io.BytesIO())
            out = io.BytesIO()
            await conn.copy_from_query("SELECT id FROM tf_copied WHERE id > $1", 1,
                                       output=out)
            return out.getvalue()
        finally:
            await conn.close()

    assert asyncio.run(main()) == b"2\n"
    assert _names(recorded) == ["CREATE tf_copied", "COPY tf_copied", "COPY pg_temp.tf_copied",
                                "COPY tf_copied", "COPY tf_copied"]
    query_copy = recorded.spans("postgresql")[-1]
    assert query_copy.attributes["db.query.text"] == "SELECT id FROM tf_copied WHERE id > $1"
    assert SECRET_VALUE not in all_attribute_text(recorded)


# ----- end to end ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_server_cursor_fetch_time_arrives_end_to_end(otlp_receiver):
    """Under the launcher, a program's server-cursor fetches (psycopg2 and psycopg 3)
    arrive as FETCH children of its span with the declared query, holding the query's run
    time, and the stream() as one SELECT span; the duration metric has FETCH points."""
    proc = run(python(app("db_server_cursor_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "db_server_cursor_app [1, 2] [1, 2] [1, 2, 3]"
    root = otlp_receiver.wait_for_spans(1, name="db-server-cursor-app")[0]
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= 6)
    spans = sorted(_db_spans(otlp_receiver), key=lambda s: s.start_ns)
    assert [s.attributes["db.operation.name"] for s in spans] == [
        "SELECT", "FETCH", "FETCH", "SELECT", "FETCH", "SELECT"]
    for span in spans:
        assert span.parent_span_id == root.span_id and span.kind == "CLIENT"
    fetches = [s for s in spans if s.name == "FETCH"]
    assert all(s.attributes["db.query.text"] == SLOW_TEXT for s in fetches)
    assert sum(s.end_ns - s.start_ns for s in fetches) >= 0.8e9  # lower bound: 4 x 0.2 s
    points = otlp_receiver.wait_for_metric("db.client.operation.duration")
    assert any(p.attributes.get("db.operation.name") == "FETCH" for p in points)


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
