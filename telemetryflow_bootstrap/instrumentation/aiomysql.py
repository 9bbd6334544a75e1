"""aiomysql: a CLIENT span and a ``db.client.operation.duration`` point per cursor
``execute``/``executemany``/``callproc`` (any cursor class, ``DictCursor``, ``SSCursor``
and the program's own subclasses; connections from ``aiomysql.connect``, ``create_pool``
and SQLAlchemy's ``mysql+aiomysql`` engine alike). Each span lasts until the awaited call
has the server's answer (the result set read, for a buffered cursor).

Attributes (see ``dbapi``): ``db.system.name`` (``mariadb`` when the server's handshake
says so, else ``mysql``), ``db.namespace`` (the database named at connect time),
``server.address``/``server.port`` (or the Unix socket path), ``db.query.text``,
``db.operation.name``, ``db.collection.name``, ``db.stored_procedure.name``,
``db.operation.batch.size``; on failure ``error.type`` (``pymysql.err.ProgrammingError``;
an awaiting task cancelled mid-query: ``asyncio.exceptions.CancelledError``) and
``db.response.status_code`` (the MySQL error number). Environment:
``TELEMETRYFLOW_DB_COMMENTER``.

``executemany`` is one span, whether aiomysql folds an INSERT's rows into multi-row
statements or runs the statement once per row (its inner ``execute`` calls are part of
that span, not spans of their own).

Unbuffered cursors (``SSCursor``, ``SSDictCursor``): ``execute`` ends when the result's
header arrives, and the server then produces the rows as they are read, so reading them is
a ``FETCH {db.collection.name}`` span with the statement's query text, from the first row
asked for (``fetchone``/``fetchmany``/``fetchall``/``scroll``/``async for``) until the rows
run out, the cursor is closed (aiomysql then reads and drops the rest) or executes again;
the program's work between rows is inside it, as in psycopg's ``stream()`` (the connection
is held for all of it). Buffered cursors' fetches read memory and are not traced.

aiomysql hands out its own ``Connection`` objects (its pool checks them by identity and
calls their internals), so the ``Cursor`` and ``SSCursor`` methods are patched at class
level; a connection's attributes are computed once, at its first statement, and kept on
it. Not traced: what aiomysql sends on its own (``autocommit``, ``init_command``, the
``SHOW WARNINGS`` after a statement with warnings, ``Connection.begin``/``commit``/
``rollback``/``ping``, which are not statements of a cursor).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import dbapi
from ._http_common import suppressed
from .pymysql import mysql_system

_TARGET = "_telemetryflow_target"  # a connection's dbapi.Target, once computed
_FETCH = "_telemetryflow_fetch"  # an unbuffered cursor's: (Telemetry, Prepared) of its rows
_ROWS = "_telemetryflow_rows"  # an unbuffered cursor's: the dbapi.Span of the rows read

# True inside a traced executemany (per task): aiomysql runs it as calls of ``execute``.
_batch: ContextVar[bool] = ContextVar("telemetryflow_aiomysql_batch", default=False)


def patch(module: Any, context: Any) -> None:
    from aiomysql.cursors import Cursor, SSCursor

    if dbapi.is_patched(vars(Cursor).get("execute")):
        return
    telemetry = dbapi.telemetry_for(context)

    def target_of(cursor: Any) -> dbapi.Target:
        connection = cursor._connection
        target = getattr(connection, _TARGET, None)
        if target is None:
            if connection is None:
                raise LookupError("closed cursor")  # aiomysql refuses the call: untraced
            target = _target(telemetry, connection)
            # A connection class with slots: computed again next time.
            with contextlib.suppress(Exception):
                setattr(connection, _TARGET, target)
        return target

    Cursor.execute = _execute(Cursor.execute, target_of)
    Cursor.executemany = _executemany(Cursor.executemany, target_of)
    Cursor.callproc = _callproc(Cursor.callproc, target_of)
    # Read per call through the instance: which cursors have rows to follow.
    Cursor._telemetryflow_unbuffered = False
    SSCursor._telemetryflow_unbuffered = True
    SSCursor._read_next = _read_next(SSCursor._read_next)
    SSCursor.close = _close(SSCursor.close)


def _target(telemetry: dbapi.Telemetry, connection: Any) -> dbapi.Target:
    socket = dbapi.text_or_none(getattr(connection, "unix_socket", None))
    address = socket or dbapi.text_or_none(getattr(connection, "host", None))
    port = None if socket else getattr(connection, "port", None)
    return dbapi.Target(telemetry, mysql_system(connection),
                        namespace=dbapi.text_or_none(getattr(connection, "db", None)),
                        address=address, port=port)


def _end_rows(cursor: Any, exc: BaseException | None = None) -> None:
    """End the ``FETCH`` span of ``cursor``'s unbuffered rows, if one is open."""
    span = cursor.__dict__.pop(_ROWS, None)
    if span is not None:
        span.end(exc)


