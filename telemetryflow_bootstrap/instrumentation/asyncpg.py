"""asyncpg: a CLIENT span and a ``db.client.operation.duration`` point per
``Connection.execute``/``executemany``/``fetch``/``fetchval``/``fetchrow``/``fetchmany``
(and so per ``Pool`` call, which delegates to a connection; a transaction's
BEGIN/COMMIT are real round trips and show as such).

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace``,
``server.address``/``server.port`` (the address asyncpg actually connected to),
``db.query.text``, ``db.operation.name``, ``db.collection.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

Prepared statements: ``conn.prepare(query)`` (a round trip: the server parses and plans
the query, asyncpg may look its types up) is a ``PREPARE {db.collection.name}`` span and
duration point with the query's text; each ``fetch``/``fetchval``/``fetchrow``/
``fetchmany``/``executemany`` of the statement it returns is a span for its query
(``explain`` runs through ``Connection.fetchval``, so it is one too). The statements
asyncpg prepares on its own for ``conn.fetch()`` and the like (its statement cache) are
part of those calls' spans.

Cursors (``conn.cursor(query)``, ``stmt.cursor()``, always inside a transaction): the round
trip that binds the query (``await conn.cursor(...)``, or the first batch of ``async for``)
is a span for the query, and every later round trip that pulls rows (``Cursor.fetch``/
``fetchrow``, each next batch of ``prefetch`` rows in ``async for``) a ``FETCH
{db.collection.name}`` span and duration point with the query's text, for the server runs
the query as rows are pulled (see ``dbapi.Prepared.fetch``). Rows already prefetched cost
nothing. ``Cursor.forward(n)`` is a ``MOVE {db.collection.name}`` span with the query's
text: the server computes the rows it skips. Not traced: the portal's close (no query
work).

COPY: ``copy_from_table``/``copy_to_table``/``copy_records_to_table`` are ``COPY {table}``
spans (``schema.table`` when ``schema_name`` is given; no query text: asyncpg composes it),
``copy_from_query`` a ``COPY`` span with the program's query as ``db.query.text``.

asyncpg is not DB-API and its pool hands out its own connection objects (a proxy would
fail its identity checks), so the ``Connection``, ``PreparedStatement`` and cursor methods
are patched at class level; the per-server attributes are cached by (address, database)
instead of per connection. The statements asyncpg sends on its own to reset a connection
are not traced (``Connection.reset``, which a pool runs at every release: ``SELECT
pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;``, and the ``ROLLBACK`` of a
transaction left open). A pool's ``reset=`` callback is the program's code: its statements
are traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import _db_subclasses as subclasses
from . import dbapi
from ._http_common import suppressed

_SINGLE = ("execute", "fetch", "fetchval", "fetchrow")
_BATCH = ("executemany", "fetchmany")
_STATEMENT = ("fetch", "fetchval", "fetchrow", "fetchmany", "executemany")
_COPY_TABLE = ("copy_from_table", "copy_to_table", "copy_records_to_table")
_HOUSEKEEPING = ("reset", "_reset")  # asyncpg's own statements run inside these
_MAX_TARGETS = 64

# True inside asyncpg's housekeeping (per task: a ContextVar, not the OpenTelemetry
# suppression flag, which would also silence whatever else the task does meanwhile, e.g.
# the log record asyncpg writes about a transaction left open).
_housekeeping: ContextVar[bool] = ContextVar("telemetryflow_asyncpg_housekeeping",
                                             default=False)


def patch(module: Any, context: Any) -> None:
    import asyncpg.connection

    telemetry = dbapi.telemetry_for(context)
    targets: dict[Any, dbapi.Target] = {}

    def target_of(connection: Any) -> dbapi.Target:
        try:
            key = (connection._addr, connection._params.database)
        except AttributeError:
            key = None
        target = targets.get(key)
        if target is None:
            target = _target(telemetry, key)
            if len(targets) >= _MAX_TARGETS:
                targets.clear()
            targets[key] = target
        return target

    cls = asyncpg.connection.Connection
    if dbapi.is_patched(getattr(cls, "fetch", None)):
        return
    for name in _SINGLE:
        if hasattr(cls, name):
            setattr(cls, name, _traced(getattr(cls, name), target_of, batch=False))
    for name in _BATCH:
        if hasattr(cls, name):
            setattr(cls, name, _traced(getattr(cls, name), target_of, batch=True))
    for name in _HOUSEKEEPING:
        if hasattr(cls, name):
            setattr(cls, name, _untraced(getattr(cls, name)))
    for name in _COPY_TABLE:
        if hasattr(cls, name):
            setattr(cls, name, _traced_by(getattr(cls, name), _copy_table_call(target_of)))
    if hasattr(cls, "copy_from_query"):
        # asyncpg quotes the arguments into the COPY with a ``SELECT quote_literal(...)``
        # of its own: part of this operation, not one of the program's.
        original = cls.copy_from_query
        cls.copy_from_query = _traced_by(original, _copy_query_call(target_of),
                                         _untraced(original))
    if hasattr(cls, "prepare"):
        cls.prepare = _traced_by(cls.prepare, _prepare_call(target_of))
    _patch_statements(target_of)
    _patch_cursors(target_of)


def _patch_statements(target_of: Callable[[Any], dbapi.Target]) -> None:
    """``PreparedStatement``'s executing methods, as the connection's (its ``_connection``
    and ``_query`` are what the connection's take as arguments)."""
    try:
        from asyncpg.prepared_stmt import PreparedStatement
    except ImportError:
        return
    for name in _STATEMENT:
        original = getattr(PreparedStatement, name, None)
        if original is not None:
            setattr(PreparedStatement, name,
                    _traced_by(original, _statement_call(target_of, batch=name in _BATCH)))


def _patch_cursors(target_of: Callable[[Any], dbapi.Target]) -> None:
    """The round trips of asyncpg's cursors (``BaseCursor._bind``/``_bind_exec``/``_exec``,
    which every cursor API runs, so prefetched rows cost nothing; ``Cursor.forward``)."""
    try:
        from asyncpg.cursor import BaseCursor, Cursor
    except ImportError:
        return
    for name, operation in (("_bind", None), ("_bind_exec", None), ("_exec", "FETCH")):
        original = getattr(BaseCursor, name, None)
        if original is not None:
            setattr(BaseCursor, name,
                    _traced_by(original, _cursor_call(target_of, operation)))
    original = vars(Cursor).get("forward")
    if original is not None:
        Cursor.forward = _traced_by(original, _forward_call(target_of))


def _target(telemetry: dbapi.Telemetry, key: Any) -> dbapi.Target:
    address = port = database = None
    if key is not None:
        addr, database = key
        if isinstance(addr, tuple) and len(addr) >= 2:
            address, port = str(addr[0]), addr[1]
        elif addr:
            address = str(addr)  # a Unix socket path
    return dbapi.Target(telemetry, "postgresql", namespace=database, address=address,
                        port=port)


def _traced(original: Callable[..., Any], target_of: Callable[[Any], dbapi.Target],
            batch: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        target = target_of(self)
        telemetry = target.telemetry
        prepared = target.prepare(dbapi.statement_of(args, kwargs))
        if batch:
            return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                         args, kwargs, dbapi.batch_size(args, kwargs))
        return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                     args, kwargs, None, dbapi.rewrite_for(telemetry))

    return dbapi.mark_patched(method)


