"""``db.query.text`` and ``db.collection.name`` against the real drivers and servers: no
literal written into a statement reaches telemetry (sqlite3, psycopg 3, psycopg2 and its
extras, PyMySQL, mysqlclient, asyncpg), nor does a database error's message quoting one,
and a statement on several tables names none."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from typing import Any

import pytest

from .data_fixtures import (
    MYSQL,
    PG_DSN,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    recorded,
    tag,
)

__all__ = ["recorded"]

postgres = pytest.mark.service("postgres")
mariadb = pytest.mark.service("mariadb")


def _texts(recorded: Recorded, system: str) -> list[str | None]:
    return [s.attributes.get("db.query.text") for s in recorded.spans(system)]


# ----- sqlite3 -----------------------------------------------------------------------------


def test_sqlite3_inline_literals_are_sanitized(recorded: Recorded):
    """Literals written into execute, executemany and executescript statements are exported
    as ``?``; the program's results are the literal values, as without us."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE users (email TEXT, ssn TEXT, n INTEGER)")
    conn.execute(f"INSERT INTO users VALUES ('a@example.com', '{SECRET_VALUE}', 42)")
    conn.executemany(f"INSERT INTO users VALUES (?, '{SECRET_VALUE}', 7)", [("b",), ("c",)])
    conn.executescript(f"INSERT INTO users VALUES ('d', '{SECRET_VALUE}', 1); -- {SECRET_VALUE}")
    row = conn.execute("SELECT ssn, n FROM users WHERE email = 'a@example.com'").fetchone()
    assert row == (SECRET_VALUE, 42)
    conn.close()
    assert _texts(recorded, "sqlite") == [
        "CREATE TABLE users (email TEXT, ssn TEXT, n INTEGER)",
        "INSERT INTO users VALUES (?, ?, ?)",
        "INSERT INTO users VALUES (?, ?, ?)",
        "INSERT INTO users VALUES (?, ?, ?);",
        "SELECT ssn, n FROM users WHERE email = ?"]
    assert SECRET_VALUE not in all_attribute_text(recorded)
    assert "example.com" not in all_attribute_text(recorded)


def test_sqlite3_statement_on_two_tables_names_no_collection(recorded: Recorded, tmp_path):
    """A join, and a script creating two tables, get no db.collection.name and a span
    named after the operation alone (in the metric point too); a self-join is one table."""
    path = str(tmp_path / "shop.db")
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE orders(id, cid); CREATE TABLE customers(id)")
    conn.execute("SELECT * FROM orders o JOIN customers c ON o.cid = c.id").fetchall()
    conn.execute("SELECT * FROM orders o JOIN orders p ON o.cid = p.id").fetchall()
    conn.close()
    script, join, self_join = recorded.spans("sqlite")
    assert (script.name, join.name, self_join.name) == ("CREATE", "SELECT", "SELECT orders")
    assert "db.collection.name" not in script.attributes
    assert "db.collection.name" not in join.attributes
    assert self_join.attributes["db.collection.name"] == "orders"
    points = recorded.points(**{"db.namespace": path, "db.operation.name": "SELECT"})
    assert sorted(p.attributes.get("db.collection.name", "") for p in points) == ["", "orders"]


def test_sqlite3_statement_that_cannot_be_sanitized_has_no_text(recorded: Recorded):
    """A statement whose literal never closes: the span keeps its operation but has no
    text, and the program gets sqlite's own error."""
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute(f"SELECT '{SECRET_VALUE}")
    conn.close()
    (span,) = recorded.spans("sqlite")
    assert span.name == "SELECT" and "db.query.text" not in span.attributes
    assert SECRET_VALUE not in all_attribute_text(recorded)


# ----- psycopg 3 ---------------------------------------------------------------------------