def _execute(original: Callable[..., Any],
             target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _batch.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            prepared = target.prepare(dbapi.statement_of(args, kwargs))
            unbuffered = self._telemetryflow_unbuffered
            if unbuffered:
                _end_rows(self)  # the program moved on: what it read of them is done
                self.__dict__[_FETCH] = None
        except Exception:
            return await original(self, *args, **kwargs)
        telemetry = target.telemetry
        result = await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                       args, kwargs, None, dbapi.rewrite_for(telemetry))
        if unbuffered:  # its rows are there to read (not after a failure)
            self.__dict__[_FETCH] = (telemetry, prepared.fetch())
        return result

    return dbapi.mark_patched(execute)


def _executemany(original: Callable[..., Any],
                 target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def executemany(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _batch.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            prepared = target.prepare(dbapi.statement_of(args, kwargs))
            extra = dbapi.batch_size(args, kwargs)
            if self._telemetryflow_unbuffered:
                _end_rows(self)
                self.__dict__[_FETCH] = None  # rows of the last of many: not followed
        except Exception:
            return await original(self, *args, **kwargs)
        token = _batch.set(True)
        try:
            return await dbapi.run_async(target.telemetry, prepared,
                                         functools.partial(original, self), args, kwargs,
                                         extra)
        finally:
            _batch.reset(token)

    return dbapi.mark_patched(executemany)


def _callproc(original: Callable[..., Any],
              target_of: Callable[[Any], dbapi.Target]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def callproc(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _batch.get():
            return await original(self, *args, **kwargs)
        try:
            target = target_of(self)
            prepared = target.procedure(dbapi.procedure_of(args, kwargs))
            if self._telemetryflow_unbuffered:
                _end_rows(self)
                self.__dict__[_FETCH] = None
        except Exception:
            return await original(self, *args, **kwargs)
        return await dbapi.run_async(target.telemetry, prepared,
                                     functools.partial(original, self), args, kwargs)

    return dbapi.mark_patched(callproc)


def _read_next(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SSCursor._read_next``, the one routine every unbuffered fetch path reads a row
    with: opens the rows' ``FETCH`` span at the first row, ends it at the end of them."""

    @functools.wraps(original)
    async def read_next(self: Any) -> Any:
        state = self.__dict__
        if _ROWS not in state:
            fetch = state.get(_FETCH)
            if fetch is None or suppressed():
                return await original(self)
            # One span per result: a read after the end (a last fetchone() answering None
            # again) must not open another.
            state[_FETCH] = None
            state[_ROWS] = dbapi.Span(*fetch)
        try:
            row = await original(self)
        except BaseException as exc:
            _end_rows(self, exc)
            raise
        if row is None:
            _end_rows(self)
        return row

    return dbapi.mark_patched(read_next)


def _close(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SSCursor.close``: aiomysql reads the rows left before closing; the rows' span
    ends once that is done."""

    @functools.wraps(original)
    async def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _end_rows(self, exc)
            raise
        _end_rows(self)
        return result

    return dbapi.mark_patched(close)
