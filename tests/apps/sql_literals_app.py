"""A program that writes values into its SQL (inline literals, comments, psycopg2.extras
batches, psycopg.sql Literals) on SQLite, PostgreSQL and MariaDB, under one span of its own.

Run by hand: ``telemetryflow-run python tests/apps/sql_literals_app.py`` (needs PostgreSQL on
127.0.0.1:5432, database ``test``, user ``postgres``, and MariaDB on 127.0.0.1:3306, database
``test``, user ``root``). None of SECRET may reach the exported telemetry.
"""

import os
import sqlite3

import psycopg
import psycopg2
import psycopg2.extras
import pymysql
from opentelemetry import trace
from psycopg import sql

SECRET = "hunter2-4111-1111"
PG_DSN = os.environ.get("DATA_APP_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_HOST = os.environ.get("DATA_APP_MYSQL_HOST", "127.0.0.1")
TABLE = f"sql_literals_{os.getpid()}"

tracer = trace.get_tracer("sql_literals_app")
seen = []

with tracer.start_as_current_span("sql-literals-app"):
    db = sqlite3.connect(":memory:")
    db.executescript(f"CREATE TABLE users (email, ssn); -- created for {SECRET}")
    db.execute(f"INSERT INTO users VALUES ('a@example.com', '{SECRET}')")
    seen += db.execute("SELECT ssn FROM users WHERE email = 'a@example.com'").fetchone()
    # SQLite takes a "..." that names no column for a string: a value, written as a name
    seen += db.execute(f'SELECT "email" FROM users WHERE "ssn" = "{SECRET}"').fetchone()
    db.execute("CREATE TABLE orders (id, email)")
    db.execute("SELECT * FROM orders o JOIN users u ON o.email = u.email").fetchall()
    db.close()

    with psycopg.connect(PG_DSN) as pg:
        seen += pg.execute(sql.SQL("SELECT {} AS card").format(sql.Literal(SECRET))).fetchone()
        seen += pg.execute(f"SELECT count(*) FROM pg_class WHERE relname = '{SECRET}'").fetchone()

    pg2 = psycopg2.connect(PG_DSN)
    pg2.autocommit = True
    cur = pg2.cursor()
    cur.execute(f"CREATE TABLE {TABLE} (name text, password text)")
    try:
        psycopg2.extras.execute_values(
            cur, f"INSERT INTO {TABLE} (name, password) VALUES %s", [("alice", SECRET)])
        psycopg2.extras.execute_batch(
            cur, f"INSERT INTO {TABLE} (name, password) VALUES (%s, %s)",
            [("bob", SECRET), ("carol", SECRET)])
        cur.execute(f"SELECT count(*) FROM {TABLE} WHERE password = '{SECRET}' AND name <> %s",
                    ("dave",))
        seen += cur.fetchone()
    finally:
        cur.execute(f"DROP TABLE {TABLE}")
        pg2.close()

    my = pymysql.connect(host=MYSQL_HOST, user="root", database="test")
    with my.cursor() as mycur:
        mycur.execute(f"SELECT \"{SECRET}\", 'it\\'s {SECRET}' # {SECRET}")
        seen += mycur.fetchone()
    my.close()

print("sql_literals_app", len(seen), seen.count(SECRET))
