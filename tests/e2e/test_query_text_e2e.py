"""Query text end to end: the installed launcher, a program writing values into its SQL,
the real SQLite, PostgreSQL and MariaDB, and the real OTLP receiver."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("postgres"), pytest.mark.service("mariadb")]

SECRET = "hunter2-4111-1111"  # as in tests/apps/sql_literals_app.py


def test_no_value_written_into_sql_reaches_the_receiver(otlp_receiver):
    """Inline literals (sqlite3, psycopg, psycopg2, PyMySQL; SQLite's "..." strings too), a
    comment, a psycopg.sql Literal and psycopg2.extras batches: the program gets its values
    back, and no span attribute, event, status or metric point the receiver gets holds one;
    the texts keep their placeholders, the batches are one span each and the join names no
    table."""
    proc = run(python(app("sql_literals_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "sql_literals_app 7 3"
    otlp_receiver.wait_for_spans(1, name="sql-literals-app")
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= 13)
    spans = _db_spans(otlp_receiver)
    points = otlp_receiver.wait_for_metric("db.client.operation.duration")
    exported = "\n".join([
        *(f"{s.name} {s.attributes!r} {s.status_message} {s.events!r}" for s in spans),
        *(repr(p.attributes) for p in points)])
    assert SECRET not in exported and "example.com" not in exported
    texts = {(s.attributes["db.system.name"], s.attributes.get("db.query.text"))
             for s in spans}
    assert texts >= {
        ("sqlite", "CREATE TABLE users (email, ssn);"),
        ("sqlite", "INSERT INTO users VALUES (?, ?)"),
        ("sqlite", "SELECT ssn FROM users WHERE email = ?"),
        ("sqlite", 'SELECT "email" FROM users WHERE "ssn" = ?'),
        ("postgresql", None),  # the psycopg.sql Literal composition
        ("postgresql", "SELECT count(*) FROM pg_class WHERE relname = ?"),
        ("mariadb", "SELECT ?, ?")}
    pg_texts = [t for system, t in texts if system == "postgresql" and t]
    assert any(t.endswith("(name, password) VALUES %s") for t in pg_texts)
    assert any(t.endswith("(name, password) VALUES (%s, %s)") for t in pg_texts)
    assert any(t.endswith("WHERE password = ? AND name <> %s") for t in pg_texts)
    batch = [s for s in spans if s.attributes.get("db.operation.batch.size")]
    assert [s.attributes["db.operation.batch.size"] for s in batch] == [2]
    join = [s for s in spans if "JOIN" in s.attributes.get("db.query.text", "")]
    assert [s.name for s in join] == ["SELECT"]
    assert "db.collection.name" not in join[0].attributes


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
