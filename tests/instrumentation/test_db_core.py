"""The shared DB core: the bounded statement parse, the commenter, error propagation, the
configuration switches and the catalog entries."""

from __future__ import annotations

import importlib
import sqlite3

import pytest

from telemetryflow_bootstrap.domain.config import TelemetryConfig
from telemetryflow_bootstrap.instrumentation import _catalog_data, dbapi
from telemetryflow_bootstrap.instrumentation.registry import PatchContext

from .data_fixtures import Recorded, recorded

__all__ = ["recorded"]


@pytest.mark.parametrize(("statement", "expected"), [
    ("SELECT * FROM orders WHERE id = %s", ("SELECT", "orders")),
    ("  select a from public.orders o join items i on 1=1", ("SELECT", None)),
    ('SELECT 1 FROM "Order Lines"', ("SELECT", '"Order Lines"')),
    ("SELECT 1", ("SELECT", None)),
    ("SELECT * FROM (SELECT 1) AS sub", ("SELECT", None)),
    ("/* app */ -- note\n INSERT INTO `shop`.`items` (a) VALUES (?)", ("INSERT", "`shop`.`items`")),
    ("UPDATE ONLY stock SET n = n - 1", ("UPDATE", "stock")),
    ("delete from carts where id = $1", ("DELETE", "carts")),
    ("CREATE TEMP TABLE IF NOT EXISTS scratch (a int)", ("CREATE", "scratch")),
    ("DROP TABLE IF EXISTS scratch", ("DROP", "scratch")),
    ("CREATE INDEX ix ON scratch (a)", ("CREATE", None)),
    ("TRUNCATE TABLE logs", ("TRUNCATE", "logs")),
    ("REPLACE INTO kv VALUES (1, 2)", ("REPLACE", "kv")),
    ("BEGIN", ("BEGIN", None)),
    ("", (None, None)),
    ("(SELECT 1 FROM a) UNION (SELECT 2 FROM b)", ("SELECT", None)),
    ("SELECT 'FROM secrets' FROM t", ("SELECT", "t")),
    ("SELECT EXTRACT(YEAR FROM ts) FROM t", ("SELECT", None)),
    ("SELECT n FROM generate_series(1, 5) AS n", ("SELECT", None)),
    ("SELECT * FROM public.list_orders ($1)", ("SELECT", None)),
])
def test_parse_finds_operation_and_the_one_table(statement, expected):
    """The bounded parse names the first keyword and the table after FROM/INTO/UPDATE/
    TABLE when the statement names no other (and not one inside a literal, nor a function
    called in FROM), and gives None rather than guess."""
    assert dbapi.parse(statement)[1:] == expected


@pytest.mark.parametrize(("system", "statement", "expected"), [
    ("postgresql", "SELECT 1 FROM pg_class WHERE relname = 'x' -- note",
     ("SELECT ? FROM pg_class WHERE relname = ?", "SELECT", "pg_class")),
    ("postgresql", 'SELECT "x" FROM t', ('SELECT "x" FROM t', "SELECT", "t")),
    ("mysql", 'SELECT "x" FROM t', ("SELECT ? FROM t", "SELECT", "t")),
    ("sqlite", "SELECT * FROM t WHERE a = 'open", (None, "SELECT", None)),
])
def test_parse_gives_the_sanitized_text_of_the_system(system, statement, expected):
    """The text comes sanitized by the system's dialect (cached per system: a double-quoted
    word is a name in PostgreSQL, a string in MySQL); when it cannot be sanitized there is
    no text and no table, only the operation."""
    assert dbapi.parse(statement, system) == expected


def test_parse_reads_a_bounded_prefix_of_huge_statements():
    """A megabyte of inline values is parsed from its head, quickly, and not cached."""
    statement = "INSERT INTO bulk VALUES " + ",".join(["(1, 'x')"] * 100_000)
    text, operation, collection = dbapi.parse(statement)
    assert (operation, collection) == ("INSERT", "bulk")
    assert text is not None and text.startswith("INSERT INTO bulk VALUES (?, ?),(?, ?)")
    assert ("", statement) not in dbapi._parsed


