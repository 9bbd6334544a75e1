"""The DB-API 2.0 core every SQL driver module shares (sqlite3, psycopg2, psycopg, pymysql,
mysqldb), plus the span-and-metric runner asyncpg and redis reuse.

How a driver's calls reach ``run``: the C drivers (sqlite3, psycopg2) build connections and
cursors of traced subclasses of the classes the program names (``_db_subclasses``); the
pure-Python drivers (psycopg, pymysql, mysqldb) hand out ``wrapt`` proxies
(``_db_proxies``). Each module says why. Each traced call makes one span and one metric
point.

Spans: one CLIENT span per ``execute``/``executemany``/``callproc``/``executescript`` (and
the connection-level shortcuts), named ``{db.operation.name} {db.collection.name}`` when a
cheap parse finds both, else ``{db.operation.name}``, else the system name; the drivers'
server-side cursors add a ``FETCH`` span per fetch that goes to the server
(``Prepared.fetch``). Attributes:
``db.system.name``, ``db.namespace``, ``db.query.text`` (the statement with its literals
replaced by ``?`` and its comments removed, see ``_sql_text``; parameter values are never
read), ``db.operation.name``, ``db.collection.name`` (only when the statement names one table),
``db.stored_procedure.name`` (callproc), ``db.operation.batch.size`` (executemany of 2+),
``server.address``, ``server.port``; on failure ``error.type``,
``db.response.status_code`` (SQLSTATE / MySQL error number / Redis error prefix), an
exception event and ERROR status without the exception's message (it quotes values: see
``_record_failure``), and the original exception propagates.

Metric: ``db.client.operation.duration`` (histogram, seconds) with ``db.system.name``,
``db.operation.name``, ``db.collection.name``, ``db.namespace``, ``server.address``,
``server.port`` and, on failure, ``error.type`` / ``db.response.status_code``.

Environment: ``TELEMETRYFLOW_DB_COMMENTER`` (``config.db_commenter``): append a
sqlcommenter-style ``/*traceparent='00-…'*/`` to ``execute`` statements, so the database's
own logs can be joined to the trace. Off by default: it changes the statement text, which
defeats server-side statement caches keyed on text (MySQL query cache, pg_stat_statements
normalisation keeps working).

Hot path: the tracer and histogram are fetched once per PatchContext; the attributes of a
connection are computed once (``Target``) and those of a statement once per connection
(``Target.prepare``, backed by a bounded process-wide parse cache). A call then costs a
suppression check, one dict lookup, a span and a histogram point. The span is deliberately
not made current: nothing we trace runs inside a driver call, and attaching a context costs
as much again as the lookup work.
"""

from __future__ import annotations

import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from opentelemetry.semconv.attributes import db_attributes as _db
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import server_attributes as _server
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import _sql_text
from ._error_type import error_type

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
DURATION_METRIC = "db.client.operation.duration"

SYSTEM = _db.DB_SYSTEM_NAME
NAMESPACE = _db.DB_NAMESPACE
QUERY_TEXT = _db.DB_QUERY_TEXT
OPERATION = _db.DB_OPERATION_NAME
COLLECTION = _db.DB_COLLECTION_NAME
BATCH_SIZE = _db.DB_OPERATION_BATCH_SIZE
PROCEDURE = _db.DB_STORED_PROCEDURE_NAME
STATUS_CODE = _db.DB_RESPONSE_STATUS_CODE
ADDRESS = _server.SERVER_ADDRESS
PORT = _server.SERVER_PORT
ERROR_TYPE = _error.ERROR_TYPE

_CLIENT = SpanKind.CLIENT
_now = time.perf_counter

# Statements longer than this are traced but not cached (a one-off statement with inline
# literals must not pin megabytes), and query text is cut to it.
_MAX_STATEMENT = 8192
_MAX_PARSED = 2048  # process-wide parse cache entries
_MAX_PREPARED = 512  # per-target prepared-statement entries
_SCAN = 2000  # how far into a statement the parse looks for the table name


