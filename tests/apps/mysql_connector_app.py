"""A program that queries MariaDB through mysql-connector-python under one span of its own:
the C extension's connection when it loads (else the pure-Python one), from a pool, with a
parameterised query, a prepared cursor, an ``executemany``, a failing statement, then one
query through the asyncio API. Prints what it read.

Run by hand: ``telemetryflow-run python tests/apps/mysql_connector_app.py`` (needs MariaDB
on 127.0.0.1:3306, user ``root`` without password, database ``test``).

The 26.x wheel's C extension needs OpenSSL 3.2 and brings its own, which the loader uses
only if nothing loaded the system's ``libssl`` first: it is imported before anything else.
"""

import contextlib

with contextlib.suppress(ImportError):
    import _mysql_connector  # noqa: F401

import asyncio
import sys

import mysql.connector
from mysql.connector import pooling
from opentelemetry import trace

SECRET = "row-value-never-exported-7719"
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}

tracer = trace.get_tracer("mysql_connector_app")


def sync_part() -> tuple[str, int, int, str]:
    pool = pooling.MySQLConnectionPool(pool_name="mysql_connector_app", pool_size=1, **MYSQL)
    with pool.get_connection() as conn:
        kind = type(conn._cnx).__name__
        cur = conn.cursor()
        cur.execute("SELECT %s = %s, SLEEP(0.1)", (SECRET, SECRET))
        (same, _), = cur.fetchall()
        cur.execute("CREATE TEMPORARY TABLE mc_app_items (n INT)")
        cur.executemany("INSERT INTO mc_app_items (n) VALUES (%s)", [(1,), (2,), (3,)])
        prepared = conn.cursor(prepared=True)
        prepared.execute("SELECT COUNT(*) FROM mc_app_items WHERE n > %s", (0,))
        (count,), = prepared.fetchall()
        prepared.close()
        try:
            cur.execute("SELECT * FROM missing_mysql_connector_app")
        except mysql.connector.ProgrammingError as exc:
            failed = str(exc.errno)
        cur.close()
    return kind, int(same), count, failed


async def async_part() -> int:
    from mysql.connector import aio

    # ssl_disabled: 26.10's asyncio connect fails on a server without TLS otherwise.
    conn = await aio.connect(**MYSQL, ssl_disabled=True)
    try:
        cur = await conn.cursor()
        await cur.execute("SELECT %s", (SECRET,))
        (value,), = await cur.fetchall()
    finally:
        await conn.close()
    return int(value == SECRET)


def main() -> None:
    with tracer.start_as_current_span("mysql-connector-app"):
        kind, same, count, failed = sync_part()
        found = asyncio.run(async_part())
    print("mysql_connector_app", kind, same, count, failed, found)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
