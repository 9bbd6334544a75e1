"""sqlite3 (stdlib): a CLIENT span and a ``db.client.operation.duration`` point per
``execute``/``executemany``/``executescript``, on cursors and on the connection shortcuts.

Attributes (see ``dbapi``): ``db.system.name=sqlite``, ``db.namespace`` (the database file
as passed to ``connect``, URI query stripped), ``db.query.text``, ``db.operation.name``,
``db.collection.name``, ``db.operation.batch.size``; ``error.type`` on failure.
Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

``sqlite3.connect`` is a C function, so the module attribute is wrapped (in ``sqlite3``
and ``sqlite3.dbapi2``, which each hold a reference). ``Connection.backup`` type-checks its
target in C, so the proxy unwraps it.
"""

from __future__ import annotations

import sys
from typing import Any

from . import dbapi


class _Cursor(dbapi.Execute, dbapi.ExecuteMany, dbapi.ExecuteScript, dbapi.Next,
              dbapi.CursorProxy):
    pass


class _Connection(dbapi.Execute, dbapi.ExecuteMany, dbapi.ExecuteScript,
                  dbapi.ConnectionProxy):
    cursor_proxy = _Cursor

    def backup(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__.backup(dbapi.unwrap(target), *args, **kwargs)


def _database(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    database = dbapi.text_or_none(args[0] if args else kwargs.get("database"))
    if database and database.startswith("file:"):
        database = database[5:].partition("?")[0]
    return database


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)

    def make_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        target = dbapi.Target(telemetry, "sqlite", namespace=_database(args, kwargs))
        return _Connection(connection, target)

    original = module.connect
    dbapi.wrap_connect(module, "connect", make_proxy)
    dbapi2 = sys.modules.get(f"{module.__name__}.dbapi2")
    if dbapi2 is not None and getattr(dbapi2, "connect", None) is original:
        dbapi2.connect = module.connect
