"""PyMySQL: a CLIENT span and a ``db.client.operation.duration`` point per cursor
``execute``/``executemany``/``callproc`` (any ``cursorclass``).

Attributes (see ``dbapi``): ``db.system.name`` (``mariadb`` when the server's handshake
says so, else ``mysql``), ``db.namespace`` (the selected database), ``server.address``/
``server.port`` (or the Unix socket path), ``db.query.text``, ``db.operation.name``,
``db.collection.name``, ``db.stored_procedure.name``, ``db.operation.batch.size``; on
failure ``error.type`` and ``db.response.status_code`` (the MySQL error number).
Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

``pymysql.connect`` is the Connection class itself: ``connect``/``Connect`` are wrapped,
``pymysql.Connection`` stays the class (``isinstance`` and subclassing keep working), so a
connection built by calling the class directly is not traced.
"""

from __future__ import annotations

from typing import Any

from . import _db_proxies as proxies
from . import dbapi


class _Cursor(proxies.Execute, proxies.ExecuteMany, proxies.CallProc, proxies.Next,
              proxies.CursorProxy):
    pass


class _Connection(proxies.ConnectionProxy):
    cursor_proxy = _Cursor


def mysql_system(connection: Any) -> str:
    """``mariadb`` or ``mysql``, from the version the server sent at connect time."""
    try:
        info = connection.get_server_info()
    except Exception:
        return "mysql"
    if isinstance(info, bytes):
        info = info.decode("latin-1")
    return "mariadb" if "mariadb" in str(info).lower() else "mysql"


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)

    def make_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        socket = dbapi.text_or_none(getattr(connection, "unix_socket", None))
        address = socket or dbapi.text_or_none(getattr(connection, "host", None))
        port = None if socket else getattr(connection, "port", None)
        target = dbapi.Target(telemetry, mysql_system(connection),
                              namespace=dbapi.text_or_none(getattr(connection, "db", None)),
                              address=address, port=port)
        return _Connection(connection, target)

    original = module.connect
    proxies.wrap_connect(module, "connect", make_proxy)
    if getattr(module, "Connect", None) is original:
        module.Connect = module.connect