def test_original_exception_object_propagates():
    """The exact exception object the driver raised reaches the caller (not a copy, not a
    wrapper), and the span still ends."""
    boom = sqlite3.DatabaseError("disk I/O error")

    def failing(*args: object, **kwargs: object) -> None:
        raise boom

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    context = PatchContext(provider.get_tracer("t"), None, None, TelemetryConfig(), None)
    target = dbapi.Target(dbapi.Telemetry(context), "sqlite")
    with pytest.raises(sqlite3.DatabaseError) as caught:
        dbapi.run(target.telemetry, target.prepare("SELECT 1"), failing, ("SELECT 1",), {})
    assert caught.value is boom
    assert exporter.get_finished_spans()[0].attributes["error.type"] == "sqlite3.DatabaseError"


def test_commenter_and_capture_switches_come_from_the_environment():
    """TELEMETRYFLOW_DB_COMMENTER and TELEMETRYFLOW_REDIS_CAPTURE_ARGS reach the
    telemetry the patches read; both are off by default."""
    on = TelemetryConfig.from_environment({"TELEMETRYFLOW_DB_COMMENTER": "true",
                                           "TELEMETRYFLOW_REDIS_CAPTURE_ARGS": "true"})
    telemetry = dbapi.Telemetry(PatchContext(None, None, None, on, None))
    assert telemetry.commenter and telemetry.capture_args
    default = dbapi.Telemetry(PatchContext(None, None, None, TelemetryConfig(), None))
    assert not default.commenter and not default.capture_args


def test_comment_goes_before_a_trailing_semicolon_and_only_once():
    """The sqlcommenter comment is appended (before a final ``;``), also to bytes, and not
    added to a statement that already carries a traceparent."""
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider().get_tracer("t").start_span("s")
    note = dbapi.comment("SELECT 1", span)
    assert note.startswith("SELECT 1 /*traceparent='00-") and note.endswith("'*/")
    assert dbapi.comment("SELECT 1 ;", span).endswith("'*/;")
    assert dbapi.comment(b"SELECT 1", span).startswith(b"SELECT 1 /*traceparent='00-")
    assert dbapi.comment(note, span) == note


def test_traced_classes_have_exactly_the_methods_of_the_drivers(recorded: Recorded):
    """A traced sqlite3 connection and cursor answer hasattr() like the driver's own
    classes for the methods we add (sqlite3 has executescript, no callproc), and read like
    them (repr, type names)."""
    conn = sqlite3.connect(":memory:")
    cur = conn.cursor()
    assert type(conn) is not sqlite3.Connection and type(cur) is not sqlite3.Cursor
    for name in ("execute", "executemany", "executescript", "callproc", "__next__"):
        assert hasattr(cur, name) == hasattr(sqlite3.Cursor, name), name
    for name in ("execute", "executemany", "executescript", "cursor", "backup"):
        assert hasattr(conn, name) == hasattr(sqlite3.Connection, name), name
    assert repr(conn).startswith("<sqlite3.Connection object at ")
    assert (type(cur).__name__, type(cur).__qualname__, type(cur).__module__) == (
        "Cursor", "Cursor", "sqlite3")
    assert repr(type(conn)) == "<class 'sqlite3.Connection'>"


@pytest.mark.parametrize("entry", _catalog_data.ENTRIES, ids=lambda e: e.name)
def test_catalog_entries_point_at_patch_functions(entry):
    """Every data entry names its patch function by an importable string path."""
    module_path, _, function = entry.patch.partition(":")
    assert callable(getattr(importlib.import_module(module_path), function))
    assert entry.modules and all(isinstance(m, str) for m in entry.modules)
