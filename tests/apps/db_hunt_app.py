"""A program that bulk-loads PostgreSQL with COPY (psycopg 3 and psycopg2) and bumps a
Redis counter in a WATCHed transaction, then trips a Redis type error, all under one span
of its own.

Run by hand: ``telemetryflow-run python tests/apps/db_hunt_app.py`` (needs PostgreSQL on
127.0.0.1:5432, database ``test``, user ``postgres``, and Redis on 127.0.0.1:6379).
"""

import io
import os

import psycopg
import psycopg2
import redis
from opentelemetry import trace

PG_DSN = os.environ.get("DATA_APP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DATA_APP_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "row-value-never-exported-4411"

tracer = trace.get_tracer("db_hunt_app")
table = f"hunt_orders_{os.getpid()}"
key = f"db_hunt_app:{os.getpid()}"

with tracer.start_as_current_span("db-hunt-app"):
    with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {table} (id int, note text)")
        with cur.copy(f"COPY {table} (id, note) FROM STDIN") as copy:
            copy.write_row((1, SECRET))
        loaded = cur.rowcount

    legacy = psycopg2.connect(PG_DSN)
    with legacy.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {table} (id int, note text)")
        cur.copy_expert(f"COPY {table} FROM STDIN", io.StringIO(f"2\t{SECRET}\n"))
        loaded += cur.rowcount
    legacy.close()

    cache = redis.Redis.from_url(REDIS_URL)
    cache.set(key, 1)

    def bump(pipe):
        current = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, current + 1)

    cache.transaction(bump, key)
    try:
        cache.hset(key, "field", SECRET)
    except redis.ResponseError:
        refused = 1
    cache.delete(key)
    cache.close()

print("db_hunt_app", loaded, refused)
