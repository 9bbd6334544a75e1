"""Fixtures for the database and Redis instrumentation tests.

``recorded``: in-memory span and metric exporters behind a hand-made PatchContext; every
data instrumentation in the catalog is patched with it once per session (patching is global
and permanent) and the spans are cleared around each test.

The ``scenario_*`` functions are each library's everyday usage (context managers, fetch*,
iteration, executemany, rowcount/description/lastrowid, transactions, isinstance, errors),
and what a program sees of the objects themselves (``*_classes``, ``*_proxied``: the
driver's C type checks, the program's factory classes, class names, pickling and copying,
the messages of refused calls), returning the ``repr`` of everything observable. The
behaviour tests run them patched in the test process and unpatched in a subprocess
(``python -m tests.instrumentation.data_fixtures NAME TAG``), and compare.
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


def our_frames(exc: BaseException) -> list[str]:
    """The names of the functions of ours in ``exc``'s traceback."""
    import traceback

    package = str(REPO / "telemetryflow_bootstrap")
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename.startswith(package)]


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


def _outcome(action: Callable[[], Any]) -> tuple[str, str]:
    """("ok", repr of the result) or (exception type, message): what a program would see."""
    try:
        return "ok", repr(action())
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _copies(obj: Any) -> list[tuple[str, str]]:
    """What pickling (protocols 2+) and copying ``obj`` do. Protocols 0 and 1 are left out:
    for a C object their copyreg path reads the exact class (see _db_subclasses)."""
    import copy
    import pickle

    actions = [lambda p=p: pickle.dumps(obj, p) for p in range(2, pickle.HIGHEST_PROTOCOL + 1)]
    actions += [lambda: copy.copy(obj), lambda: copy.deepcopy(obj)]
    return [(kind, text if kind != "ok" else "a copy") for kind, text in map(_outcome, actions)]


def _names(cls: type) -> tuple[str, str, str, bool]:
    """A class's names as a program reads them (a class made in a scenario has this module
    as its module, ``__main__`` when the scenario runs unpatched)."""
    module = "<scenario>" if cls.__module__ in ("__main__", __name__) else cls.__module__
    return (cls.__name__, cls.__qualname__, module,
            repr(cls) == f"<class '{cls.__module__}.{cls.__qualname__}'>")


