"""asyncpg under the instrumentation, against the local PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    PASSWORD,
    PG_DSN,
    PG_SECRET_DSN,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    our_frames,
    recorded,
    scenario_asyncpg,
    tag,
    unpatched,
)

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")


def test_fetch_execute_and_pool_calls_are_spans(recorded: Recorded):
    """fetch/fetchval/fetchrow/execute on a connection and on a pool each make one CLIENT
    span with the server asyncpg connected to."""

    async def run() -> None:
        conn = await asyncpg.connect(PG_DSN)
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE oid = $1", 0) == 0
        await conn.execute("SELECT 1")
        await conn.close()
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=1)
        assert (await pool.fetchrow("SELECT 2 AS two"))["two"] == 2
        await pool.close()

    asyncio.run(run())
    names = [s.name for s in recorded.spans("postgresql")]
    assert names[:3] == ["SELECT pg_class", "SELECT", "SELECT"]
    span = recorded.spans("postgresql")[0]
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "db.system.name": "postgresql", "db.namespace": "test",
        "server.address": "127.0.0.1", "server.port": 5432, "db.operation.name": "SELECT",
        "db.collection.name": "pg_class",
        "db.query.text": "SELECT count(*) FROM pg_class WHERE oid = $1"}


def test_failure_is_an_error_span_and_asyncpgs_exception(recorded: Recorded):
    """A failing query gives an ERROR span with SQLSTATE and the original exception."""

    async def run() -> None:
        conn = await asyncpg.connect(PG_DSN)
        try:
            with pytest.raises(asyncpg.UndefinedTableError) as caught:
                await conn.fetch("SELECT * FROM tf_missing_asyncpg")
            assert caught.value.sqlstate == "42P01" and caught.value.__context__ is None
        finally:
            await conn.close()

    asyncio.run(run())
    span = recorded.span("SELECT tf_missing_asyncpg")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncpg.exceptions.UndefinedTableError"
    assert span.attributes["db.response.status_code"] == "42P01"
    points = recorded.points(**{"db.collection.name": "tf_missing_asyncpg"})
    assert points[0].attributes["error.type"] == "asyncpg.exceptions.UndefinedTableError"


def test_no_password_or_parameter_value_in_any_attribute(recorded: Recorded):
    """A password-bearing DSN and secret arguments appear in no attribute."""

    async def run() -> None:
        conn = await asyncpg.connect(PG_SECRET_DSN)
        await conn.fetchval("SELECT $1::text", SECRET_VALUE)
        await conn.executemany("SELECT $1::text", [(SECRET_VALUE,), (SECRET_VALUE,)])
        await conn.close()

    asyncio.run(run())
    batch = recorded.spans("postgresql")[1]
    assert batch.attributes["db.operation.batch.size"] == 2
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday asyncpg use (execute status, executemany, fetch*, transactions, errors,
    pools) gives the same results patched as in an unpatched interpreter."""
    name = tag()
    expected = unpatched("asyncpg", name)
    assert scenario_asyncpg(name) == expected
    assert len(recorded.spans("postgresql")) >= 10


def test_pool_housekeeping_makes_no_spans(recorded: Recorded):
    """The statements asyncpg sends on its own when a pool takes a connection back (the
    reset query, the ROLLBACK of a transaction left open) make no span; the program's
    statements do, those of a pool's ``reset=`` callback included."""

    async def reset(conn: asyncpg.Connection) -> None:
        await conn.execute("SET application_name = 'tf-reset'")

    async def run() -> None:
        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=1)
        for _ in range(3):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
        async with pool.acquire() as conn:
            await conn.transaction().start()  # left open: the release rolls it back
        await pool.close()
        custom = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=1, reset=reset)
        async with custom.acquire() as conn:
            await conn.fetchval("SELECT 2")
        await custom.close()

    asyncio.run(run())
    assert [s.attributes["db.operation.name"] for s in recorded.spans("postgresql")] == [
        "SELECT", "SELECT", "SELECT", "BEGIN", "SELECT", "SET"]


def test_a_driver_error_shows_two_frames_of_ours(recorded: Recorded):
    """The traceback of an error asyncpg raises in a traced call holds two frames of ours
    (the traced method and the runner)."""

    async def run() -> BaseException:
        conn = await asyncpg.connect(PG_DSN)
        try:
            with pytest.raises(asyncpg.UndefinedTableError) as caught:
                await conn.fetch("SELECT * FROM tf_missing_frames")
            return caught.value
        finally:
            await conn.close()

    assert our_frames(asyncio.run(run())) == ["method", "run_async"]