# ----- telemetry handles, once per PatchContext ------------------------------------------


class Telemetry:
    """The tracer and duration histogram one PatchContext provides, plus the DB switches
    read from its config; shared by every DB module so the histogram is created once."""

    __slots__ = ("capture_args", "commenter", "duration", "leaf", "tracer")

    def __init__(self, context: Any) -> None:
        from opentelemetry.metrics import NoOpMeter
        from opentelemetry.trace import NoOpTracer

        from ..infrastructure.fast_histogram import fast_histogram
        from ..infrastructure.leaf_spans import LeafTracer

        self.tracer = context.tracer or NoOpTracer()
        self.leaf = LeafTracer.for_tracer(self.tracer)  # None: tracer.start_span instead
        meter = context.meter or NoOpMeter("telemetryflow")
        self.duration = fast_histogram(meter.create_histogram(
            DURATION_METRIC, unit="s", description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS)))
        config = context.config
        self.commenter = bool(getattr(config, "db_commenter", False))
        self.capture_args = bool(getattr(config, "redis_capture_args", False))


_telemetry_lock = threading.Lock()
_telemetry: list[tuple[Any, Telemetry]] = []  # (context, telemetry); keeps contexts alive


def telemetry_for(context: Any) -> Telemetry:
    """The shared ``Telemetry`` of ``context`` (contexts compare by identity)."""
    with _telemetry_lock:
        for known, telemetry in _telemetry:
            if known is context:
                return telemetry
        telemetry = Telemetry(context)
        _telemetry.append((context, telemetry))
        return telemetry


# ----- what is traced: prepared operations ------------------------------------------------


