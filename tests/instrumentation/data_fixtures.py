"""Fixtures for the database and Redis instrumentation tests.

``recorded``: in-memory span and metric exporters behind a hand-made PatchContext; every
data instrumentation in the catalog is patched with it once per session (patching is global
and permanent) and the spans are cleared around each test.

The ``scenario_*`` functions are each library's everyday usage (context managers, fetch*,
iteration, executemany, rowcount/description/lastrowid, transactions, isinstance, errors),
returning the ``repr`` of everything observable. The behaviour tests run them patched in
the test process and unpatched in a subprocess (``python -m
tests.instrumentation.data_fixtures NAME TAG``), and compare.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DURATION = "db.client.operation.duration"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PG_SECRET_DSN = "postgresql://postgres:s3cr3tpw@127.0.0.1:5432/test"
PASSWORD = "s3cr3tpw"
SECRET_VALUE = "t0p-secret-value-9731"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}
REDIS_URL = "redis://127.0.0.1:6379/0"


def tag() -> str:
    """A name fragment unique to this test process (tables, keys)."""
    return f"tf{os.getpid()}"


# ----- recorded telemetry ------------------------------------------------------------------


class Recorded:
    """The session's in-memory exporters, with the lookups the tests need."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from telemetryflow_bootstrap.domain.config import TelemetryConfig
        from telemetryflow_bootstrap.instrumentation.registry import PatchContext

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.context = PatchContext(
            tracer=self.tracer_provider.get_tracer("tests.data"),
            meter=self.meter_provider.get_meter("tests.data"),
            logger_provider=None, config=TelemetryConfig(), handler=None)

    def patch_all(self) -> None:
        from telemetryflow_bootstrap.instrumentation import _catalog_data

        for entry in _catalog_data.ENTRIES:
            try:
                library = importlib.import_module(entry.modules[0])
            except ImportError:
                continue  # mysqlclient may not be installed; its tests skip
            module_path, _, function = entry.patch.partition(":")
            getattr(importlib.import_module(module_path), function)(library, self.context)

    def spans(self, system: str | None = None) -> list[Any]:
        spans = self.exporter.get_finished_spans()
        if system is None:
            return list(spans)
        return [s for s in spans if s.attributes.get("db.system.name") == system]

    def span(self, name: str) -> Any:
        """The one finished span called ``name``."""
        found = [s for s in self.exporter.get_finished_spans() if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.exporter.get_finished_spans()])
        return found[0]

    def points(self, **attributes: Any) -> list[Any]:
        """Duration points whose attributes include ``attributes``."""
        data = self.reader.get_metrics_data()
        found = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != DURATION:
                        continue
                    for point in metric.data.data_points:
                        if all(point.attributes.get(k) == v for k, v in attributes.items()):
                            found.append(point)
        return found

    def telemetry(self) -> Any:
        from telemetryflow_bootstrap.instrumentation import dbapi

        return dbapi.telemetry_for(self.context)


_session: list[Recorded] = []


def session_recorded() -> Recorded:
    """The one patched ``Recorded`` of this process (made and patched on first use)."""
    if not _session:
        made = Recorded()
        made.patch_all()
        _session.append(made)
    return _session[0]


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """The patched session's telemetry, with no spans left from earlier tests; the DB
    switches (commenter, redis argument capture) are restored after the test."""
    session = session_recorded()
    telemetry = session.telemetry()
    switches = (telemetry.commenter, telemetry.capture_args)
    session.exporter.clear()
    yield session
    telemetry.commenter, telemetry.capture_args = switches
    session.exporter.clear()


def all_attribute_text(recorded: Recorded) -> str:
    """Every attribute of every span, event and duration point, as one string to grep."""
    parts = []
    for span in recorded.spans():
        parts.append(f"{span.name} {dict(span.attributes)!r} {span.status.description!r}")
        parts.extend(f"{event.name} {dict(event.attributes)!r}" for event in span.events)
    parts.extend(repr(dict(point.attributes)) for point in recorded.points())
    return "\n".join(parts)


