"""psycopg2 under the DB-API instrumentation, against the local PostgreSQL."""

from __future__ import annotations

import logging

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    PASSWORD,
    PG_DSN,
    PG_SECRET_DSN,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    our_frames,
    recorded,
    scenario_psycopg2,
    scenario_psycopg2_classes,
    tag,
    unpatched,
)

__all__ = ["recorded"]
pytestmark = pytest.mark.service("postgres")

PG = {"db.system.name": "postgresql", "db.namespace": "test", "server.address": "127.0.0.1",
      "server.port": 5432}


def test_spans_carry_postgres_attributes_from_the_connection(recorded: Recorded):
    """A cursor execute is a CLIENT span with system, database and server taken from
    libpq's connection info, the statement with its placeholders, operation and table."""
    conn = psycopg2.connect(PG_DSN)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT relname FROM pg_class WHERE relname = %s", ("pg_type",))
        assert cur.fetchone() == ("pg_type",)
    conn.close()
    span = recorded.span("SELECT pg_class")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        **PG, "db.operation.name": "SELECT", "db.collection.name": "pg_class",
        "db.query.text": "SELECT relname FROM pg_class WHERE relname = %s"}


def test_failing_statement_is_an_error_span_with_sqlstate(recorded: Recorded):
    """A failing statement: ERROR span with the exception event, error.type and SQLSTATE;
    the program receives psycopg2's own exception object."""
    conn = psycopg2.connect(PG_DSN)
    with pytest.raises(psycopg2.errors.UndefinedTable) as caught:
        conn.cursor().execute("SELECT * FROM no_such_table_tf")
    assert caught.value.pgcode == "42P01" and caught.value.__context__ is None
    conn.close()
    span = recorded.span("SELECT no_such_table_tf")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "psycopg2.errors.UndefinedTable"
    assert span.attributes["db.response.status_code"] == "42P01"
    assert span.events[0].name == "exception"


def test_no_password_or_parameter_value_in_any_attribute(recorded: Recorded):
    """Connecting with a password in the DSN and binding a secret parameter leaves
    neither in any span attribute, event or metric point."""
    conn = psycopg2.connect(PG_SECRET_DSN)
    cur = conn.cursor()
    cur.execute("SELECT %s::text AS secret", (SECRET_VALUE,))
    cur.execute("SELECT %(s)s::text", {"s": SECRET_VALUE})
    cur.executemany("SELECT %s::text", [(SECRET_VALUE,), (SECRET_VALUE,)])
    conn.close()
    text = all_attribute_text(recorded)
    assert len(recorded.spans("postgresql")) == 3
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_composed_sql_is_rendered_unless_it_inlines_literals(recorded: Recorded):
    """psycopg2.sql compositions become db.query.text with identifiers rendered, but a
    composition holding a Literal value records no text at all."""
    from psycopg2 import sql

    conn = psycopg2.connect(PG_DSN)
    cur = conn.cursor()
    cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("pg_class")))
    cur.execute(sql.SQL("SELECT {}::text").format(sql.Literal(SECRET_VALUE)))
    conn.close()
    composed, literal = recorded.spans("postgresql")
    assert composed.attributes["db.query.text"] == 'SELECT count(*) FROM "pg_class"'
    assert "db.query.text" not in literal.attributes
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_callproc_named_and_factory_cursors_are_traced(recorded: Recorded):
    """callproc is a ``CALL <procedure>`` span; RealDictCursor and named (server-side)
    cursors are traced and keep their type."""
    conn = psycopg2.connect(PG_DSN)
    cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
    assert isinstance(cur, psycopg2.extras.RealDictCursor)
    cur.callproc("lower", ("ABC",))
    assert cur.fetchone() == {"lower": "abc"}
    with conn.cursor(name="tf_named") as named:
        named.execute("SELECT generate_series(1, 3)")
        assert [row[0] for row in named] == [1, 2, 3]
    conn.close()
    call = recorded.span("CALL lower")
    assert call.attributes["db.stored_procedure.name"] == "lower"
    assert call.attributes["db.operation.name"] == "CALL"
    assert recorded.spans()[-1].attributes["db.query.text"] == "SELECT generate_series(?, ?)"


