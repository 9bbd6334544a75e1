"""psycopg 3 (sync and asyncio): a CLIENT span and a ``db.client.operation.duration``
point per cursor ``execute``/``executemany`` (client-side, server-side and ``row_factory``
cursors alike) and per connection-level ``execute``, whose cursor comes back traced too.

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace``,
``server.address``/``server.port`` (from libpq's connection info, never the conninfo
string, so the password is never read), ``db.query.text`` (``psycopg.sql`` objects rendered
only when they hold no ``Literal``), ``db.operation.name``, ``db.collection.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

``cursor.copy(statement)`` (sync and async) is one span from entering its ``with`` block
to leaving it: the COPY is one operation, its data flows inside the block; a block that
raises ends the span with that exception's type.

``cursor.stream(statement)`` (sync and async) is one span from the first row asked for until
the rows run out or the loop leaves (see ``_db_proxies.Stream`` for why that long).

A server-side cursor (``conn.cursor(name=...)``): ``execute`` is the ``DECLARE`` span, and
every fetch that goes to the server (``fetchone``/``fetchmany``/``fetchall``, and each page
of ``itersize`` rows that iteration pulls) is a ``FETCH {db.collection.name}`` span and a
duration point with the declared statement's query text, for PostgreSQL runs the query
during the fetches. psycopg's own fetch routine (``ServerCursorMixin._fetch_gen``, which
every fetch path and version runs) is wrapped at class level and traces only the server
cursors our connections handed out; client-side cursors' fetches read memory and are left
alone.

``psycopg.connect`` is ``Connection.connect`` bound at import, and pools call
``connection_class.connect``: the module attribute and both classmethods
(``Connection.connect``, ``AsyncConnection.connect``) are wrapped, so ``psycopg_pool``'s
connections are traced too.

A server cursor's ``scroll()`` is a ``MOVE {db.collection.name}`` span and duration point
with the declared statement's text, traced the same way (``_scroll_gen``): the server
computes the rows a ``MOVE`` skips. A client-side cursor's ``scroll()`` moves in memory and
is left alone. Not traced: a server cursor's ``close()`` (a ``CLOSE``, no query work; see
``_db_subclasses.NamedScroll``), and cursors built directly from a class
(``psycopg.Cursor(conn)``).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Generator
from typing import Any

from . import _db_proxies as proxies
from . import _db_subclasses as subclasses
from . import dbapi
from ._http_common import suppressed
from ._sql_composed import renderer
from .psycopg2 import server

# A server cursor our connection handed out -> (telemetry, the Prepared of its fetches).
# Weak: the entry goes with the cursor; psycopg's cursors take weak references.
_fetches: weakref.WeakKeyDictionary[Any, tuple[dbapi.Telemetry, dbapi.Prepared]] = (
    weakref.WeakKeyDictionary())


def _remember(cursor: Any, target: dbapi.Target, statement: Any) -> None:
    """Note what ``cursor``'s fetches pull: ``statement``'s rows, or (None: no statement
    seen yet, a cursor opened in SQL or a function's refcursor) a generic FETCH."""
    try:
        prepared = target.fetch() if statement is None else target.prepare(statement).fetch()
        _fetches[cursor] = (target.telemetry, prepared)
    except Exception:
        pass  # a cursor class that takes no weak reference: its fetches stay untraced


class _Cursor(proxies.Execute, proxies.ExecuteMany, proxies.Copy, proxies.Stream,
              proxies.CursorProxy):
    pass


class _ServerExecute:
    """A server cursor's ``execute`` (the ``DECLARE`` span), noting its statement first
    for the fetches that run it."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        _remember(self.__wrapped__, self._self_target,  # type: ignore[attr-defined]
                  dbapi.statement_of(args, kwargs))
        return super().execute(*args, **kwargs)  # type: ignore[misc]


class _ServerCursor(_ServerExecute, _Cursor):
    pass


class _AsyncCursor(proxies.AsyncExecute, proxies.AsyncExecuteMany, proxies.Copy,
                   proxies.AsyncStream, proxies.AsyncCursorProxy):
    pass


class _AsyncServerCursor(_ServerExecute, _AsyncCursor):
    pass


class _ServerCursors:
    """``connection.cursor(name)``: a server cursor gets its own proxy class, and is noted
    so that fetching from it before any ``execute`` (stealing a cursor) is traced too."""

    server_cursor_proxy: type[proxies.CursorProxy]

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        if not (args[0] if args else kwargs.get("name")):
            return super().cursor(*args, **kwargs)  # type: ignore[misc]
        real = self.__wrapped__.cursor(*args, **kwargs)  # type: ignore[attr-defined]
        target = self._self_target  # type: ignore[attr-defined]
        _remember(real, target, None)
        return self.server_cursor_proxy(real, target, self)


class _Connection(_ServerCursors, proxies.ConnectionExecute, proxies.ConnectionProxy):
    cursor_proxy = _Cursor
    server_cursor_proxy = _ServerCursor


class _AsyncConnection(_ServerCursors, proxies.AsyncConnectionExecute,
                       proxies.AsyncConnectionProxy):
    cursor_proxy = _AsyncCursor
    server_cursor_proxy = _AsyncServerCursor


# The server cursors' round-trip routines traced, and the operation each is (None: the
# FETCH itself).
_ROUND_TRIPS = (("_fetch_gen", None), ("_scroll_gen", "MOVE"))
_SCROLL_MODES = ("relative", "absolute")


def _trace_round_trips(module: Any) -> None:
    """Wrap the fetch and scroll routines the sync and async server cursors share (once)."""
    for name in ("ServerCursor", "AsyncServerCursor"):
        mro = getattr(getattr(module, name, None), "__mro__", ())
        for routine, operation in _ROUND_TRIPS:
            owner = next((k for k in mro if routine in vars(k)), None)
            if owner is None:
                continue  # a psycopg without it: that round trip stays untraced
            original = vars(owner)[routine]
            if callable(original) and not dbapi.is_patched(original):
                setattr(owner, routine, _traced_round_trip(original, operation))


def _traced_round_trip(original: Callable[..., Any],
                       operation: str | None) -> Callable[..., Any]:
    @functools.wraps(original)
    def routine(self: Any, *args: Any, **kwargs: Any) -> Any:
        steps = original(self, *args, **kwargs)
        try:
            found = _fetches.get(self)
        except TypeError:
            return steps
        if found is None or suppressed():
            return steps
        telemetry, prepared = found
        if operation is not None:
            if not _sends(args, kwargs):
                return steps  # psycopg refuses the mode at the first step: nothing sent
            prepared = subclasses.as_operation(prepared, operation)
        return _fetched(steps, telemetry, prepared)

    return dbapi.mark_patched(routine)


def _sends(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``_scroll_gen(value, mode)`` sends its ``MOVE`` (psycopg checks the mode
    first)."""
    mode = args[1] if len(args) > 1 else kwargs.get("mode", "relative")
    return mode in _SCROLL_MODES


def _fetched(steps: Generator[Any, Any, Any], telemetry: dbapi.Telemetry,
             prepared: dbapi.Prepared) -> Generator[Any, Any, Any]:
    """psycopg's sans-I/O fetch (or scroll) generator, traced from its first step (the
    FETCH or MOVE is sent) to its return (the server has answered): the connection's
    ``wait`` drives it as before."""
    span = dbapi.Span(telemetry, prepared)
    try:
        rows = yield from steps
    except BaseException as exc:
        span.end(exc)
        raise
    span.end()
    return rows


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)

    def target(connection: Any) -> dbapi.Target:
        address, port, database = server(connection.info)
        return dbapi.Target(telemetry, "postgresql", namespace=database, address=address,
                            port=port, render=renderer(connection))

    def sync_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _Connection(connection, target(connection))

    def async_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _AsyncConnection(connection, target(connection))

    _trace_round_trips(module)
    proxies.wrap_connect(module.Connection, "connect", sync_proxy)
    proxies.wrap_connect_async(module.AsyncConnection, "connect", async_proxy)
    if getattr(module, "connect", None) is not None:
        proxies.wrap_connect(module, "connect", sync_proxy)