def scenario_sqlite3_classes(tag: str) -> list[str]:
    """What a program sees of sqlite3's classes: C type checks, the program's factories
    and subclasses, names, class attributes, pickling, refused calls and their messages."""
    import abc
    import sqlite3

    out: list[Any] = []
    conn = sqlite3.connect(":memory:")
    cur = conn.cursor()
    out += [_names(type(conn)), _names(type(cur))]
    out.append(isinstance(conn, sqlite3.Connection) and isinstance(cur, sqlite3.Cursor))
    out.append(_outcome(lambda: sqlite3.Cursor(conn).execute("SELECT 1").fetchone()))

    class AuditCursor(sqlite3.Cursor):
        """Counts its statements."""
        executed = 0

        def execute(self, *args: Any) -> Any:
            type(self).executed += 1
            return super().execute(*args)

    direct = AuditCursor(conn)
    out += [_names(type(direct)), direct.execute("SELECT 2").fetchone()]
    chosen = conn.cursor(AuditCursor)
    out += [_names(type(chosen)), type(chosen).__doc__, isinstance(chosen, AuditCursor)]
    out += [chosen.execute("SELECT 3").fetchone(), AuditCursor.executed]
    out.append(_names(type(conn.cursor(factory=AuditCursor))))
    shortcut = conn.execute(f"CREATE TABLE t_{tag} (a)")
    out += [_names(type(shortcut)), shortcut.connection is conn]
    out.append(shortcut.execute(f"INSERT INTO t_{tag} VALUES (1)").rowcount)
    out.append(conn.executemany(f"INSERT INTO t_{tag} VALUES (?)", [(2,), (3,)]).rowcount)
    out.append(conn.executescript(f"INSERT INTO t_{tag} VALUES (4);").fetchall())
    out.append(conn.execute(f"SELECT count(*) FROM t_{tag}").fetchone())
    out.append(_outcome(lambda: cur.execute(f"SELECT * FROM missing_{tag}")))

    class Logged(sqlite3.Connection):
        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            return super().cursor(AuditCursor)

    mine = sqlite3.connect(":memory:", factory=Logged)
    out += [_names(type(mine)), isinstance(mine, Logged), _names(type(mine.cursor()))]
    out.append(_names(type(mine.execute("SELECT 4"))))
    positional = sqlite3.connect(":memory:", 5.0, 0, "DEFERRED", True, Logged)
    out.append(_names(type(positional)))
    made = sqlite3.connect(":memory:", factory=lambda *a, **k: Logged(*a, **k))
    out += [_names(type(made)), made.execute("SELECT 5").fetchone()]

    class Sealed(sqlite3.Connection):
        def __init_subclass__(cls, **kwargs: Any) -> None:
            raise TypeError("sealed")

    sealed = sqlite3.connect(":memory:", factory=Sealed)
    out += [_names(type(sealed)), sealed.execute("SELECT 6").fetchone()]
    out.append(_outcome(lambda: setattr(type(conn), "extra", 1)))
    type(mine).flag = "set through the instance's class"
    out += [Logged.flag, _outcome(lambda: delattr(type(mine), "flag")), hasattr(Logged, "flag")]

    class Abstract(sqlite3.Connection, metaclass=abc.ABCMeta):
        pass

    abstract = sqlite3.connect(":memory:", factory=Abstract)
    out += [_names(type(abstract)), isinstance(abstract, Abstract)]
    target = sqlite3.connect(":memory:")
    conn.backup(target)
    out.append(target.execute(f"SELECT count(*) FROM t_{tag}").fetchone())
    out += _copies(conn) + _copies(cur) + _copies(mine)
    out.append(_outcome(lambda: conn.no_such_attribute))
    out.append(_outcome(lambda: setattr(conn, "no_such_attribute", 1)))
    out.append(_outcome(lambda: setattr(cur, "no_such_attribute", 1)))
    for refused in (lambda: conn.execute(sql="SELECT 1"), lambda: conn.execute(),
                    lambda: conn.execute(5), lambda: conn.execute("SELECT 1", (), ()),
                    lambda: conn.executemany("SELECT 1"), lambda: conn.executescript(5),
                    lambda: conn.cursor(None), lambda: conn.cursor(factory=None),
                    lambda: conn.cursor(dict), lambda: cur.execute(sql="SELECT 1"),
                    lambda: sqlite3.connect(":memory:", factory=None)):
        out.append(_outcome(refused))
    conn.close()
    out.append(_outcome(lambda: conn.execute(5)))
    out.append(_outcome(lambda: conn.execute("SELECT 1")))
    out.append(_outcome(lambda: conn.executescript(5)))
    for other in (target, mine, positional, made, sealed, abstract):
        other.close()
    return [repr(x) for x in out]