@postgres
def test_psycopg_literal_compositions_record_no_text(recorded: Recorded):
    """psycopg.sql compositions holding a Literal (formatted, joined, nested, a subclass)
    record no text and the value is nowhere; a value-free composition is rendered."""
    import psycopg
    from psycopg import sql

    class Masked(sql.Literal):
        pass

    with psycopg.connect(PG_DSN) as conn:
        card = conn.execute(sql.SQL("SELECT {} AS card").format(sql.Literal(SECRET_VALUE)))
        assert card.fetchone() == (SECRET_VALUE,)
        conn.execute(sql.SQL("SELECT {}").format(
            sql.SQL(", ").join([sql.Identifier("relname"), sql.Literal(SECRET_VALUE)]))
            + sql.SQL(" FROM pg_class LIMIT 1"))
        conn.execute(sql.Composed([sql.SQL("SELECT "), Masked(SECRET_VALUE)]))
        conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pg_class")))
    texts = _texts(recorded, "postgresql")
    assert texts == [None, None, None, 'SELECT count(*) FROM "pg_class"']
    assert SECRET_VALUE not in all_attribute_text(recorded)


@postgres
def test_psycopg_inline_literals_are_sanitized(recorded: Recorded):
    """Literals inline in psycopg statements, parameterized or not, sync and async, are
    exported as ``?``; the placeholders stay."""
    import psycopg

    statement = (f"SELECT relname FROM pg_class WHERE relname = %s OR relname = '{SECRET_VALUE}'"
                 " LIMIT 1")
    with psycopg.connect(PG_DSN) as conn:
        conn.execute(statement, ("pg_type",))
        conn.cursor().execute(f"SELECT $tag${SECRET_VALUE}$tag$, E'\\'{SECRET_VALUE}'")

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(PG_DSN) as conn:
            await conn.execute(f"SELECT 1 /* {SECRET_VALUE} */ WHERE 'x' IN ('a', 'b', 'c')")

    asyncio.run(run())
    assert _texts(recorded, "postgresql") == [
        "SELECT relname FROM pg_class WHERE relname = %s OR relname = ? LIMIT ?",
        "SELECT ?, ?",
        "SELECT ?  WHERE ? IN (?)"]
    assert SECRET_VALUE not in all_attribute_text(recorded)


# ----- psycopg2 ----------------------------------------------------------------------------


@pytest.fixture
def pg2_table() -> Any:
    """A psycopg2 connection (autocommit) with a fresh ``users`` table of this process."""
    import psycopg2

    conn = psycopg2.connect(PG_DSN)
    conn.autocommit = True
    table = f"users_{tag()}"
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} (id serial, name text, password text)")
    try:
        yield conn, table
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


@postgres
def test_psycopg2_mixed_placeholders_and_literals_are_sanitized(recorded: Recorded,
                                                                 pg2_table: Any):
    """A statement mixing %s with inline literals keeps the placeholders and loses the
    literals; a statement the program formatted itself with mogrify loses its values."""
    conn, table = pg2_table
    recorded.exporter.clear()
    cur = conn.cursor()
    cur.execute(f"SELECT id FROM {table} WHERE name = 'inline-{SECRET_VALUE}' OR id = %s", (1,))
    cur.execute(cur.mogrify(f"INSERT INTO {table} (name, password) VALUES (%s, %s)",
                            ("alice", SECRET_VALUE)))
    assert _texts(recorded, "postgresql") == [
        f"SELECT id FROM {table} WHERE name = ? OR id = %s",
        f"INSERT INTO {table} (name, password) VALUES (?, ?)"]
    assert SECRET_VALUE not in all_attribute_text(recorded)