class Prepared:
    """One operation's span name and attribute dicts, built once and shared read-only
    (the SDK copies span attributes and keys metric points by their items)."""

    __slots__ = ("_fetch", "attributes", "metric_attributes", "name")

    def __init__(self, name: str, attributes: dict[str, Any],
                 metric_attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric_attributes = metric_attributes
        self._fetch: Prepared | None = None

    def fetch(self) -> Prepared:
        """The ``FETCH`` that pulls rows of this statement from a server-side cursor,
        built once: ``FETCH {collection}``, with this statement's collection and query text.

        Why the declared statement's text and not the ``FETCH FORWARD n FROM "name"`` the
        driver sends: PostgreSQL runs the declared query during the fetches (``DECLARE``
        only plans it), so grouping by ``db.query.text`` then adds up a query's whole cost;
        and cursor names are often made per call (Django's ``_django_curs_<thread>_...``)."""
        fetch = self._fetch
        if fetch is None:
            attributes = {**self.attributes, OPERATION: "FETCH"}
            attributes.pop(BATCH_SIZE, None)
            metric = {**self.metric_attributes, OPERATION: "FETCH"}
            collection = attributes.get(COLLECTION)
            fetch = Prepared(f"FETCH {collection}" if collection else "FETCH", attributes,
                             metric)
            self._fetch = fetch
        return fetch


class Target:
    """What one connection talks to (system, database, server) and the statements seen on
    it; computed once per connection (or per server, for drivers patched at class level)."""

    __slots__ = ("_base", "_fetch_any", "_metric_base", "_procedures", "_render", "_statements",
                 "system", "telemetry")

    def __init__(self, telemetry: Telemetry, system: str, *, namespace: str | None = None,
                 address: str | None = None, port: int | None = None,
                 render: Callable[[Any], str | None] | None = None) -> None:
        self.telemetry = telemetry
        self.system = system
        base: dict[str, Any] = {SYSTEM: system}
        if namespace:
            base[NAMESPACE] = namespace
        if address:
            base[ADDRESS] = address
        if port:
            base[PORT] = int(port)
        self._base = base
        self._metric_base = dict(base)
        self._render = render
        self._statements: dict[Any, Prepared] = {}
        self._procedures: dict[str, Prepared] = {}
        self._fetch_any: Prepared | None = None

    def prepare(self, statement: Any) -> Prepared:
        try:
            return self._statements[statement]
        except KeyError:
            pass
        except TypeError:  # unhashable: a composed SQL object
            return self._build(statement)
        prepared = self._build(statement)
        if isinstance(statement, (str, bytes)) and len(statement) <= _MAX_STATEMENT:
            if len(self._statements) >= _MAX_PREPARED:
                self._statements.clear()  # rare; cheaper and fairer than LRU bookkeeping
            self._statements[statement] = prepared
        return prepared

    def _build(self, statement: Any) -> Prepared:
        text = _text(statement, self._render)
        text, operation, collection = parse(text, self.system) if text else (None, None, None)
        return self.operation(operation, collection, text)

    def operation(self, operation: str | None, collection: str | None = None,
                  text: str | None = None, **extra: Any) -> Prepared:
        """A ``Prepared`` for an operation the caller names (redis commands, procedures)."""
        attributes = dict(self._base)
        metric = dict(self._metric_base)
        if operation:
            attributes[OPERATION] = metric[OPERATION] = operation
        if collection:
            attributes[COLLECTION] = metric[COLLECTION] = collection
        if text:
            attributes[QUERY_TEXT] = text[:_MAX_STATEMENT]
        attributes.update(extra)
        if operation and collection:
            name = f"{operation} {collection}"
        else:
            name = operation or extra.get(PROCEDURE) or self.system
        return Prepared(name, attributes, metric)

    def fetch(self) -> Prepared:
        """A ``FETCH`` from a server-side cursor whose statement we did not see (one the
        program opened in SQL, or a function's refcursor)."""
        fetch = self._fetch_any
        if fetch is None:
            fetch = self._fetch_any = self.operation("FETCH")
        return fetch

    def copy(self, table: str) -> Prepared:
        """A COPY of ``table`` whose statement the driver composes (not cached: a COPY
        moves whole tables, its cost dwarfs building two dicts)."""
        return self.operation("COPY", table)

    def procedure(self, name: Any) -> Prepared:
        key = str(name)
        prepared = self._procedures.get(key)
        if prepared is None:
            prepared = self.operation("CALL", None, None, **{PROCEDURE: key})
            prepared.name = f"CALL {key}"
            if len(self._procedures) < _MAX_PREPARED:
                self._procedures[key] = prepared
        return prepared


def _text(statement: Any, render: Callable[[Any], str | None] | None) -> str | None:
    if isinstance(statement, str):
        return statement
    if isinstance(statement, (bytes, bytearray, memoryview)):
        return bytes(statement[:_MAX_STATEMENT * 4]).decode("utf-8", "replace")
    if render is not None:
        try:
            return render(statement)
        except Exception:
            return None
    return None


# ----- the bounded statement parse ---------------------------------------------------------

_IDENT = r'(?:[\w$]+|"[^"]+"|`[^`]+`|\[[^\]]+\])'
_NAME = rf"({_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}})"
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.S)
_FROM = re.compile(rf"\bFROM\s+(?:ONLY\s+)?{_NAME}", re.I)
_INTO = re.compile(rf"\bINTO\s+{_NAME}", re.I)
_UPDATE = re.compile(rf"\s+(?:(?:ONLY|LOW_PRIORITY|IGNORE|OR\s+[A-Za-z]+)\s+)*{_NAME}", re.I)
_DDL_TABLE = re.compile(
    r"\s+(?:(?:GLOBAL|LOCAL|TEMP|TEMPORARY|UNLOGGED|VIRTUAL|OR\s+REPLACE)\s+)*TABLE\s+"
    rf"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?{_NAME}", re.I)
