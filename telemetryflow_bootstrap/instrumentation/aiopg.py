"""aiopg: a CLIENT span and a ``db.client.operation.duration`` point per cursor
``execute``/``callproc`` (connections from ``aiopg.connect``, ``create_pool`` and
``aiopg.sa`` alike; ``cursor.begin()`` transactions' BEGIN/COMMIT are real round trips and
show as such). Each span lasts until the awaited call has the server's answer.

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace``,
``server.address``/``server.port`` (from libpq's connection info, never the DSN, so the
password is never read), ``db.query.text`` (``psycopg2.sql`` objects rendered only when
they hold no ``Literal``), ``db.operation.name``, ``db.collection.name``,
``db.stored_procedure.name``; on failure ``error.type`` (``psycopg2.errors.UndefinedTable``;
a cancelled await, or a statement the server cancelled, which aiopg raises as one:
``asyncio.exceptions.CancelledError``; aiopg's own ``timeout``: ``TimeoutError``) and
``db.response.status_code`` (SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

Why here and not in the psycopg2 patch: aiopg runs psycopg2's asynchronous connections,
whose ``cursor.execute`` only sends the statement and returns; the answer (rows or error)
arrives later, while aiopg polls. A span around psycopg2's call would end before the
query ran and never see its failure, so the psycopg2 patch leaves asynchronous connections
alone and this one traces aiopg's awaited ``Cursor`` methods, patched at class level.

Not traced: fetches and ``async for`` (psycopg2's asynchronous connections have no
server-side cursors: the rows are in memory once ``execute`` returns), the ``hstore`` type
lookup aiopg runs on every new connection (its own statement, not the program's), and
``executemany``, which aiopg refuses without sending anything.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import dbapi
from ._http_common import suppressed
from ._sql_composed import renderer
from .psycopg2 import server

_TARGET = "_telemetryflow_target"  # an aiopg Connection's dbapi.Target, once computed

# True inside aiopg's own statements (per task; see asyncpg's ``_housekeeping``).
_housekeeping: ContextVar[bool] = ContextVar("telemetryflow_aiopg_housekeeping",
                                             default=False)


def patch(module: Any, context: Any) -> None:
    from aiopg.connection import Connection, Cursor

    if dbapi.is_patched(vars(Cursor).get("execute")):
        return
    telemetry = dbapi.telemetry_for(context)

    def target_of(cursor: Any) -> dbapi.Target:
        connection = cursor._conn
        target = getattr(connection, _TARGET, None)
        if target is None:
            raw = connection._conn
            address, port, database = server(raw.info)
            target = dbapi.Target(telemetry, "postgresql", namespace=database,
                                  address=address, port=port, render=renderer(raw))
            # A connection class with slots: computed again next time.
            with contextlib.suppress(Exception):
                setattr(connection, _TARGET, target)
        return target

    Cursor.execute = _execute(Cursor.execute, target_of)
    Cursor.callproc = _callproc(Cursor.callproc, target_of)
    if "_get_oids" in vars(Connection):
        Connection._get_oids = _untraced(Connection._get_oids)


def _execute(original: Callable[..., Any],
             target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            prepared = target.prepare(dbapi.statement_of(args, kwargs))
        except Exception:
            return await original(self, *args, **kwargs)
        telemetry = target.telemetry
        return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                     args, kwargs, None, dbapi.rewrite_for(telemetry))

    return dbapi.mark_patched(execute)


def _callproc(original: Callable[..., Any],
              target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def callproc(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            prepared = target.procedure(dbapi.procedure_of(args, kwargs))
        except Exception:
            return await original(self, *args, **kwargs)
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(original, self), args, kwargs)

    return dbapi.mark_patched(callproc)


def _untraced(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (a coroutine method) with the statements it sends left untraced."""

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _housekeeping.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _housekeeping.reset(token)

    return method
