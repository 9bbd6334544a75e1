"""sqlite3 under the DB-API instrumentation: spans, metrics, errors, secrecy, behaviour."""

from __future__ import annotations

import sqlite3

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    our_frames,
    recorded,
    scenario_sqlite3,
    scenario_sqlite3_classes,
    tag,
    unpatched,
)

__all__ = ["recorded"]


def test_execute_makes_a_client_span_named_after_operation_and_table(recorded: Recorded,
                                                                      tmp_path):
    """Each execute is one CLIENT span named ``SELECT <table>`` with the sqlite semconv
    attributes, the database file as namespace and the statement as written."""
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER, total REAL)")
    cur = conn.cursor()
    cur.execute("SELECT id, total FROM orders WHERE id = ?", (7,))
    conn.close()
    span = recorded.span("SELECT orders")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        "db.system.name": "sqlite", "db.namespace": str(path),
        "db.operation.name": "SELECT", "db.collection.name": "orders",
        "db.query.text": "SELECT id, total FROM orders WHERE id = ?"}
    assert recorded.span("CREATE orders").attributes["db.operation.name"] == "CREATE"


def test_executemany_and_executescript_are_one_span_each(recorded: Recorded):
    """executemany is one span carrying the batch size; executescript one span for the
    whole script; connection shortcuts are traced like cursor calls."""
    conn = sqlite3.connect(":memory:")
    conn.executescript("CREATE TABLE items (a); CREATE TABLE other (b);")
    conn.cursor().executemany("INSERT INTO items VALUES (?)", [(1,), (2,), (3,)])
    conn.executemany("INSERT INTO items VALUES (?)", [(4,)])
    spans = [s.name for s in recorded.spans("sqlite")]
    assert spans == ["CREATE", "INSERT items", "INSERT items"]  # the script: two tables
    batch, single = recorded.spans("sqlite")[1:]
    assert batch.attributes["db.operation.batch.size"] == 3
    assert "db.operation.batch.size" not in single.attributes
    assert recorded.spans()[0].attributes["db.query.text"].startswith("CREATE TABLE items")


def test_failing_statement_is_an_error_span_and_the_original_exception(recorded: Recorded):
    """A statement sqlite rejects gives an ERROR span with the exception event and
    error.type, and the program gets sqlite's own exception, not one of ours."""
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.cursor().execute("SELECT * FROM nowhere")
    assert str(caught.value) == "no such table: nowhere"
    assert caught.value.__context__ is None  # raised by sqlite, not re-raised from ours
    span = recorded.span("SELECT nowhere")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "sqlite3.OperationalError"
    assert [e.name for e in span.events] == ["exception"]
    point = recorded.points(**{"db.collection.name": "nowhere"})[0]
    assert point.attributes["error.type"] == "sqlite3.OperationalError"