_TRUNCATE = re.compile(rf"\s+(?:TABLE\s+)?(?:ONLY\s+)?{_NAME}", re.I)
_SEARCHED = {"SELECT": _FROM, "DELETE": _FROM, "INSERT": _INTO, "REPLACE": _INTO}
_COPY = re.compile(rf"\s+{_NAME}", re.I)  # COPY t ... (not COPY (query) TO)
_ANCHORED = {"UPDATE": _UPDATE, "CREATE": _DDL_TABLE, "DROP": _DDL_TABLE,
             "ALTER": _DDL_TABLE, "TRUNCATE": _TRUNCATE, "COPY": _COPY}
_NOT_TABLES = frozenset({"SELECT", "LATERAL", "UNNEST", "VALUES", "SET", "WHERE"})
_WHITESPACE_DOT = re.compile(r"\s*\.\s*")
_CALL = re.compile(r"\s*\(")

_parsed: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}


def parse(statement: str, system: str = "") -> tuple[str | None, str | None, str | None]:
    """(query text, operation, collection) of ``statement`` sent to a ``system`` database:
    the text sanitized (``_sql_text.sanitize``; None when that cannot be done safely), its
    first keyword, upper-cased, and the table after FROM/INTO/UPDATE/TABLE when the
    statement is of a kind that names one and names no other table.

    Deliberately not a SQL parser: it reads at most ``_SCAN`` characters for the table and
    gives ``None`` rather than guess. The one process-wide cache of statements, keyed by
    system too (the dialects quote differently)."""
    key = (system, statement)
    try:
        return _parsed[key]
    except KeyError:
        pass
    text = _sql_text.sanitize(statement, system)
    operation, collection = _parse(statement if text is None else text)
    if collection and (text is None or _sql_text.names_other_tables(text, collection)):
        collection = None
    result = (text, operation, collection)
    if len(statement) <= _MAX_STATEMENT:
        if len(_parsed) >= _MAX_PARSED:
            _parsed.clear()
        _parsed[key] = result
    return result


def _parse(statement: str) -> tuple[str | None, str | None]:
    head = _FIRST_WORD.match(statement, 0, _SCAN)
    if head is None:
        return None, None
    operation = head.group(1).upper()
    collection = None
    searched = _SEARCHED.get(operation)
    if searched is not None:
        found = searched.search(statement, head.end(), head.end() + _SCAN)
        if found is not None and searched is _FROM and _CALL.match(statement, found.end()):
            found = None  # FROM generate_series(1, 5): a function, not a table
    else:
        anchored = _ANCHORED.get(operation)
        found = anchored.match(statement, head.end(), head.end() + _SCAN) if anchored else None
    if found is not None:
        collection = _WHITESPACE_DOT.sub(".", found.group(1))
        if collection.upper() in _NOT_TABLES:
            collection = None
    return operation, collection


# ----- running a traced call ---------------------------------------------------------------

_Rewrite = Callable[[Any, tuple[Any, ...], dict[str, Any]],
                    tuple[tuple[Any, ...], dict[str, Any]]]


def _start(telemetry: Telemetry, prepared: Prepared) -> Any:
    leaf = telemetry.leaf
    if leaf is not None:
        return leaf.start(prepared.name, _CLIENT, prepared.attributes)
    return telemetry.tracer.start_span(prepared.name, kind=_CLIENT,
                                       attributes=prepared.attributes)


def run(telemetry: Telemetry, prepared: Prepared, method: Callable[..., Any],
        args: tuple[Any, ...], kwargs: dict[str, Any], extra: dict[str, Any] | None = None,
        rewrite: _Rewrite | None = None) -> Any:
    """``method(*args, **kwargs)`` inside a CLIENT span and a duration point. Whatever we
    fail at, the call still happens once, and its result or exception is the caller's."""
    try:
        span = _start(telemetry, prepared)
        if extra:
            span.set_attributes(extra)
        if rewrite is not None:
            args, kwargs = rewrite(span, args, kwargs)
    except Exception:
        return method(*args, **kwargs)
    start = _now()
    try:
        result = method(*args, **kwargs)
    except BaseException as exc:
        _failed(telemetry, prepared, span, exc, _now() - start)
        raise
    try:
        telemetry.duration.record(_now() - start, prepared.metric_attributes)
        span.end()
    except Exception:
        pass
    return result


