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

``psycopg.connect`` is ``Connection.connect`` bound at import, and pools call
``connection_class.connect``: the module attribute and both classmethods
(``Connection.connect``, ``AsyncConnection.connect``) are wrapped. Not traced: ``stream()``,
and cursors built directly from a class (``psycopg.Cursor(conn)``).
"""

from __future__ import annotations

from typing import Any

from . import _db_proxies as proxies
from . import dbapi
from ._sql_composed import renderer
from .psycopg2 import server


class _Cursor(proxies.Execute, proxies.ExecuteMany, proxies.Copy, proxies.CursorProxy):
    pass


class _Connection(proxies.ConnectionExecute, proxies.ConnectionProxy):
    cursor_proxy = _Cursor


class _AsyncCursor(proxies.AsyncExecute, proxies.AsyncExecuteMany, proxies.Copy,
                   proxies.AsyncCursorProxy):
    pass


class _AsyncConnection(proxies.AsyncConnectionExecute, proxies.AsyncConnectionProxy):
    cursor_proxy = _AsyncCursor


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

    proxies.wrap_connect(module.Connection, "connect", sync_proxy)
    proxies.wrap_connect_async(module.AsyncConnection, "connect", async_proxy)
    if getattr(module, "connect", None) is not None:
        proxies.wrap_connect(module, "connect", sync_proxy)