def test_parameter_values_never_reach_telemetry(recorded: Recorded):
    """A bound parameter's value appears in no span attribute, event or metric point."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE vault (secret TEXT)")
    conn.execute("INSERT INTO vault VALUES (?)", (SECRET_VALUE,))
    conn.cursor().execute("SELECT * FROM vault WHERE secret = :s", {"s": SECRET_VALUE})
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("CREATE TABLE strict_vault (secret TEXT CHECK (secret = 'x'))")
        conn.execute("INSERT INTO strict_vault VALUES (?)", (SECRET_VALUE,))
    assert len(recorded.spans("sqlite")) == 5
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_duration_metric_has_low_cardinality_attributes(recorded: Recorded):
    """Each execute records a db.client.operation.duration point keyed by system,
    operation, collection and namespace only (never the statement text)."""
    table = f"metered_{tag()}"
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE {table} (a)")
    for value in range(3):
        conn.execute(f"SELECT * FROM {table} WHERE a = {value}")
    points = recorded.points(**{"db.collection.name": table, "db.operation.name": "SELECT"})
    assert len(points) == 1
    assert dict(points[0].attributes) == {
        "db.system.name": "sqlite", "db.namespace": ":memory:",
        "db.operation.name": "SELECT", "db.collection.name": table}
    assert points[0].count == 3 and points[0].sum > 0
    assert list(points[0].explicit_bounds) == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10]


def test_suppressed_calls_make_no_span(recorded: Recorded):
    """Inside suppress_instrumentation() the call runs and makes no span."""
    conn = sqlite3.connect(":memory:")
    with suppress_instrumentation():
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert recorded.spans() == []


def test_commenter_appends_traceparent_that_sqlite_sees(recorded: Recorded):
    """With the commenter on, the statement sqlite executes ends with the span's
    traceparent comment, while db.query.text keeps the statement without it."""
    recorded.telemetry().commenter = True
    conn = sqlite3.connect(":memory:")
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    conn.execute("SELECT 1;")
    span = recorded.span("SELECT")
    context = span.get_span_context()
    expected = (f"/*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-"
                f"{context.trace_flags:02x}'*/")
    assert seen == [f"SELECT 1 {expected};"]
    assert span.attributes["db.query.text"] == "SELECT ?;"


def test_behaviour_is_unchanged(recorded: Recorded):
    """Everyday sqlite3 use (context managers, fetch*, iteration, lastrowid, rowcount,
    description, rollback, executescript, backup, Row factory, isinstance) gives the same
    results patched as in an unpatched interpreter."""
    name = tag()
    expected = unpatched("sqlite3", name)
    assert scenario_sqlite3(name) == expected
    assert len(recorded.spans("sqlite")) >= 15


def test_the_drivers_checks_and_the_programs_classes_behave_as_unpatched(recorded: Recorded):
    """sqlite3.Cursor(conn) and subclasses built that way (which failed sqlite3's C type
    check against our proxy), cursor(factory) and connect(factory=) classes of the
    program's, type names, pickling and copying, attribute errors, backup, and the messages
    of refused calls (also on a closed connection) are the same patched as unpatched."""
    name = tag()
    expected = unpatched("sqlite3_classes", name)
    assert scenario_sqlite3_classes(name) == expected
    assert len(recorded.spans("sqlite")) >= 10


def test_a_cursor_returned_by_a_connection_shortcut_stays_traced(recorded: Recorded):
    """``cur = conn.execute(...)`` returns a traced cursor, so running it again is traced
    too (it used to be the driver's own cursor, silently untraced)."""
    conn = sqlite3.connect(":memory:")
    cur = conn.execute("CREATE TABLE reused (a)")
    cur.execute("INSERT INTO reused VALUES (1)")
    cur.executemany("INSERT INTO reused VALUES (?)", [(2,), (3,)])
    assert cur.execute("SELECT count(*) FROM reused").fetchone() == (3,)
    script = conn.executescript("CREATE TABLE other (b);")
    script.execute("SELECT b FROM other")
    assert [s.name for s in recorded.spans("sqlite")] == [
        "CREATE reused", "INSERT reused", "INSERT reused", "SELECT reused", "CREATE other",
        "SELECT other"]


def test_the_programs_own_classes_are_traced_once_per_statement(recorded: Recorded):
    """A connect(factory=) class choosing its own cursor class, and a cursor class whose
    execute calls the driver's, are traced: one span per statement, not one per layer; the
    objects are instances of the program's classes."""

    class Audited(sqlite3.Cursor):
        def execute(self, *args: object) -> object:
            return super().execute(*args)

    class Mine(sqlite3.Connection):
        def cursor(self, *args: object, **kwargs: object) -> object:
            return super().cursor(Audited)

    conn = sqlite3.connect(":memory:", factory=Mine)
    assert isinstance(conn, Mine) and isinstance(conn.cursor(), Audited)
    conn.cursor().execute("SELECT 1")
    conn.cursor(Audited).execute("SELECT 2")
    conn.execute("SELECT 3")
    assert [s.attributes["db.operation.name"] for s in recorded.spans("sqlite")] == [
        "SELECT"] * 3


def test_what_we_cannot_subclass_runs_untraced(recorded: Recorded):
    """Cursors built from the driver's class by hand, a factory that is a function, and a
    class refusing subclasses work as unpatched, untraced."""

    class Sealed(sqlite3.Connection):
        def __init_subclass__(cls, **kwargs: object) -> None:
            raise TypeError("sealed")

    conn = sqlite3.connect(":memory:")
    assert sqlite3.Cursor(conn).execute("SELECT 1").fetchone() == (1,)
    made = sqlite3.connect(":memory:", factory=lambda *a, **k: sqlite3.Connection(*a, **k))
    assert made.execute("SELECT 2").fetchone() == (2,)
    sealed = sqlite3.connect(":memory:", factory=Sealed)
    assert type(sealed) is Sealed and sealed.execute("SELECT 3").fetchone() == (3,)
    assert recorded.spans() == []


def test_a_driver_error_shows_two_frames_of_ours(recorded: Recorded):
    """The traceback of an error sqlite raises in a traced execute holds two frames of ours
    (the traced method and the runner), not three."""
    conn = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as caught:
        conn.cursor().execute("SELECT * FROM nowhere")
    assert our_frames(caught.value) == ["execute", "run"]