def _untraced(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (a coroutine method) with the statements it sends left untraced."""

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = _housekeeping.get()
        _housekeeping.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _housekeeping.set(outer)

    return method


# What a traced call is, from its object and arguments: (telemetry, operation, extra span
# attributes), or None to run it untraced (arguments asyncpg refuses before sending).
_Described = tuple[dbapi.Telemetry, dbapi.Prepared, dict[str, Any] | None]
_Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], _Described | None]


def _traced_by(original: Callable[..., Any], describe: _Describe,
               call: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """``original`` (a coroutine method) traced as ``describe`` says; ``call``: what runs
    instead of ``original`` once traced (``original`` itself by default).

    The one body of every wrapper here but ``_traced``: a prepared statement's, a
    cursor's, a COPY's, ``forward``'s and ``prepare``'s calls differ only in how they name
    their operation. ``_traced`` (``conn.fetch``/``execute``..., the per-request path)
    keeps its own body: going through ``describe`` would cost it one more Python call."""
    call = original if call is None else call

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        try:
            described = describe(self, args, kwargs)
        except Exception:
            described = None
        if described is None:
            return await original(self, *args, **kwargs)
        telemetry, prepared, extra = described
        return await dbapi.run_async(telemetry, prepared, functools.partial(call, self),
                                     args, kwargs, extra)

    return dbapi.mark_patched(method)


def _statement_call(target_of: Callable[[Any], dbapi.Target], batch: bool) -> _Describe:
    """A ``PreparedStatement`` call: its query (``fetchmany``/``executemany`` take the
    argument rows first, hence the batch size)."""

    def describe(stmt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = target_of(stmt._connection)
        extra = dbapi.batch_size((None, *args), kwargs) if batch else None
        return target.telemetry, target.prepare(stmt._query), extra

    return describe


def _cursor_call(target_of: Callable[[Any], dbapi.Target],
                 operation: str | None) -> _Describe:
    """A cursor's round trip: its query (the bind), a ``FETCH`` of it, or a ``MOVE``."""

    def describe(cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = target_of(cursor._connection)
        prepared = target.prepare(cursor._query)
        if operation == "FETCH":
            prepared = prepared.fetch()
        elif operation is not None:
            prepared = subclasses.as_operation(prepared, operation)
        return target.telemetry, prepared, None

    return describe


def _forward_call(target_of: Callable[[Any], dbapi.Target]) -> _Describe:
    """``Cursor.forward(n)``: a ``MOVE FORWARD n``, sent only for ``n > 0``."""
    move = _cursor_call(target_of, "MOVE")

    def describe(cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        n = args[0] if args else kwargs.get("n")
        return move(cursor, args, kwargs) if isinstance(n, int) and n > 0 else None

    return describe


def _prepare_call(target_of: Callable[[Any], dbapi.Target]) -> _Describe:
    """``Connection.prepare(query)``: a ``PREPARE`` of the query (its text and table)."""

    def describe(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        query = args[0] if args else kwargs.get("query")
        if not isinstance(query, str):
            return None
        target = target_of(connection)
        return target.telemetry, subclasses.as_operation(target.prepare(query), "PREPARE"), None

    return describe


def _copy_table_call(target_of: Callable[[Any], dbapi.Target]) -> _Describe:
    """``copy_*_table``: ``COPY {table}`` (``schema.table`` when given)."""

    def describe(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        table = args[0] if args else kwargs.get("table_name")
        if not isinstance(table, str):
            return None
        schema = kwargs.get("schema_name")
        target = target_of(connection)
        name = f"{schema}.{table}" if isinstance(schema, str) else table
        return target.telemetry, target.copy(name), None

    return describe


def _copy_query_call(target_of: Callable[[Any], dbapi.Target]) -> _Describe:
    """``copy_from_query``: a ``COPY`` with the program's query as its text."""

    def describe(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        query = args[0] if args else kwargs.get("query")
        if not isinstance(query, str):
            return None
        target = target_of(connection)
        text, _, collection = dbapi.parse(query, "postgresql")
        return target.telemetry, target.operation("COPY", collection, text), None

    return describe
