"""A program that reads a slow query through server-side cursors (psycopg2's named cursor
and psycopg 3's ``ServerCursor``), where PostgreSQL runs the query during the fetches, not
during ``execute``; then streams rows with psycopg 3's ``cursor.stream()``. All under one
span of its own. Prints the rows it read.

Run by hand: ``telemetryflow-run python tests/apps/db_server_cursor_app.py`` (needs
PostgreSQL on 127.0.0.1:5432, database ``test``, user ``postgres``).
"""

import os

import psycopg
import psycopg2
from opentelemetry import trace

PG_DSN = os.environ.get("DATA_APP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SLOW = "SELECT pg_sleep(0.2), n FROM generate_series(1, 2) AS n"  # 0.2 s per row

tracer = trace.get_tracer("db_server_cursor_app")

with tracer.start_as_current_span("db-server-cursor-app"):
    legacy = psycopg2.connect(PG_DSN)
    with legacy.cursor(name="legacy_rows") as cur:
        cur.execute(SLOW)
        legacy_rows = [row[1] for row in cur.fetchmany(1) + cur.fetchall()]
    legacy.close()

    with psycopg.connect(PG_DSN) as conn, conn.cursor(name="modern_rows") as cur:
        cur.execute(SLOW)
        modern_rows = [row[1] for row in cur]

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        streamed = [row[0] for row in conn.cursor().stream("SELECT generate_series(1, 3)")]

print("db_server_cursor_app", legacy_rows, modern_rows, streamed)
