"""A small program that talks to SQLite, Redis and PostgreSQL under one span of its own.

Run by hand: ``telemetryflow-run python tests/apps/data_app.py`` (needs Redis on
127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432, database ``test``, user ``postgres``).
"""

import os
import sqlite3

import psycopg
import redis
from opentelemetry import trace

PG_DSN = os.environ.get("DATA_APP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DATA_APP_REDIS_URL", "redis://127.0.0.1:6379/0")

tracer = trace.get_tracer("data_app")

with tracer.start_as_current_span("data-app"):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
    db.execute("INSERT INTO orders (total) VALUES (?)", (12.5,))
    (count,) = db.execute("SELECT count(*) FROM orders").fetchone()
    db.close()

    cache = redis.Redis.from_url(REDIS_URL)
    key = f"data_app:{os.getpid()}"
    cache.set(key, count)
    cached = cache.get(key)
    cache.delete(key)
    cache.close()

    with psycopg.connect(PG_DSN) as pg:
        (one,) = pg.execute("SELECT 1 FROM pg_class LIMIT 1").fetchone()

print("data_app", count, int(cached), one)
