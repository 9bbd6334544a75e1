"""aiopg under the instrumentation, against the local PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    PASSWORD,
    PG_SECRET_DSN,
    REPO,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    recorded,
    tag,
)

aiopg = pytest.importorskip("aiopg")

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")

DSN = "dbname=test user=postgres host=127.0.0.1 port=5432"
POSTGRES = {"db.system.name": "postgresql", "db.namespace": "test",
            "server.address": "127.0.0.1", "server.port": 5432}


def _run(body: Any, dsn: str = DSN) -> Any:
    async def main() -> Any:
        async with aiopg.connect(dsn) as conn:
            return await body(conn)

    return asyncio.run(main())


def _key(attributes: Any) -> frozenset[tuple[str, Any]]:
    return frozenset(dict(attributes).items())


def _point_counts(recorded: Recorded) -> dict[frozenset[tuple[str, Any]], int]:
    """Every duration point's count by attribute set: the reader is shared by the session's
    database tests, so what one test added is the difference of two of these."""
    return {_key(p.attributes): p.count for p in recorded.points()}


def test_execute_span_lasts_until_the_result_and_is_the_only_span(recorded: Recorded):
    """An awaited execute is exactly one CLIENT span (none from psycopg2's asynchronous
    cursor underneath, none for aiopg's own hstore lookup at connect), ending only once the
    server answered (it holds pg_sleep), with the query's text and a duration point; the
    password of the DSN and the parameter values appear nowhere."""

    async def body(conn: Any) -> Any:
        async with conn.cursor() as cur:
            await cur.execute("SELECT pg_sleep(0.2), %s::text FROM pg_class LIMIT 1",
                              (SECRET_VALUE,))
            return [row async for row in cur]

    before = _point_counts(recorded)
    assert _run(body, PG_SECRET_DSN) == [("", SECRET_VALUE)]
    spans = recorded.spans()
    assert [s.name for s in spans] == ["SELECT pg_class"]
    span = spans[0]
    assert span.kind is SpanKind.CLIENT
    assert span.end_time - span.start_time >= 200_000_000  # the server slept that long
    assert dict(span.attributes) == {
        **POSTGRES, "db.operation.name": "SELECT", "db.collection.name": "pg_class",
        "db.query.text": "SELECT pg_sleep(?), %s::text FROM pg_class LIMIT ?"}
    # one point, and only that one (the metrics are the session's: compared with before)
    after = _point_counts(recorded)
    added = {key: after[key] - before.get(key, 0) for key in after
             if after[key] != before.get(key, 0)}
    assert added == {_key({**POSTGRES, "db.operation.name": "SELECT",
                           "db.collection.name": "pg_class"}): 1}
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_failure_is_an_error_span_and_the_drivers_exception(recorded: Recorded):
    """A failing statement, which psycopg2 reports only while aiopg polls, gives an ERROR
    span with its SQLSTATE, and the program gets psycopg2's exception unchanged."""
    import psycopg2.errors

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        with pytest.raises(psycopg2.errors.UndefinedTable) as caught:
            await cur.execute("SELECT * FROM tf_missing_aiopg WHERE a = 'x'")
        return caught.value

    assert _run(body).pgcode == "42P01"
    span = recorded.span("SELECT tf_missing_aiopg")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "psycopg2.errors.UndefinedTable"
    assert span.attributes["db.response.status_code"] == "42P01"
    points = recorded.points(**{"db.collection.name": "tf_missing_aiopg"})
    assert points[0].attributes["error.type"] == "psycopg2.errors.UndefinedTable"


def test_pool_transactions_callproc_and_composed_sql(recorded: Recorded):
    """Pool connections (`await pool.cursor()`, `pool.acquire()`) are traced; a cursor.begin()
    transaction's BEGIN and COMMIT are spans; callproc is a CALL span; a psycopg2.sql
    composition without literals is rendered as the query text."""
    from psycopg2 import sql

    async def main() -> Any:
        async with aiopg.create_pool(DSN, minsize=1, maxsize=2) as pool:
            with await pool.cursor() as cur:
                await cur.execute("SELECT 1")
            async with pool.acquire() as conn, conn.cursor() as cur:
                async with cur.begin():
                    await cur.execute(sql.SQL("SELECT relname FROM {} LIMIT 1").format(
                        sql.Identifier("pg_class")))
                await cur.callproc("upper", ("abc",))
                return await cur.fetchone()

    assert asyncio.run(main()) == ("ABC",)
    names = [s.name for s in recorded.spans("postgresql")]
    assert names == ["SELECT", "BEGIN", 'SELECT "pg_class"', "COMMIT", "CALL upper"]
    assert recorded.span('SELECT "pg_class"').attributes["db.query.text"] == (
        'SELECT relname FROM "pg_class" LIMIT ?')
    assert recorded.span("CALL upper").attributes["db.stored_procedure.name"] == "upper"


def test_cancelled_and_timed_out_awaits_end_their_spans(recorded: Recorded):
    """A query whose awaiting task is cancelled ends its span with error.type
    asyncio.exceptions.CancelledError; one past aiopg's own timeout with TimeoutError."""

    async def main() -> None:
        async with aiopg.connect(DSN) as conn:
            cur = await conn.cursor()
            task = asyncio.ensure_future(cur.execute("SELECT pg_sleep(5)"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with aiopg.connect(DSN) as conn:
            cur = await conn.cursor()
            with pytest.raises(asyncio.TimeoutError):
                await cur.execute("SELECT pg_sleep(5), 2", timeout=0.2)

    asyncio.run(main())
    cancelled, timed_out = recorded.spans("postgresql")
    assert cancelled.attributes["error.type"] == "asyncio.exceptions.CancelledError"
    assert cancelled.status.status_code is StatusCode.ERROR
    assert timed_out.attributes["error.type"] == asyncio.TimeoutError.__qualname__ \
        if asyncio.TimeoutError.__module__ == "builtins" else "asyncio.exceptions.TimeoutError"


def test_commenter_sends_traceparent_and_suppression_makes_no_span(recorded: Recorded):
    """With the commenter on, pg_stat_activity shows the statement with the span's
    traceparent; inside suppress_instrumentation() the statement runs untraced."""
    recorded.telemetry().commenter = True

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        await cur.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
        text = (await cur.fetchone())[0]
        with suppress_instrumentation():
            await cur.execute("SELECT 'suppressed'")
        return text

    text = _run(body)
    spans = recorded.spans("postgresql")
    assert [s.name for s in spans] == ["SELECT pg_stat_activity"]
    context = spans[0].get_span_context()
    assert f"traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-" in text


def scenario(tag_value: str) -> list[str]:
    """Everyday aiopg use; the repr of everything observable."""

    async def main() -> list[Any]:
        out: list[Any] = []
        table = f"t_scn_{tag_value}"
        async with aiopg.connect(DSN) as conn:
            out.append(type(conn).__name__)
            async with conn.cursor() as cur:
                out.append(type(cur).__name__)
                await cur.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
                try:
                    out.append(await cur.execute(
                        f"INSERT INTO {table} (name) VALUES (%s), (%s), (%s)", ("a", "b", "c")))
                    out += [cur.rowcount, cur.statusmessage, cur.query]
                    await cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
                    out += [[d.name for d in cur.description], await cur.fetchone(),
                            await cur.fetchmany(1), await cur.fetchall()]
                    await cur.execute(f"SELECT name FROM {table} ORDER BY id")
                    out.append([row async for row in cur])
                    out.append(await cur.callproc("upper", ("x",)))
                    out.append(await cur.fetchall())
                    try:
                        await cur.executemany("SELECT 1", [()])
                    except Exception as exc:
                        out.append((type(exc).__name__, str(exc)))
                    try:
                        await cur.execute(f"SELECT * FROM missing_{tag_value}")
                    except Exception as exc:
                        out.append((type(exc).__name__, exc.pgcode))
                    out.append(cur.connection is conn)
                finally:
                    await cur.execute(f"DROP TABLE IF EXISTS {table}")
        return out

    return [repr(x) for x in asyncio.run(main())]


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday aiopg use gives the same results patched as in an unpatched interpreter."""
    name = f"{tag()}p"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
           and k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", "import json, sys; from tests.instrumentation.test_db_aiopg"
         " import scenario; print(json.dumps(scenario(sys.argv[1])))", f"{tag()}u"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    unpatched = [line.replace(f"{tag()}u", "TAG") for line in json.loads(proc.stdout)]
    assert [line.replace(name, "TAG") for line in scenario(name)] == unpatched
    assert len(recorded.spans("postgresql")) == 7  # one per statement sent


def test_patching_twice_still_makes_one_span_per_statement(recorded: Recorded):
    """A second patch (two bootstraps) leaves the traced methods as they are."""
    from telemetryflow_bootstrap.instrumentation import aiopg as ours

    before = aiopg.Cursor.execute
    ours.patch(aiopg, recorded.context)
    assert aiopg.Cursor.execute is before

    async def body(conn: Any) -> Any:
        await (await conn.cursor()).execute("SELECT 1")

    _run(body)
    assert [s.name for s in recorded.spans()] == ["SELECT"]