def unpatched(name: str, tag_value: str) -> list[str]:
    """``scenario_<name>(tag_value)`` run in a fresh interpreter that nothing patched."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
           and k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.instrumentation.data_fixtures", name, tag_value],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# ----- scenarios: each library's everyday use ----------------------------------------------


def scenario_sqlite3(tag: str) -> list[str]:
    import sqlite3

    out: list[Any] = []
    conn = sqlite3.connect(":memory:")
    out.append(isinstance(conn, sqlite3.Connection))
    with conn as same:
        out.append(same is conn)
        conn.execute(f"CREATE TABLE t_{tag} (id INTEGER PRIMARY KEY, name TEXT)")
    cur = conn.cursor()
    out.append(isinstance(cur, sqlite3.Cursor))
    out.append(cur.execute(f"INSERT INTO t_{tag} (name) VALUES (?)", ("a",)) is cur)
    out += [cur.lastrowid, cur.rowcount]
    cur.executemany(f"INSERT INTO t_{tag} (name) VALUES (?)", [("b",), ("c",)])
    out.append(cur.rowcount)
    cur.execute(f"SELECT id, name FROM t_{tag} ORDER BY id")
    out += [cur.description, cur.fetchone(), cur.fetchmany(1), cur.fetchall()]
    out.append(list(conn.execute(f"SELECT name FROM t_{tag} ORDER BY id")))
    out.append(next(cur.execute("SELECT 42")))
    out.append([row for row in cur.execute(f"SELECT id FROM t_{tag} WHERE id > ?", (1,))])
    conn.row_factory = sqlite3.Row
    row = conn.execute(f"SELECT name FROM t_{tag} ORDER BY id").fetchone()
    out.append((type(row).__name__, row["name"]))
    conn.row_factory = None
    conn.commit()
    conn.execute(f"DELETE FROM t_{tag}")
    out.append(conn.in_transaction)
    conn.rollback()
    out.append(conn.execute(f"SELECT count(*) FROM t_{tag}").fetchone())
    try:
        with conn:
            conn.execute(f"INSERT INTO t_{tag} (name) VALUES ('x')")
            raise ValueError("roll back")
    except ValueError:
        pass
    out.append(conn.execute(f"SELECT count(*) FROM t_{tag}").fetchone())
    cur.executescript(f"CREATE TABLE u_{tag} (a); INSERT INTO u_{tag} VALUES (1);")
    out.append(conn.execute(f"SELECT * FROM u_{tag}").fetchall())
    try:
        cur.execute(f"SELECT * FROM missing_{tag}")
    except sqlite3.OperationalError as exc:
        out.append((type(exc).__name__, str(exc)))
    target = sqlite3.connect(":memory:")
    conn.backup(target)
    out.append(target.execute(f"SELECT count(*) FROM t_{tag}").fetchone())
    out.append(cur.connection is conn)
    conn.create_function("twice", 1, lambda x: x * 2)
    out.append(conn.execute("SELECT twice(21)").fetchone())
    out.append(len(list(conn.iterdump())))
    cur.close()
    conn.close()
    target.close()
    return [repr(x) for x in out]


def scenario_psycopg2(tag: str) -> list[str]:
    import psycopg2
    import psycopg2.extensions
    import psycopg2.extras
    from psycopg2 import sql

    out: list[Any] = []
    conn = psycopg2.connect(PG_DSN)
    table = f"t_{tag}"
    try:
        out.append(isinstance(conn, psycopg2.extensions.connection))
        with conn as same:
            out.append(same is conn)
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {table}")
                cur.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
                cur.execute(f"CREATE OR REPLACE FUNCTION add_{tag}(a int, b int) RETURNS int "
                            "AS 'SELECT a + b' LANGUAGE sql")
        cur = conn.cursor()
        out.append(isinstance(cur, psycopg2.extensions.cursor))
        out.append(cur.execute(f"INSERT INTO {table} (name) VALUES (%s)", ("a",)))
        out += [cur.rowcount, cur.statusmessage, cur.query]
        cur.executemany(f"INSERT INTO {table} (name) VALUES (%(n)s)", [{"n": "b"}, {"n": "c"}])
        out.append(cur.rowcount)
        cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
        out += [cur.description, cur.fetchone(), cur.fetchmany(1), cur.fetchall()]
        cur.execute(f"SELECT name FROM {table} ORDER BY id")
        out.append([row for row in cur])
        cur.execute("SELECT 1")
        out.append(next(cur))
        out.append(cur.mogrify("SELECT %s", ("x",)))
        cur.callproc(f"add_{tag}", (2, 3))
        out.append(cur.fetchall())
        psycopg2.extras.execute_values(cur, f"INSERT INTO {table} (name) VALUES %s",
                                       [("d",), ("e",)])
        out.append(cur.rowcount)
        conn.commit()
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as dict_cur:
            dict_cur.execute(f"SELECT name FROM {table} ORDER BY id LIMIT 2")
            out += [dict_cur.__class__.__name__, dict_cur.fetchall()]
        with conn.cursor(name=f"named_{tag}") as named:
            named.itersize = 2
            named.execute(f"SELECT id FROM {table} ORDER BY id")
            out.append([row for row in named])
        psycopg2.extras.register_uuid(conn_or_curs=conn)
        psycopg2.extras.register_default_json(conn)
        out.append(sql.Identifier("a", "b").as_string(conn))
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        cur.execute(query)
        out.append(cur.fetchone())
        cur.execute(f"DELETE FROM {table}")
        conn.rollback()
        cur.execute(f"SELECT count(*) FROM {table}")
        out.append(cur.fetchone())
        try:
            cur.execute(f"SELECT * FROM missing_{tag}")
        except psycopg2.errors.UndefinedTable as exc:
            out.append((type(exc).__name__, exc.pgcode))
        conn.rollback()
        out.append(cur.connection is conn)
        conn.autocommit = True
        out.append(conn.autocommit)
    finally:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"DROP FUNCTION IF EXISTS add_{tag}(int, int)")
        conn.close()
    out.append(conn.closed)
    return [repr(x) for x in out]


def scenario_psycopg(tag: str) -> list[str]:
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    out: list[Any] = []
    table = f"t_{tag}"
    with psycopg.connect(PG_DSN) as conn:
        try:
            out.append(isinstance(conn, psycopg.Connection))
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
            with conn.cursor() as cur:
                out.append(isinstance(cur, psycopg.Cursor))
                out.append(cur.execute(f"INSERT INTO {table} (name) VALUES (%s)", ("a",))
                           is cur)
                out += [cur.rowcount, cur.statusmessage]
                cur.executemany(f"INSERT INTO {table} (name) VALUES (%s)", [("b",), ("c",)])
                out.append(cur.rowcount)
                cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
                out += [cur.description, cur.fetchone(), cur.fetchmany(1), cur.fetchall()]
                out.append(list(cur.execute(f"SELECT name FROM {table} ORDER BY id")))
                out.append(cur.execute("SELECT 1").fetchone())
            out.append(conn.execute(f"SELECT count(*) FROM {table}").fetchone())
            with conn.cursor(row_factory=dict_row) as cur:
                out.append(cur.execute(f"SELECT name FROM {table} ORDER BY id").fetchall())
            conn.commit()
            with conn.transaction():
                conn.execute(f"DELETE FROM {table}")
                raise psycopg.Rollback()
            try:
                with conn.transaction():
                    conn.execute(f"DELETE FROM {table}")
                    raise ValueError("roll back")
            except ValueError:
                pass
            out.append(conn.execute(f"SELECT count(*) FROM {table}").fetchone())
            with conn.cursor(name=f"server_{tag}") as server_cur:
                server_cur.execute(f"SELECT id FROM {table} ORDER BY id")
                out += [server_cur.fetchmany(2), list(server_cur)]
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            out.append(conn.execute(query).fetchone())
            out.append(sql.Identifier("a", "b").as_string(conn))
            with conn.pipeline():
                conn.execute(f"INSERT INTO {table} (name) VALUES (%s)", ("p",))
            out.append(conn.execute(f"SELECT count(*) FROM {table}").fetchone())
            try:
                conn.execute(f"SELECT * FROM missing_{tag}")
            except psycopg.errors.UndefinedTable as exc:
                out.append((type(exc).__name__, exc.sqlstate))
            conn.rollback()
            cur = conn.cursor()
            out.append(cur.connection is conn)
        finally:
            conn.rollback()
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
    out.append(conn.closed)
    return [repr(x) for x in out]


def scenario_psycopg_async(tag: str) -> list[str]:
    import psycopg
    from psycopg.rows import dict_row

    async def main() -> list[Any]:
        out: list[Any] = []
        table = f"ta_{tag}"
        async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
            out.append(isinstance(conn, psycopg.AsyncConnection))
            try:
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
                async with conn.cursor() as cur:
                    out.append(isinstance(cur, psycopg.AsyncCursor))
                    out.append(await cur.execute(f"INSERT INTO {table} (name) VALUES (%s)",
                                                 ("a",)) is cur)
                    await cur.executemany(f"INSERT INTO {table} (name) VALUES (%s)",
                                          [("b",), ("c",)])
                    out.append(cur.rowcount)
                    await cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
                    out += [cur.description, await cur.fetchone(), await cur.fetchall()]
                    out.append([row async for row in await cur.execute(
                        f"SELECT name FROM {table} ORDER BY id")])
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(f"SELECT name FROM {table} ORDER BY id LIMIT 1")
                    out.append(await cur.fetchall())
                await conn.commit()
                try:
                    async with conn.transaction():
                        await conn.execute(f"DELETE FROM {table}")
                        raise ValueError("roll back")
                except ValueError:
                    pass
                out.append(await (await conn.execute(f"SELECT count(*) FROM {table}"))
                           .fetchone())
                try:
                    await conn.execute(f"SELECT * FROM missing_{tag}")
                except psycopg.errors.UndefinedTable as exc:
                    out.append((type(exc).__name__, exc.sqlstate))
                await conn.rollback()
            finally:
                await conn.rollback()
                await conn.execute(f"DROP TABLE IF EXISTS {table}")
                await conn.commit()
        return out

    return [repr(x) for x in asyncio.run(main())]


def _mysql_scenario(tag: str, connect: Callable[[], Any], module: Any, connection_class: Any,
                    dict_cursor: Any, unbuffered_cursor: Any) -> list[str]:
    out: list[Any] = []
    table = f"t_{tag}"
    conn = connect()
    out.append(isinstance(conn, connection_class))
    with conn as same:  # closes the connection on the way out
        out.append(same is conn)
        try:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT)"
                        " ENGINE=InnoDB")
            cur.execute(f"DROP PROCEDURE IF EXISTS add_{tag}")
            cur.execute(f"CREATE PROCEDURE add_{tag}(IN a INT, IN b INT) SELECT a + b AS total")
            out.append(cur.execute(f"INSERT INTO {table} (name) VALUES (%s)", ("a",)))
            out += [cur.lastrowid, cur.rowcount]
            out.append(cur.executemany(f"INSERT INTO {table} (name) VALUES (%s)",
                                       [("b",), ("c",)]))
            conn.commit()
            cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
            out += [cur.description, cur.fetchone(), cur.fetchmany(1), cur.fetchall()]
            cur.execute(f"SELECT name FROM {table} ORDER BY id")
            out.append([row for row in cur])
            out.append(cur.callproc(f"add_{tag}", (2, 3)))
            out.append(cur.fetchall())
            while cur.nextset():
                pass
            with conn.cursor(dict_cursor) as dict_cur:
                dict_cur.execute(f"SELECT name FROM {table} ORDER BY id LIMIT 2")
                out += [dict_cur.__class__.__name__, dict_cur.fetchall()]
            with conn.cursor(unbuffered_cursor) as stream:
                stream.execute(f"SELECT id FROM {table} ORDER BY id")
                out.append([row for row in stream])
            cur.execute(f"DELETE FROM {table}")
            conn.rollback()
            cur.execute(f"SELECT count(*) FROM {table}")
            out.append(cur.fetchone())
            try:
                cur.execute(f"SELECT * FROM missing_{tag}")
            except module.ProgrammingError as exc:
                out.append((type(exc).__name__, exc.args[0]))
            out.append(cur.connection is conn)
        finally:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"DROP PROCEDURE IF EXISTS add_{tag}")
    return [repr(x) for x in out]


def scenario_pymysql(tag: str) -> list[str]:
    import pymysql
    import pymysql.cursors

    return _mysql_scenario(tag, lambda: pymysql.connect(**MYSQL), pymysql,
                           pymysql.connections.Connection, pymysql.cursors.DictCursor,
                           pymysql.cursors.SSCursor)


def scenario_mysqldb(tag: str) -> list[str]:
    import MySQLdb
    import MySQLdb.connections
    import MySQLdb.cursors

    return _mysql_scenario(tag, lambda: MySQLdb.connect(**MYSQL), MySQLdb,
                           MySQLdb.connections.Connection, MySQLdb.cursors.DictCursor,
                           MySQLdb.cursors.SSCursor)


def scenario_asyncpg(tag: str) -> list[str]:
    import asyncpg

    async def main() -> list[Any]:
        out: list[Any] = []
        table = f"tp_{tag}"
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            out.append(await conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, "
                                          "name text)"))
            out.append(await conn.execute(f"INSERT INTO {table} (name) VALUES ($1)", "a"))
            out.append(await conn.executemany(f"INSERT INTO {table} (name) VALUES ($1)",
                                              [("b",), ("c",)]))
            out.append(await conn.fetch(f"SELECT id, name FROM {table} ORDER BY id"))
            out.append(await conn.fetchrow(f"SELECT name FROM {table} WHERE id = $1", 2))
            out.append(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            try:
                async with conn.transaction():
                    await conn.execute(f"DELETE FROM {table}")
                    raise ValueError("roll back")
            except ValueError:
                pass
            out.append(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            try:
                await conn.fetch(f"SELECT * FROM missing_{tag}")
            except asyncpg.UndefinedTableError as exc:
                out.append((type(exc).__name__, exc.sqlstate))
            pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=2)
            try:
                out.append(await pool.fetchval(f"SELECT count(*) FROM {table}"))
                async with pool.acquire() as pooled:
                    out.append(await pooled.fetchval("SELECT 7"))
            finally:
                await pool.close()
        finally:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await conn.close()
        return out

    return [repr(x) for x in asyncio.run(main())]


SCENARIOS: dict[str, Callable[[str], list[str]]] = {
    "sqlite3": scenario_sqlite3, "psycopg2": scenario_psycopg2, "psycopg": scenario_psycopg,
    "psycopg_async": scenario_psycopg_async, "pymysql": scenario_pymysql,
    "mysqldb": scenario_mysqldb, "asyncpg": scenario_asyncpg,
}


if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](sys.argv[2])))
