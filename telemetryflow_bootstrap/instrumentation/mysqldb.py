"""mysqlclient (``MySQLdb``): a CLIENT span and a ``db.client.operation.duration`` point
per cursor ``execute``/``executemany``/``callproc`` (any ``cursorclass``).

Attributes (see ``dbapi``): ``db.system.name`` (``mariadb`` when the server says so, else
``mysql``), ``db.namespace``, ``server.address``/``server.port`` (or the Unix socket path)
read from the ``connect`` arguments (the password argument is never read),
``db.query.text``, ``db.operation.name``, ``db.collection.name``,
``db.stored_procedure.name``, ``db.operation.batch.size``; on failure ``error.type`` and
``db.response.status_code`` (the MySQL error number). Environment:
``TELEMETRYFLOW_DB_COMMENTER``.

``MySQLdb.connect``, ``Connect`` and ``Connection`` are one function; all three names are
wrapped. ``MySQLdb.connections.Connection`` (the class) is left alone.
"""

from __future__ import annotations

from typing import Any

from . import _db_proxies as proxies
from . import dbapi
from .pymysql import mysql_system


class _Cursor(proxies.Execute, proxies.ExecuteMany, proxies.CallProc, proxies.Next,
              proxies.CursorProxy):
    pass


class _Connection(proxies.ConnectionProxy):
    cursor_proxy = _Cursor


# MySQLdb.connect's positional order (host, user, passwd, db, port, unix_socket, ...):
# only the positions we read are named, so the password is never touched.
_HOST, _DB, _PORT, _SOCKET = 0, 3, 4, 5


def server(args: tuple[Any, ...], kwargs: dict[str, Any]
           ) -> tuple[str | None, int | None, str | None]:
    """(address, port, database) from ``connect``'s arguments, with libmysql's defaults."""

    def arg(position: int, *names: str) -> Any:
        if len(args) > position:
            return args[position]
        for name in names:
            if kwargs.get(name) is not None:
                return kwargs[name]
        return None

    socket = dbapi.text_or_none(arg(_SOCKET, "unix_socket"))
    host = dbapi.text_or_none(arg(_HOST, "host")) or "localhost"
    database = dbapi.text_or_none(arg(_DB, "database", "db"))
    if socket or (host == "localhost" and arg(_PORT, "port") is None):
        return socket or host, None, database
    try:
        port = int(arg(_PORT, "port") or 3306)
    except (TypeError, ValueError):
        port = None
    return host, port, database


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)

    def make_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        address, port, database = server(args, kwargs)
        target = dbapi.Target(telemetry, mysql_system(connection), namespace=database,
                              address=address, port=port)
        return _Connection(connection, target)

    original = module.connect
    proxies.wrap_connect(module, "connect", make_proxy)
    for alias in ("Connect", "Connection"):
        if getattr(module, alias, None) is original:
            setattr(module, alias, module.connect)
