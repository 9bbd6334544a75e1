"""asyncpg: a CLIENT span and a ``db.client.operation.duration`` point per
``Connection.execute``/``executemany``/``fetch``/``fetchval``/``fetchrow``/``fetchmany``
(and so per ``Pool`` call, which delegates to a connection; a transaction's
BEGIN/COMMIT are real round trips and show as such).

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace``,
``server.address``/``server.port`` (the address asyncpg actually connected to),
``db.query.text``, ``db.operation.name``, ``db.collection.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

Prepared statements: each ``fetch``/``fetchval``/``fetchrow``/``fetchmany``/``executemany``
of what ``conn.prepare(query)`` returned is a span for its query (``explain`` runs through
``Connection.fetchval``, so it is one too); the prepare itself is not.

Cursors (``conn.cursor(query)``, ``stmt.cursor()``, always inside a transaction): the round
trip that binds the query (``await conn.cursor(...)``, or the first batch of ``async for``)
is a span for the query, and every later round trip that pulls rows (``Cursor.fetch``/
``fetchrow``, each next batch of ``prefetch`` rows in ``async for``) a ``FETCH
{db.collection.name}`` span and duration point with the query's text, for the server runs
the query as rows are pulled (see ``dbapi.Prepared.fetch``). Rows already prefetched cost
nothing. Not traced: ``Cursor.forward`` (a ``MOVE``) and the portal's close.

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
            setattr(cls, name, _traced_copy(getattr(cls, name), target_of))
    if hasattr(cls, "copy_from_query"):
        cls.copy_from_query = _traced_copy_query(cls.copy_from_query, target_of)
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
                    _traced_statement(original, target_of, batch=name in _BATCH))


def _patch_cursors(target_of: Callable[[Any], dbapi.Target]) -> None:
    """The round trips of asyncpg's cursors (``BaseCursor._bind``/``_bind_exec``/``_exec``,
    which every cursor API runs), so prefetched rows cost nothing."""
    try:
        from asyncpg.cursor import BaseCursor
    except ImportError:
        return
    for name, fetch in (("_bind", False), ("_bind_exec", False), ("_exec", True)):
        original = getattr(BaseCursor, name, None)
        if original is not None:
            setattr(BaseCursor, name, _traced_cursor(original, target_of, fetch))


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


def _traced_statement(original: Callable[..., Any], target_of: Callable[[Any], dbapi.Target],
                      batch: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self._connection)
            prepared = target.prepare(self._query)
        except Exception:
            return await original(self, *args, **kwargs)
        # PreparedStatement.fetchmany/executemany take the argument rows first.
        extra = dbapi.batch_size((None, *args), kwargs) if batch else None
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(original, self), args, kwargs, extra)

    return dbapi.mark_patched(method)


def _traced_cursor(original: Callable[..., Any], target_of: Callable[[Any], dbapi.Target],
                   fetch: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self._connection)
            prepared = target.prepare(self._query)
            if fetch:
                prepared = prepared.fetch()
        except Exception:
            return await original(self, *args, **kwargs)
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(original, self), args, kwargs)

    return dbapi.mark_patched(method)


def _traced_copy(original: Callable[..., Any],
                 target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        table = args[0] if args else kwargs.get("table_name")
        if suppressed() or _housekeeping.get() or not isinstance(table, str):
            return await original(self, *args, **kwargs)
        schema = kwargs.get("schema_name")
        try:
            target = target_of(self)
            prepared = target.copy(f"{schema}.{table}" if isinstance(schema, str) else table)
        except Exception:
            return await original(self, *args, **kwargs)
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(original, self), args, kwargs)

    return dbapi.mark_patched(method)


def _traced_copy_query(original: Callable[..., Any],
                       target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    # asyncpg quotes the arguments into the COPY with a ``SELECT quote_literal(...)`` of
    # its own: part of this operation, not one of the program's.
    quiet = _untraced(original)

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        query = args[0] if args else kwargs.get("query")
        if suppressed() or _housekeeping.get() or not isinstance(query, str):
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            text, _, collection = dbapi.parse(query, "postgresql")
            prepared = target.operation("COPY", collection, text)
        except Exception:
            return await original(self, *args, **kwargs)
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(quiet, self), args, kwargs)

    return dbapi.mark_patched(method)