async def run_async(telemetry: Telemetry, prepared: Prepared, method: Callable[..., Any],
                    args: tuple[Any, ...], kwargs: dict[str, Any],
                    extra: dict[str, Any] | None = None,
                    rewrite: _Rewrite | None = None) -> Any:
    """``await method(*args, **kwargs)``, traced like ``run``."""
    try:
        span = _start(telemetry, prepared)
        if extra:
            span.set_attributes(extra)
        if rewrite is not None:
            args, kwargs = rewrite(span, args, kwargs)
    except Exception:
        return await method(*args, **kwargs)
    start = _now()
    try:
        result = await method(*args, **kwargs)
    except BaseException as exc:
        _failed(telemetry, prepared, span, exc, _now() - start)
        raise
    try:
        telemetry.duration.record(_now() - start, prepared.metric_attributes)
        span.end()
    except Exception:
        pass
    return result


class Span:
    """An operation traced across two calls (a ``with`` block's enter and exit, as psycopg's
    ``copy()``), where ``run`` cannot wrap one call; like ``run``, it never raises."""

    __slots__ = ("_prepared", "_span", "_started", "_telemetry")

    def __init__(self, telemetry: Telemetry, prepared: Prepared) -> None:
        self._telemetry = telemetry
        self._prepared = prepared
        try:
            self._span: Any = _start(telemetry, prepared)
        except Exception:
            self._span = None
        self._started = _now()

    def end(self, exc: BaseException | None = None) -> None:
        span, self._span = self._span, None
        if span is None:
            return  # never started, or ended already
        elapsed = _now() - self._started
        if exc is not None:
            _failed(self._telemetry, self._prepared, span, exc, elapsed)
            return
        try:
            self._telemetry.duration.record(elapsed, self._prepared.metric_attributes)
            span.end()
        except Exception:
            pass


def _failed(telemetry: Telemetry, prepared: Prepared, span: Any, exc: BaseException,
            elapsed: float) -> None:
    # Runs inside the caller's ``except``: it must never raise, or the user would see our
    # error instead of theirs.
    try:
        failure = {ERROR_TYPE: error_type(exc)}
        code = _status_code(exc)
        if code:
            failure[STATUS_CODE] = code
        span.set_attributes(failure)
        _record_failure(span, exc, failure[ERROR_TYPE])
        span.end()
        telemetry.duration.record(elapsed, {**prepared.metric_attributes, **failure})
    except Exception:
        pass


def _record_failure(span: Any, exc: BaseException, kind: str) -> None:
    """The exception event and ERROR status, without the exception's message.

    Why: a database's error message quotes what it was sent, values included (PostgreSQL's
    ``DETAIL: Key (email)=(a@example.com) already exists``, psycopg2's ``LINE 1: ... = 'pw'``
    for a value it interpolated, MySQL's ``near 'pw'``, redis-py's failed pipeline command
    with its arguments), which ``db.query.text`` takes care never to export. The type,
    ``db.response.status_code`` and where it was raised stay; the message stays with the
    program, which gets the exception unchanged."""
    span.add_event("exception", {
        "exception.type": kind,
        "exception.stacktrace": "Traceback (most recent call last):\n"
                                + "".join(traceback.format_tb(exc.__traceback__)) + kind,
        "exception.escaped": "False",
    })
    span.set_status(Status(StatusCode.ERROR, kind))


