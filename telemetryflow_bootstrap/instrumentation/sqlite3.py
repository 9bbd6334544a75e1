"""sqlite3 (stdlib): a CLIENT span and a ``db.client.operation.duration`` point per
``execute``/``executemany``/``executescript``, on cursors and on the connection shortcuts.

Attributes (see ``dbapi``): ``db.system.name=sqlite``, ``db.namespace`` (the database file
as passed to ``connect``, URI query stripped), ``db.query.text``, ``db.operation.name``,
``db.collection.name``, ``db.operation.batch.size``; ``error.type`` on failure.
Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

``sqlite3.connect`` is a C function, so the module attribute is replaced (in ``sqlite3``
and ``sqlite3.dbapi2``, which each hold a reference). It builds the connection from a traced
subclass of ``factory`` (``sqlite3.Connection`` by default), whose ``cursor()`` builds a
traced subclass of the cursor class asked for: sqlite3's C code type-checks both
(``sqlite3.Cursor(conn)``, ``Connection.backup``), see ``_db_subclasses``. The connection
shortcuts (``conn.execute`` and co.) run on a traced cursor, which they return, so reusing
it is traced too; they build it as the running Python does (3.11+: the default cursor
class; 3.10: ``self.cursor()``, then the cursor's method by name). Not traced: cursors
built from the class directly (``sqlite3.Cursor(conn)``), and factories that are functions.
``Connection.iterdump()`` runs its queries through a cursor of the connection: they are
traced.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from . import _db_subclasses as subclasses
from . import dbapi

# Python 3.10's C shortcuts call ``self.cursor()`` and the cursor's method by name; 3.11+
# use a cursor of the default class and run the statement internally.
_SHORTCUTS_CALL_CURSOR = sys.version_info < (3, 11)
_ABSENT = object()


def _database(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    database = dbapi.text_or_none(args[0] if args else kwargs.get("database"))
    if database and database.startswith("file:"):
        database = database[5:].partition("?")[0]
    return database


def _shortcut(native: Any, most: int, new_cursor: Callable[[Any], Any]) -> Any:
    """A connection shortcut (``native``: the driver's, taking 1 to ``most`` positional
    arguments, the statement first) run on ``new_cursor(connection)``, which it returns. A
    call the driver would refuse goes to ``native``, so the refusal is the driver's, in its
    order (a bad argument is reported before a closed database)."""
    name = native.__name__

    def shortcut(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs or not 0 < len(args) <= most or not isinstance(args[0], str):
            return native(self, *args, **kwargs)
        cursor = new_cursor(self)
        getattr(cursor, name)(*args)
        return cursor

    shortcut.__name__ = name
    shortcut.__qualname__ = native.__qualname__
    shortcut.__doc__ = native.__doc__
    return shortcut


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)
    original = module.connect
    if dbapi.is_patched(original):
        return
    cursors = subclasses.Derived(module.Cursor, (
        subclasses.Execute, subclasses.ExecuteMany, subclasses.ExecuteScript))
    default_cursor = cursors(module.Cursor) or module.Cursor
    if _SHORTCUTS_CALL_CURSOR:
        def new_cursor(connection: Any) -> Any:
            return connection.cursor()
    else:
        def new_cursor(connection: Any) -> Any:
            return module.Connection.cursor(connection, default_cursor)

    class CursorFactory:
        """``connection.cursor(factory)``, building a traced subclass of ``factory``; and
        the shortcuts."""

        __slots__ = ()
        execute = _shortcut(module.Connection.execute, 2, new_cursor)
        executemany = _shortcut(module.Connection.executemany, 2, new_cursor)
        executescript = _shortcut(module.Connection.executescript, 1, new_cursor)

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            chosen = subclasses.chosen(args, kwargs, 0, "factory", module.Cursor)
            derived = cursors(chosen)
            if derived is not None:
                args, kwargs = subclasses.replaced(args, kwargs, 0, "factory", derived)
            return super().cursor(*args, **kwargs)

    connections = subclasses.Derived(module.Connection, (CursorFactory,),
                                     (subclasses.TARGET,))

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        chosen = subclasses.chosen(args, kwargs, 5, "factory", _ABSENT)
        derived = connections(module.Connection if chosen is _ABSENT else chosen)
        if derived is not None:
            args, kwargs = subclasses.replaced(args, kwargs, 5, "factory", derived)
        connection = original(*args, **kwargs)
        return subclasses.adopt(connection, derived, lambda: dbapi.Target(
            telemetry, "sqlite", namespace=_database(args, kwargs)))

    module.connect = dbapi.mark_patched(connect)
    dbapi2 = sys.modules.get(f"{module.__name__}.dbapi2")
    if dbapi2 is not None and getattr(dbapi2, "connect", None) is original:
        dbapi2.connect = module.connect
