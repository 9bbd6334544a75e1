"""aiomysql under the instrumentation, against the local MariaDB."""

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

from .data_fixtures import MYSQL, REPO, SECRET_VALUE, Recorded, all_attribute_text, recorded, tag

aiomysql = pytest.importorskip("aiomysql")

__all__ = ["recorded"]
pytestmark = pytest.mark.service("mariadb")

CONNECT = {"host": MYSQL["host"], "port": MYSQL["port"], "user": MYSQL["user"],
           "db": MYSQL["database"]}
MARIADB = {"db.system.name": "mariadb", "db.namespace": "test",
           "server.address": "127.0.0.1", "server.port": 3306}


def _run(body: Any) -> Any:
    async def main() -> Any:
        conn = await aiomysql.connect(**CONNECT)
        try:
            return await body(conn)
        finally:
            conn.close()

    return asyncio.run(main())


def test_execute_span_lasts_until_the_result_and_has_the_connections_attributes(
        recorded: Recorded):
    """An awaited execute is one CLIENT span that ends only once the server answered
    (it holds the server's SLEEP), with the query's text, never its parameter values, and a
    duration point."""

    async def body(conn: Any) -> Any:
        async with conn.cursor() as cur:
            await cur.execute("SELECT SLEEP(0.2), %s FROM information_schema.schemata "
                              "LIMIT 1", (SECRET_VALUE,))
            return await cur.fetchall()

    assert _run(body) == ((0, SECRET_VALUE),)
    span = recorded.span("SELECT information_schema.schemata")
    assert span.kind is SpanKind.CLIENT
    assert span.end_time - span.start_time >= 200_000_000  # the server slept that long
    assert dict(span.attributes) == {
        **MARIADB, "db.operation.name": "SELECT",
        "db.collection.name": "information_schema.schemata",
        "db.query.text": "SELECT SLEEP(?), %s FROM information_schema.schemata LIMIT ?"}
    points = recorded.points(**{"db.collection.name": "information_schema.schemata"})
    assert [dict(p.attributes) for p in points] == [
        {**MARIADB, "db.operation.name": "SELECT",
         "db.collection.name": "information_schema.schemata"}]
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_failure_is_an_error_span_and_the_drivers_exception(recorded: Recorded):
    """A failing statement gives an ERROR span with the MySQL error number, no message,
    and the program gets aiomysql's exception unchanged; a closed cursor's refused execute
    makes no span."""

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        with pytest.raises(aiomysql.ProgrammingError) as caught:
            await cur.execute("SELECT * FROM tf_missing_aiomysql WHERE a = 'x'")
        await cur.close()
        with pytest.raises(aiomysql.ProgrammingError, match="Cursor closed"):
            await cur.execute("SELECT 'refused'")  # nothing sent: no span
        return caught.value

    exc = _run(body)
    assert exc.args[0] == 1146 and "tf_missing_aiomysql" in exc.args[1]
    assert [s.name for s in recorded.spans()] == ["SELECT tf_missing_aiomysql"]
    span = recorded.span("SELECT tf_missing_aiomysql")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "pymysql.err.ProgrammingError"
    assert span.attributes["error.type"] == "pymysql.err.ProgrammingError"
    assert span.attributes["db.response.status_code"] == "1146"
    assert "doesn't exist" not in all_attribute_text(recorded)


def test_executemany_is_one_span_and_callproc_a_call(recorded: Recorded):
    """executemany is one span with the batch size whether aiomysql folds the rows into
    one INSERT or runs the statement per row; callproc is a CALL span."""
    table, proc = f"t_aio_{tag()}", f"p_aio_{tag()}"

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        await cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INT, name TEXT)")
        await cur.execute(f"CREATE OR REPLACE PROCEDURE {proc}(IN a INT) SELECT a + 1")
        try:
            inserted = await cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)",
                                             [(1, "a"), (2, "b"), (3, "c")])
            updated = await cur.executemany(f"UPDATE {table} SET name = %s WHERE id = %s",
                                            [("x", 1), ("y", 2)])
            await cur.callproc(proc, (41,))
            total = await cur.fetchall()
            while await cur.nextset():
                pass
            return inserted, updated, total
        finally:
            await cur.execute(f"DROP TABLE {table}")
            await cur.execute(f"DROP PROCEDURE {proc}")

    assert _run(body) == (3, 2, ((42,),))
    names = [s.name for s in recorded.spans("mariadb")]
    assert names == [f"CREATE {table}", "CREATE", f"INSERT {table}", f"UPDATE {table}",
                     f"CALL {proc}", f"DROP {table}", "DROP"]
    assert recorded.span(f"INSERT {table}").attributes["db.operation.batch.size"] == 3
    assert recorded.span(f"UPDATE {table}").attributes["db.operation.batch.size"] == 2
    assert recorded.span(f"CALL {proc}").attributes["db.stored_procedure.name"] == proc


def test_unbuffered_cursor_rows_are_one_fetch_span(recorded: Recorded):
    """An SSCursor's execute ends at the result's header; reading its rows (async for,
    fetchmany) is one FETCH span with the query's text until they run out or the cursor
    is closed; a read after the end opens no other span."""

    async def body(conn: Any) -> Any:
        async with conn.cursor(aiomysql.SSDictCursor) as cur:
            await cur.execute("SELECT seq FROM seq_1_to_500")
            rows = [row async for row in cur]
            assert await cur.fetchone() is None
            await cur.execute("SELECT seq FROM seq_1_to_1000 WHERE seq > %s", (7,))
            first = await cur.fetchmany(2)
        return len(rows), first  # the second result was left unread: closing ends it

    assert _run(body) == (500, [{"seq": 8}, {"seq": 9}])
    names = [s.name for s in recorded.spans("mariadb")]
    assert names == ["SELECT seq_1_to_500", "FETCH seq_1_to_500", "SELECT seq_1_to_1000",
                     "FETCH seq_1_to_1000"]
    fetch = recorded.span("FETCH seq_1_to_1000")
    assert dict(fetch.attributes) == {
        **MARIADB, "db.operation.name": "FETCH", "db.collection.name": "seq_1_to_1000",
        "db.query.text": "SELECT seq FROM seq_1_to_1000 WHERE seq > %s"}
    assert recorded.points(**{"db.operation.name": "FETCH"})