def test_commenter_sends_traceparent_to_the_server(recorded: Recorded):
    """With the commenter on, PostgreSQL itself sees the statement with the span's
    traceparent comment (pg_stat_activity shows it); db.query.text stays clean."""
    recorded.telemetry().commenter = True
    conn = psycopg2.connect(PG_DSN)
    cur = conn.cursor()
    cur.execute("SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    server_text = cur.fetchone()[0]
    conn.close()
    span = recorded.span("SELECT pg_stat_activity")
    context = span.get_span_context()
    assert server_text.endswith(
        f"/*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-"
        f"{context.trace_flags:02x}'*/")
    assert "traceparent" not in span.attributes["db.query.text"]


def test_duration_metric_points(recorded: Recorded):
    """Executes record duration points with system, operation, table, database and
    server; a failure adds error.type and the SQLSTATE."""
    conn = psycopg2.connect(PG_DSN)
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_namespace LIMIT 1")
    with pytest.raises(psycopg2.errors.UndefinedTable):
        cur.execute("SELECT 1 FROM tf_missing_metric")
    conn.close()
    ok = recorded.points(**{"db.collection.name": "pg_namespace"})
    assert [dict(p.attributes) for p in ok] == [
        {**PG, "db.operation.name": "SELECT", "db.collection.name": "pg_namespace"}]
    failed = recorded.points(**{"db.collection.name": "tf_missing_metric"})[0]
    assert failed.attributes["error.type"] == "psycopg2.errors.UndefinedTable"
    assert failed.attributes["db.response.status_code"] == "42P01"


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday psycopg2 use (with-blocks, fetch*, iteration, rowcount, description,
    executemany, callproc, execute_values, RealDictCursor, named cursors, register_uuid,
    sql.Identifier.as_string, rollback, isinstance) gives the same results patched as in
    an unpatched interpreter."""
    name = tag()
    expected = unpatched("psycopg2", name)
    assert scenario_psycopg2(name) == expected
    assert len(recorded.spans("postgresql")) >= 15


def test_c_functions_handed_the_connection_behave_as_unpatched(recorded: Recorded):
    """psycopg2's C functions that type-check the connection they are handed
    (sql.Literal.as_string, extensions.cursor(conn), QuotedString and Json prepare,
    quote_ident, register_type), the program's connection and cursor factories
    (LoggingConnection, NamedTupleCursor, a function), type names, pickling and refused
    calls are the same patched as unpatched (the C checks used to refuse our proxy)."""
    name = tag()
    expected = unpatched("psycopg2_classes", name)
    assert scenario_psycopg2_classes(name) == expected
    assert len(recorded.spans("postgresql")) >= 3


def test_factory_classes_are_traced_once_per_statement(recorded: Recorded):
    """LoggingConnection's own cursor class and connect(cursor_factory=) cursors are
    traced, one span per statement, and are instances of those classes; a cursor built by
    hand from psycopg2's class is not traced."""
    conn = psycopg2.connect(PG_DSN, connection_factory=psycopg2.extras.LoggingConnection)
    conn.initialize(logging.getLogger("tests.data.psycopg2"))
    cur = conn.cursor()
    assert isinstance(cur, psycopg2.extras.LoggingCursor)
    assert type(cur).__name__ == "LoggingCursor"
    cur.execute("SELECT 1 FROM pg_class LIMIT 1")
    psycopg2.extensions.cursor(conn).execute("SELECT 2")
    conn.close()
    rows = psycopg2.connect(PG_DSN, cursor_factory=psycopg2.extras.NamedTupleCursor)
    named_tuples = rows.cursor()
    named_tuples.execute("SELECT 3 AS three FROM pg_am LIMIT 1")
    assert named_tuples.fetchone().three == 3
    rows.close()
    assert [s.name for s in recorded.spans("postgresql")] == ["SELECT pg_class",
                                                              "SELECT pg_am"]


def test_a_driver_error_shows_two_frames_of_ours(recorded: Recorded):
    """The traceback of an error psycopg2 raises in a traced execute holds two frames of
    ours (the traced method and the runner)."""
    conn = psycopg2.connect(PG_DSN)
    with pytest.raises(psycopg2.errors.UndefinedTable) as caught:
        conn.cursor().execute("SELECT * FROM tf_missing_frames")
    conn.close()
    assert our_frames(caught.value) == ["execute", "run"]