# A Redis error reply starts with its upper-case code (``WRONGTYPE Operation against...``);
# redis-py keeps that text as the message, or, for a pipeline's failed command, quotes it
# after the command and its arguments (the asyncio client as the repr of its args tuple).
_REDIS_PREFIX = re.compile(
    r"(?:Command # \d+ \(.*\) of pipeline caused error: (?:\(['\"])?)?"
    r"([A-Z][A-Z_]{1,31})(?=[ '\"]|$)", re.S)
_ABSENT = object()


def _status_code(exc: BaseException) -> str | None:
    args = getattr(exc, "args", ())
    if args and type(args[0]) is int:  # MySQL drivers: (errno, message); semconv wants errno
        return str(args[0])
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if code:
        return str(code)
    # redis-py 5.1+: ``status_code`` is the error prefix it stripped from the message
    # (``ERR``, ``NOSCRIPT``...); None when the prefix stayed in the message (``WRONGTYPE``)
    # or no reply was received (connection errors: no prefix, so no code).
    code = getattr(exc, "status_code", _ABSENT)
    if code is _ABSENT:
        return None
    if code:
        return str(code)
    if args and isinstance(args[0], str):
        found = _REDIS_PREFIX.match(args[0])
        return found.group(1) if found else None
    return None


# ----- what a DB-API call records ---------------------------------------------------------


def statement_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The statement an ``execute``-like call was given (first argument or by name)."""
    if args:
        return args[0]
    for key in ("query", "operation", "sql", "statement"):
        if key in kwargs:
            return kwargs[key]
    return None


def batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, int] | None:
    """``db.operation.batch.size`` of an ``executemany`` given 2+ parameter sets; no
    comment is added to those (the drivers' batch rewrites match the statement's tail)."""
    rows = args[1] if len(args) > 1 else kwargs.get("params_seq", kwargs.get("args"))
    if isinstance(rows, (list, tuple)) and len(rows) > 1:
        return {BATCH_SIZE: len(rows)}
    return None


def procedure_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The procedure name a ``callproc`` was given."""
    return args[0] if args else kwargs.get("procname", "")


def comment(statement: Any, span: Any) -> Any:
    """``statement`` with a sqlcommenter ``traceparent`` comment for ``span``'s context,
    placed before a trailing semicolon; unchanged if it is not text or carries one."""
    context = span.get_span_context()
    if not context.is_valid:
        return statement
    note = (f"/*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-"
            f"{context.trace_flags:02x}'*/")
    if isinstance(statement, str):
        if "traceparent=" in statement:
            return statement
        body = statement.rstrip()
        return f"{body[:-1]} {note};" if body.endswith(";") else f"{body} {note}"
    if isinstance(statement, bytes):
        if b"traceparent=" in statement:
            return statement
        body = statement.rstrip()
        raw = note.encode()
        return body[:-1] + b" " + raw + b";" if body.endswith(b";") else body + b" " + raw
    return statement


def _commented(span: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
               ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if args:
        return (comment(args[0], span), *args[1:]), kwargs
    for key in ("query", "operation", "sql", "statement"):
        if key in kwargs:
            return args, {**kwargs, key: comment(kwargs[key], span)}
    return args, kwargs


def rewrite_for(telemetry: Telemetry) -> _Rewrite | None:
    """The rewrite ``run`` applies to an ``execute``'s arguments: the commenter's, when on
    (read per call: tests and a live reconfiguration switch it)."""
    return _commented if telemetry.commenter else None


PATCHED = "__telemetryflow_patched__"


def mark_patched(function: Any) -> Any:
    """Tag a replacement method so a second patch (two bootstraps, two contexts) is a no-op
    instead of a second span per call."""
    setattr(function, PATCHED, True)
    return function


def is_patched(function: Any) -> bool:
    return bool(getattr(function, PATCHED, False))


def text_or_none(value: Any) -> str | None:
    """``value`` as text for an attribute (bytes decoded, paths fs-decoded), else None."""
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    return str(value)
