"""An asyncio program that queries MariaDB through aiomysql (a pool, a parameterised query,
rows read through an unbuffered ``SSCursor``) and PostgreSQL through aiopg (a DSN with a
password, a parameterised query, a failing one), all under one span of its own. Prints
what it read.

Run by hand: ``telemetryflow-run python tests/apps/async_db_app.py`` (needs MariaDB on
127.0.0.1:3306, user ``root`` without password, and PostgreSQL on 127.0.0.1:5432, user
``postgres``, both with a database ``test``).
"""

import asyncio
import os

import aiomysql
import aiopg
import psycopg2.errors
from opentelemetry import trace

PG_DSN = os.environ.get(
    "DATA_APP_PG_DSN",
    "dbname=test user=postgres password=app-pw-never-exported-5521 host=127.0.0.1")
SECRET = "row-value-never-exported-4411"

tracer = trace.get_tracer("async_db_app")


async def mysql() -> tuple[int, int]:
    pool = await aiomysql.create_pool(host="127.0.0.1", port=3306, user="root", db="test",
                                      minsize=1, maxsize=2)
    try:
        async with pool.acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT %s, SLEEP(0.1)", (SECRET,))
                (value, _), = await cur.fetchall()
            async with conn.cursor(aiomysql.SSCursor) as cur:
                await cur.execute("SELECT seq FROM seq_1_to_100")
                rows = [row async for row in cur]
    finally:
        pool.close()
        await pool.wait_closed()
    return int(value == SECRET), len(rows)


async def postgres() -> tuple[int, str]:
    async with aiopg.connect(PG_DSN) as conn, conn.cursor() as cur:
        await cur.execute("SELECT %s::text = %s, pg_sleep(0.1)", (SECRET, SECRET))
        (same, _), = await cur.fetchall()
        try:
            await cur.execute("SELECT * FROM missing_async_db_app")
        except psycopg2.errors.UndefinedTable as exc:
            failed = exc.pgcode
    return int(same), failed


async def main() -> None:
    with tracer.start_as_current_span("async-db-app"):
        (found, streamed), (same, failed) = await asyncio.gather(mysql(), postgres())
    print("async_db_app", found, streamed, same, failed)


asyncio.run(main())
