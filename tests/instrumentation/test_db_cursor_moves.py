"""Server round trips outside execute and fetch: a server-side cursor's ``scroll()`` (a
``MOVE``: psycopg2 named cursors, psycopg 3 ``ServerCursor``), asyncpg's ``Cursor.forward``
(a ``MOVE``) and ``Connection.prepare`` (the prepare round trip), against the local
PostgreSQL. A server cursor's ``close()`` (a ``CLOSE``, no query work) stays untraced, and
client-side cursors' ``scroll()`` (in memory) stays the driver's own."""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg
import psycopg.errors
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import PG_DSN, Recorded, recorded

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")

# 0.2 s of server time per row the query produces, skipped rows included.
SLOW = "SELECT pg_sleep(0.2), n FROM generate_series(1, 4) AS n"
SLOW_TEXT = "SELECT pg_sleep(?), n FROM generate_series(?, ?) AS n"
PG = {"db.system.name": "postgresql", "db.namespace": "test", "server.address": "127.0.0.1",
      "server.port": 5432}
ROWS = "SELECT n FROM pg_class, generate_series(1, 3) AS n LIMIT 3"
ROWS_TEXT = "SELECT n FROM pg_class, generate_series(?, ?) AS n LIMIT ?"


def _seconds(span) -> float:
    return (span.end_time - span.start_time) / 1e9


def _names(recorded: Recorded) -> list[str]:
    return [s.name for s in recorded.spans("postgresql")]


def _points(recorded: Recorded, operation: str) -> int:
    """How many duration points of ``operation`` so far (the session's metrics add up)."""
    return sum(p.count for p in recorded.points(**{"db.operation.name": operation}))


# ----- psycopg2 ----------------------------------------------------------------------------


def test_psycopg2_named_cursor_scroll_is_a_move_span(recorded: Recorded):
    """A named cursor's scroll() is a MOVE span and duration point with the declared
    statement's text: an absolute scroll to row 2 makes the server compute (and sleep
    through) the rows it skips, and that time is in the MOVE span. close() (a CLOSE, no
    query work) makes none."""
    before = _points(recorded, "MOVE")
    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor("tf_move2", scrollable=True)
        cur.execute(SLOW)
        cur.scroll(2, mode="absolute")
        third = cur.fetchone()
        cur.scroll(-2)
        second = cur.fetchone()
        cur.close()
    finally:
        conn.close()
    assert (third[1], second[1]) == (3, 2)
    assert _names(recorded) == ["SELECT", "MOVE", "FETCH", "MOVE", "FETCH"]
    _, absolute, _, relative, _ = recorded.spans("postgresql")
    assert absolute.kind is SpanKind.CLIENT
    assert dict(absolute.attributes) == {
        **PG, "db.operation.name": "MOVE", "db.query.text": SLOW_TEXT}
    assert relative.attributes["db.query.text"] == SLOW_TEXT
    assert _seconds(absolute) >= 0.4  # a lower bound: two rows of pg_sleep(0.2)
    assert _points(recorded, "MOVE") - before == 2


def test_psycopg2_move_names_the_collection_and_failures_are_error_spans(recorded: Recorded):
    """The MOVE span is named after the declared statement's table; a MOVE the server
    refuses (backwards on a NO SCROLL cursor) is an ERROR span with the SQLSTATE, and the
    program gets psycopg2's exception."""
    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor("tf_move2_noscroll", scrollable=False)
        cur.execute(ROWS)
        cur.scroll(2)
        with pytest.raises(psycopg2.errors.ObjectNotInPrerequisiteState):
            cur.scroll(-1)
    finally:
        conn.close()
    moved, refused = recorded.spans("postgresql")[1:]
    assert moved.name == "MOVE pg_class" and refused.name == "MOVE pg_class"
    assert moved.attributes["db.collection.name"] == "pg_class"
    assert moved.attributes["db.query.text"] == ROWS_TEXT
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["db.response.status_code"] == "55000"


def test_psycopg2_client_side_scroll_stays_the_drivers(recorded: Recorded):
    """A client-side cursor keeps psycopg2's C scroll (it moves in memory: no span, no
    cost), its refusals untouched; only named cursors' class overrides it."""
    conn = psycopg2.connect(PG_DSN)
    try:
        plain = conn.cursor()
        assert type(plain).scroll is psycopg2.extensions.cursor.scroll
        assert type(conn.cursor("tf_move2_kind")).scroll is not type(plain).scroll
        plain.execute("SELECT generate_series(1, 3)")
        plain.scroll(2, mode="absolute")
        assert plain.fetchone() == (3,)
        with pytest.raises(psycopg2.ProgrammingError, match="scroll mode"):
            plain.scroll(1, mode="sideways")
    finally:
        conn.close()
    assert _names(recorded) == ["SELECT"]


# ----- psycopg 3 ----------------------------------------------------------------------------