@postgres
def test_psycopg2_execute_values_and_execute_batch_are_one_span_with_the_template(
        recorded: Recorded, pg2_table: Any):
    """execute_values and execute_batch are one span each, however many pages they send,
    whose text is the statement as written (placeholders) with the batch size; the rows
    and results are psycopg2's own."""
    import psycopg2.extras

    conn, table = pg2_table
    recorded.exporter.clear()
    cur = conn.cursor()
    rows = [("alice", SECRET_VALUE), ("bob", SECRET_VALUE), ("carol", SECRET_VALUE)]
    ids = psycopg2.extras.execute_values(
        cur, f"INSERT INTO {table} (name, password) VALUES %s RETURNING id", rows,
        page_size=2, fetch=True)
    assert [name for (name,) in ids] == [1, 2, 3]
    psycopg2.extras.execute_batch(
        cur=cur, sql=f"INSERT INTO {table} (name, password) VALUES (%s, %s)",
        argslist=rows, page_size=1)
    psycopg2.extras.execute_values(cur, f"UPDATE {table} SET password = 'x' WHERE name IN %s",
                                   [("alice",)], template="(%s)")
    cur.execute(f"SELECT count(*), count(DISTINCT password) FROM {table}")
    assert cur.fetchone() == (6, 2)
    values, batch, single, count = recorded.spans("postgresql")
    assert values.name == batch.name == f"INSERT {table}"
    assert values.attributes["db.query.text"] == (
        f"INSERT INTO {table} (name, password) VALUES %s RETURNING id")
    assert batch.attributes["db.query.text"] == (
        f"INSERT INTO {table} (name, password) VALUES (%s, %s)")
    assert values.attributes["db.operation.batch.size"] == 3
    assert batch.attributes["db.operation.batch.size"] == 3
    assert single.attributes["db.query.text"] == f"UPDATE {table} SET password = ? WHERE name IN %s"
    assert "db.operation.batch.size" not in single.attributes
    assert count.name == f"SELECT {table}"
    assert SECRET_VALUE not in all_attribute_text(recorded)


@postgres
def test_psycopg2_execute_values_failure_is_the_programs_exception(recorded: Recorded):
    """execute_values on a missing table raises psycopg2's own error, once, and the span is
    an ERROR span with the SQLSTATE."""
    import psycopg2
    import psycopg2.errors
    import psycopg2.extras

    conn = psycopg2.connect(PG_DSN)
    with pytest.raises(psycopg2.errors.UndefinedTable) as caught:
        psycopg2.extras.execute_values(conn.cursor(), "INSERT INTO tf_missing_values VALUES %s",
                                       [(SECRET_VALUE,)])
    assert caught.value.pgcode == "42P01"
    conn.close()
    (span,) = recorded.spans("postgresql")
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.attributes["error.type"] == "psycopg2.errors.UndefinedTable"
    assert SECRET_VALUE not in all_attribute_text(recorded)


@postgres
def test_psycopg2_extras_on_an_untraced_cursor_pass_through(recorded: Recorded):
    """A cursor of a connection we do not trace (psycopg2's own connection class built by
    hand) gets execute_values unchanged and no span."""
    import psycopg2.extensions
    import psycopg2.extras

    conn = psycopg2.extensions.connection("dbname=test user=postgres host=127.0.0.1")
    cur = conn.cursor()
    assert psycopg2.extras.execute_values(cur, "SELECT * FROM (VALUES %s) AS v (a)",
                                          [(1,), (2,)], fetch=True) == [(1,), (2,)]
    conn.close()
    assert recorded.spans("postgresql") == []


# ----- MySQL drivers -----------------------------------------------------------------------


@pytest.fixture(params=["pymysql", "MySQLdb"])
def mysql_driver(request: pytest.FixtureRequest) -> Any:
    """Each MySQL driver in turn (mysqlclient skips when it is not installed)."""
    if request.param == "MySQLdb":
        return pytest.importorskip("MySQLdb")
    return importlib.import_module(request.param)