def scenario_psycopg2_classes(tag: str) -> list[str]:
    """What a program sees of psycopg2's classes: C functions handed the connection, the
    program's factories, names, pickling."""
    import logging

    import psycopg2
    import psycopg2.extensions as extensions
    import psycopg2.extras
    from psycopg2 import sql

    out: list[Any] = []
    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor()
        out += [_names(type(conn)), _names(type(cur))]
        out.append(_outcome(lambda: sql.Literal("x").as_string(conn)))
        out.append(_outcome(lambda: sql.SQL("SELECT {}").format(sql.Literal(7)).as_string(cur)))
        out.append(_outcome(lambda: extensions.cursor(conn).execute("SELECT 1")))
        direct = extensions.cursor(conn)
        direct.execute("SELECT 1")
        out += [_names(type(direct)), direct.fetchone()]
        out.append(_outcome(lambda: psycopg2.extras.DictCursor(conn).connection is conn))
        quoted = extensions.QuotedString("it's")
        quoted.prepare(conn)
        out.append(quoted.getquoted())
        document = psycopg2.extras.Json({"a": 1})
        document.prepare(conn)
        out.append(document.getquoted())
        out.append(_outcome(lambda: extensions.quote_ident("a b", conn)))
        out.append(_outcome(lambda: extensions.register_type(extensions.UNICODE, conn)))
        out.append(_outcome(lambda: type(psycopg2.extras.register_uuid(conn_or_curs=cur))))
        named = conn.cursor(f"named_{tag}", psycopg2.extras.RealDictCursor)
        named.execute("SELECT 1 AS one")
        out += [_names(type(named)), named.fetchall()]
        named.close()
        out += _copies(conn) + _copies(cur)
        out.append(_outcome(lambda: conn.no_such_attribute))
        out.append(_outcome(lambda: conn.cursor(cursor_factory=dict)))
        out.append(_outcome(lambda: conn.cursor("n", extensions.cursor,
                                                cursor_factory=extensions.cursor)))
        conn.rollback()
    finally:
        conn.close()

    logged = psycopg2.connect(PG_DSN, connection_factory=psycopg2.extras.LoggingConnection)
    records: list[str] = []
    logger = logging.getLogger(f"tests.data.{tag}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    logged.initialize(logger)
    logged_cur = logged.cursor()
    logged_cur.execute("SELECT 2")
    out += [_names(type(logged)), _names(type(logged_cur)), logged_cur.fetchone(), records]
    logged.close()
    rows = psycopg2.connect(PG_DSN, cursor_factory=psycopg2.extras.NamedTupleCursor)
    rows_cur = rows.cursor()
    rows_cur.execute("SELECT 3 AS three")
    out += [_names(type(rows_cur)), rows_cur.fetchone(), rows.cursor_factory.__name__]
    rows.close()
    made = psycopg2.connect(PG_DSN, connection_factory=lambda dsn: extensions.connection(dsn))
    out.append(_names(type(made)))
    made.close()
    return [repr(x) for x in out]


def scenario_psycopg_proxied(tag: str) -> list[str]:
    """What a program sees of psycopg's (proxied) objects: class names, pickling and
    copying, a cursor from ``conn.execute`` reused."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(PG_DSN) as conn:
        cur = conn.execute("SELECT 1")
        out: list[Any] = [cur.fetchone(), cur.execute("SELECT 2").fetchone(),
                          cur.connection is conn, _names(type(conn)), _names(type(cur))]
        out.append(_names(type(conn.cursor(row_factory=dict_row))))
        out.append(_names(type(conn.cursor(name=f"server_{tag}"))))
        out += _copies(conn) + _copies(cur)
    return [repr(x) for x in out]


def _mysql_proxied(connect: Callable[[], Any], dict_cursor: Any) -> list[str]:
    conn = connect()
    try:
        cur = conn.cursor()
        out: list[Any] = [_names(type(conn)), _names(type(cur)),
                          _names(type(conn.cursor(dict_cursor)))]
        out += _copies(conn) + _copies(cur)
        return [repr(x) for x in out]
    finally:
        conn.close()


def scenario_pymysql_proxied(tag: str) -> list[str]:
    """What a program sees of PyMySQL's (proxied) objects: class names, pickling, copying."""
    import pymysql
    import pymysql.cursors

    return _mysql_proxied(lambda: pymysql.connect(**MYSQL), pymysql.cursors.DictCursor)


def scenario_mysqldb_proxied(tag: str) -> list[str]:
    """The same for mysqlclient (MySQLdb)."""
    import MySQLdb
    import MySQLdb.cursors

    return _mysql_proxied(lambda: MySQLdb.connect(**MYSQL), MySQLdb.cursors.DictCursor)


SCENARIOS: dict[str, Callable[[str], list[str]]] = {
    "sqlite3": scenario_sqlite3, "psycopg2": scenario_psycopg2, "psycopg": scenario_psycopg,
    "psycopg_async": scenario_psycopg_async, "pymysql": scenario_pymysql,
    "mysqldb": scenario_mysqldb, "asyncpg": scenario_asyncpg,
    "sqlite3_classes": scenario_sqlite3_classes, "psycopg2_classes": scenario_psycopg2_classes,
    "psycopg_proxied": scenario_psycopg_proxied, "pymysql_proxied": scenario_pymysql_proxied,
    "mysqldb_proxied": scenario_mysqldb_proxied,
}


if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](sys.argv[2])))