def test_psycopg_server_cursor_scroll_is_a_move_span(recorded: Recorded):
    """psycopg 3's ServerCursor.scroll() is a MOVE span with the declared statement's text
    holding the skipped rows' run time; close() makes none."""
    before = _points(recorded, "MOVE")
    with psycopg.connect(PG_DSN) as conn:
        cur = conn.cursor("tf_move3", scrollable=True)
        cur.execute(SLOW)
        cur.scroll(2, mode="absolute")
        third = cur.fetchone()
        cur.scroll(-2)
        second = cur.fetchone()
        cur.close()
    assert (third[1], second[1]) == (3, 2)
    assert _names(recorded) == ["SELECT", "MOVE", "FETCH", "MOVE", "FETCH"]
    absolute = recorded.spans("postgresql")[1]
    assert dict(absolute.attributes) == {
        **PG, "db.operation.name": "MOVE", "db.query.text": SLOW_TEXT}
    assert _seconds(absolute) >= 0.4  # a lower bound: two rows of pg_sleep(0.2)
    assert _points(recorded, "MOVE") - before == 2


def test_psycopg_move_failure_and_bad_mode(recorded: Recorded):
    """A MOVE the server refuses is an ERROR span with the SQLSTATE; a mode psycopg
    refuses before sending makes no span; a client-side cursor's scroll makes none."""
    with psycopg.connect(PG_DSN) as conn:
        plain = conn.cursor()
        plain.execute("SELECT generate_series(1, 3)")
        plain.scroll(1)
        assert plain.fetchone() == (2,)
        cur = conn.cursor("tf_move3_noscroll", scrollable=False)
        cur.execute(ROWS)
        with pytest.raises(ValueError, match="bad mode"):
            cur.scroll(1, mode="sideways")
        cur.scroll(2)
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
            cur.scroll(-1)
    assert _names(recorded) == ["SELECT", "SELECT pg_class", "MOVE pg_class", "MOVE pg_class"]
    refused = recorded.spans("postgresql")[-1]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes["db.response.status_code"] == "55000"


def test_psycopg_async_server_cursor_scroll(recorded: Recorded):
    """The asyncio ServerCursor's scroll() is traced the same way; close() is not."""

    async def main() -> int:
        async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
            cur = conn.cursor("tf_move3_async")
            await cur.execute(ROWS)
            await cur.scroll(2)
            row = await cur.fetchone()
            await cur.close()
            return row[0]

    assert asyncio.run(main()) == 3
    assert _names(recorded) == ["SELECT pg_class", "MOVE pg_class", "FETCH pg_class"]
    assert recorded.spans("postgresql")[1].attributes["db.query.text"] == ROWS_TEXT


# ----- asyncpg -------------------------------------------------------------------------------


def test_asyncpg_cursor_forward_is_a_move_span(recorded: Recorded):
    """Cursor.forward(n) is a MOVE span and duration point with the cursor's query text,
    holding the skipped rows' run time; a forward asyncpg refuses before sending (n <= 0)
    makes none."""
    before = _points(recorded, "MOVE")

    async def main() -> tuple[int, int]:
        conn = await asyncpg.connect(PG_DSN)
        try:
            async with conn.transaction():
                cur = await conn.cursor(SLOW)
                skipped = await cur.forward(2)
                with pytest.raises(asyncpg.InterfaceError):
                    await cur.forward(0)
                return skipped, (await cur.fetchrow())[1]
        finally:
            await conn.close()

    assert asyncio.run(main()) == (2, 3)
    names = [n for n in _names(recorded) if n not in ("BEGIN", "COMMIT")]
    assert names == ["SELECT", "MOVE", "FETCH"]
    move = recorded.span("MOVE")
    assert dict(move.attributes) == {**PG, "db.operation.name": "MOVE",
                                     "db.query.text": SLOW_TEXT}
    assert _seconds(move) >= 0.4  # a lower bound: two rows of pg_sleep(0.2)
    assert _points(recorded, "MOVE") - before == 1


def test_asyncpg_prepare_is_a_prepare_span(recorded: Recorded):
    """conn.prepare(query) is a PREPARE span and duration point for the query (its text,
    its table); a query the server cannot prepare is an ERROR span with the SQLSTATE and
    asyncpg's exception. The statement's own calls stay spans of the query's operation."""
    before = _points(recorded, "PREPARE")

    async def main() -> int:
        conn = await asyncpg.connect(PG_DSN)
        try:
            stmt = await conn.prepare("SELECT count(*) FROM pg_class WHERE oid > $1")
            with pytest.raises(asyncpg.UndefinedTableError):
                await conn.prepare("SELECT 1 FROM tf_missing_prepare")
            return await stmt.fetchval(0)
        finally:
            await conn.close()

    assert asyncio.run(main()) > 0
    assert _names(recorded) == ["PREPARE pg_class", "PREPARE tf_missing_prepare",
                                "SELECT pg_class"]
    prepare, failed, _ = recorded.spans("postgresql")
    assert dict(prepare.attributes) == {
        **PG, "db.operation.name": "PREPARE", "db.collection.name": "pg_class",
        "db.query.text": "SELECT count(*) FROM pg_class WHERE oid > $1"}
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["db.response.status_code"] == "42P01"
    assert _points(recorded, "PREPARE") - before == 2


def test_asyncpg_pool_prepare_is_traced_and_fetch_makes_no_prepare_span(recorded: Recorded):
    """A pool connection's prepare() is traced too, while a plain fetch (which prepares
    through asyncpg's statement cache, inside its own round trips) makes no PREPARE span."""

    async def main() -> None:
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await conn.fetch("SELECT 1 FROM pg_namespace LIMIT 1")
                await (await conn.prepare("SELECT 2")).fetch()
        finally:
            await pool.close()

    asyncio.run(main())
    assert _names(recorded) == ["SELECT pg_namespace", "PREPARE", "SELECT"]