@mariadb
def test_mysql_inline_literals_are_sanitized(recorded: Recorded, mysql_driver: Any):
    """MySQL's literals (single- and double-quoted strings with backslash escapes, hex,
    numbers) and ``#`` comments are exported as ``?``/removed; backquoted names stay."""
    conn = mysql_driver.connect(**MYSQL)
    cur = conn.cursor()
    cur.execute(f"SELECT 'it\\'s {SECRET_VALUE}', \"{SECRET_VALUE}\", 0x1F, `a`.`b` "
                f"FROM (SELECT 1 AS b) AS `a` WHERE 1 = %s # {SECRET_VALUE}", (1,))
    assert cur.fetchone() == (f"it's {SECRET_VALUE}", SECRET_VALUE, b"\x1f", 1)
    conn.close()
    assert _texts(recorded, "mariadb") == [
        "SELECT ?, ?, ?, `a`.`b` FROM (SELECT ? AS b) AS `a` WHERE ? = %s"]
    assert SECRET_VALUE not in all_attribute_text(recorded)


# ----- asyncpg -----------------------------------------------------------------------------


@postgres
def test_asyncpg_inline_literals_are_sanitized(recorded: Recorded):
    """asyncpg statements lose their literals and keep their $n placeholders."""
    import asyncpg

    async def run() -> Any:
        conn = await asyncpg.connect(PG_DSN)
        try:
            return await conn.fetchval(f"SELECT $1::text || '{SECRET_VALUE}'", "x")
        finally:
            await conn.close()

    assert asyncio.run(run()) == f"x{SECRET_VALUE}"
    assert _texts(recorded, "postgresql") == ["SELECT $1::text || ?"]
    assert SECRET_VALUE not in all_attribute_text(recorded)


# ----- error messages ----------------------------------------------------------------------


@postgres
@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_postgresql_error_messages_quoting_values_are_not_exported(recorded: Recorded,
                                                                     driver: str):
    """PostgreSQL quotes the offending value back (``DETAIL: Key (email)=(...)``; psycopg2
    also shows the statement it interpolated): the span keeps the error's type, SQLSTATE
    and where it was raised, never the message; the program gets the whole message."""
    module = importlib.import_module(driver)
    conn = module.connect(PG_DSN)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TEMP TABLE tf_unique (email text UNIQUE)")
    cur.execute("INSERT INTO tf_unique VALUES (%s)", (SECRET_VALUE,))
    with pytest.raises(module.errors.UniqueViolation) as caught:
        cur.execute("INSERT INTO tf_unique VALUES (%s)", (SECRET_VALUE,))
    assert SECRET_VALUE in str(caught.value)
    conn.close()
    failed = [s for s in recorded.spans("postgresql") if s.status.status_code.name == "ERROR"]
    assert len(failed) == 1
    (span,) = failed
    kind = f"{driver}.errors.UniqueViolation"
    assert span.attributes["error.type"] == kind
    assert span.attributes["db.response.status_code"] == "23505"
    assert span.status.description == kind
    (event,) = span.events
    assert event.attributes["exception.type"] == kind
    assert "exception.message" not in event.attributes
    assert event.attributes["exception.stacktrace"].endswith(kind)
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_sqlite3_error_message_quoting_a_value_is_not_exported(recorded: Recorded):
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.execute(f"SELECT x FROM nosuch WHERE a = '{SECRET_VALUE}' AND b = \"{SECRET_VALUE}")
    assert SECRET_VALUE in str(caught.value)
    conn.close()
    (span,) = recorded.spans("sqlite")
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert SECRET_VALUE not in all_attribute_text(recorded)


@mariadb
def test_mysql_error_message_quoting_a_value_is_not_exported(recorded: Recorded,
                                                             mysql_driver: Any):
    conn = mysql_driver.connect(**MYSQL)
    with pytest.raises(mysql_driver.ProgrammingError) as caught:
        conn.cursor().execute("SELECT FROM WHERE %s", (SECRET_VALUE,))
    assert SECRET_VALUE in str(caught.value)
    conn.close()
    (span,) = recorded.spans("mariadb")
    assert span.attributes["db.response.status_code"] == "1064"
    assert SECRET_VALUE not in all_attribute_text(recorded)