def test_pool_connections_are_traced(recorded: Recorded):
    """Connections a pool hands out trace their statements (pool.acquire and the
    `async with pool.acquire()` form), with the pool's server."""

    async def main() -> Any:
        pool = await aiomysql.create_pool(minsize=1, maxsize=2, **CONNECT)
        try:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")
            conn = await pool.acquire()
            cur = await conn.cursor()
            await cur.execute("SELECT 2")
            pool.release(conn)
        finally:
            pool.close()
            await pool.wait_closed()

    asyncio.run(main())
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == ["SELECT", "SELECT"]
    assert all(s.attributes["server.address"] == "127.0.0.1" for s in spans)


def test_cancelled_await_ends_the_span_as_cancelled(recorded: Recorded):
    """A query whose awaiting task is cancelled (here by wait_for's timeout) ends its span
    as an ERROR with error.type asyncio.exceptions.CancelledError."""

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cur.execute("SELECT SLEEP(5)"), 0.2)

    _run(body)
    span = recorded.span("SELECT")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "asyncio.exceptions.CancelledError"


def test_commenter_sends_traceparent_and_suppression_makes_no_span(recorded: Recorded):
    """With the commenter on, MariaDB's process list shows the statement with the span's
    traceparent; inside suppress_instrumentation() the statement runs untraced."""
    recorded.telemetry().commenter = True

    async def body(conn: Any) -> Any:
        cur = await conn.cursor()
        await cur.execute(
            "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
        text = (await cur.fetchone())[0]
        with suppress_instrumentation():
            await cur.execute("SELECT 'suppressed'")
        return text

    text = _run(body)
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == ["SELECT information_schema.PROCESSLIST"]
    context = spans[0].get_span_context()
    assert f"traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-" in text


def scenario(tag_value: str) -> list[str]:
    """Everyday aiomysql use; the repr of everything observable."""

    async def main() -> list[Any]:
        out: list[Any] = []
        table = f"t_scn_{tag_value}"
        conn = await aiomysql.connect(**CONNECT)
        out.append(type(conn).__name__)
        try:
            async with conn.cursor() as cur:
                out.append(type(cur).__name__)
                await cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY,"
                                  " name TEXT)")
                out.append(await cur.execute(f"INSERT INTO {table} (name) VALUES (%s)",
                                             ("a",)))
                out += [cur.lastrowid, cur.rowcount]
                out.append(await cur.executemany(
                    f"INSERT INTO {table} (name) VALUES (%s)", [("b",), ("c",)]))
                await conn.commit()
                out.append(await cur.execute(f"SELECT id, name FROM {table} ORDER BY id"))
                out += [cur.description, await cur.fetchone(), await cur.fetchmany(1),
                        await cur.fetchall()]
                await cur.execute(f"SELECT name FROM {table}")
                out.append([row async for row in cur])
                try:
                    await cur.execute(f"SELECT * FROM missing_{tag_value}")
                except aiomysql.ProgrammingError as exc:
                    out.append((type(exc).__name__, exc.args[0]))
                out.append(cur.connection is conn)
            async with conn.cursor(aiomysql.SSCursor) as stream:
                out.append(await stream.execute(f"SELECT id FROM {table} ORDER BY id"))
                out += [await stream.fetchone(), [row async for row in stream]]
            async with conn.cursor(aiomysql.DictCursor) as cur:
                await cur.execute(f"SELECT name FROM {table} ORDER BY id LIMIT 2")
                out.append(await cur.fetchall())
        finally:
            cur = await conn.cursor()
            await cur.execute(f"DROP TABLE IF EXISTS {table}")
            conn.close()
        return out

    return [repr(x) for x in asyncio.run(main())]


def _plain_env() -> dict[str, str]:
    """This environment without anything that would instrument a Python started in it."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
            and k != "PYTHONPATH"}


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday aiomysql use gives the same results patched as in an unpatched
    interpreter."""
    name = f"{tag()}p"
    proc = subprocess.run(
        [sys.executable, "-c", "import json, sys; from tests.instrumentation.test_db_aiomysql"
         " import scenario; print(json.dumps(scenario(sys.argv[1])))", f"{tag()}u"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=_plain_env())
    assert proc.returncode == 0, proc.stderr
    unpatched = [line.replace(f"{tag()}u", "TAG") for line in json.loads(proc.stdout)]
    assert [line.replace(name, "TAG") for line in scenario(name)] == unpatched
    assert len(recorded.spans("mariadb")) >= 10


def test_patching_twice_still_makes_one_span_per_statement(recorded: Recorded):
    """A second patch (two bootstraps) leaves the traced methods as they are."""
    from telemetryflow_bootstrap.instrumentation import aiomysql as ours

    before = aiomysql.cursors.Cursor.execute
    ours.patch(aiomysql, recorded.context)
    assert aiomysql.cursors.Cursor.execute is before

    async def body(conn: Any) -> Any:
        await (await conn.cursor()).execute("SELECT 1")

    _run(body)
    assert [s.name for s in recorded.spans()] == ["SELECT"]
