"""psycopg2: a CLIENT span and a ``db.client.operation.duration`` point per cursor
``execute``/``executemany``/``callproc`` (named, ``cursor_factory`` and extras cursors too),
per ``copy_expert``/``copy_from``/``copy_to`` (``COPY {table}``; ``db.query.text`` only for
``copy_expert``, whose statement the program wrote), and one per
``psycopg2.extras.execute_values``/``execute_batch`` call (see psycopg2_extras).

Named (server-side) cursors, ``conn.cursor(name)``: ``execute`` is the ``DECLARE`` span,
and every fetch that goes to the server (``fetchone``/``fetchmany``/``fetchall``, and each
page of ``itersize`` rows that iteration pulls) is a ``FETCH {db.collection.name}`` span and
duration point with the declared statement's query text: PostgreSQL runs the query during
the fetches (see ``dbapi.Prepared.fetch``). A fetch from a cursor declared in SQL is a
plain ``FETCH``. ``scroll()`` is a ``MOVE {db.collection.name}`` span and duration point
with the same query text: the server computes the rows it skips. Client-side cursors'
fetches and ``scroll()`` work in memory: their class keeps psycopg2's own C methods. Not
traced: a named cursor's ``close()`` (a ``CLOSE``, no query work; see
``_db_subclasses.NamedScroll``).

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace`` (database),
``server.address``/``server.port`` (from libpq's connection info after connecting, so
service files and environment defaults are honoured and the password is never seen),
``db.query.text`` (``psycopg2.sql`` objects rendered only when they hold no ``Literal``),
``db.operation.name``, ``db.collection.name``, ``db.stored_procedure.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

Connections are instances of a traced subclass of the ``connection_factory`` the program
passes (or of ``psycopg2.extensions.connection``), and their cursors of a traced subclass of
the cursor class the driver would have used (``cursor_factory``, the connection's
``cursor_factory``, a connection class's own choice as in ``LoggingConnection``): psycopg2's
C functions type-check the connection (``sql.Literal.as_string``, adapters' ``prepare``,
``extensions.cursor(conn)``), so a proxy cannot stand in for it (see ``_db_subclasses``).
Not traced: cursors built from a class directly (``psycopg2.extensions.cursor(conn)``),
factories that are functions rather than classes, and asynchronous connections
(``connect(async_=True)``): their ``execute`` only sends the statement, so a span around it
would end before the query ran and miss its failure; aiopg, which drives them, is traced by
its own patch (``aiopg``), around the awaited call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from . import _db_subclasses as subclasses
from . import dbapi, psycopg2_extras


def has_literal(composable: Any) -> bool:
    """True when a ``sql`` composition inlines a value (``sql.Literal``): rendering it would
    put a value into ``db.query.text``."""
    if type(composable).__name__ == "Literal":
        return True
    parts = getattr(composable, "seq", None)
    return isinstance(parts, (list, tuple)) and any(has_literal(p) for p in parts)


def renderer(connection: Any) -> Callable[[Any], str | None]:
    """Renders ``sql`` compositions against the real connection, literals excluded."""

    def render(statement: Any) -> str | None:
        if not hasattr(statement, "as_string") or has_literal(statement):
            return None
        text = statement.as_string(connection)
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else text

    return render


def server(info: Any) -> tuple[str | None, int | None, str | None]:
    """(address, port, database) from a libpq ConnectionInfo (psycopg2 and psycopg)."""
    host = dbapi.text_or_none(getattr(info, "host", None))
    port = getattr(info, "port", None)
    database = dbapi.text_or_none(getattr(info, "dbname", None))
    if host and host.startswith("/"):
        port = None  # a Unix socket directory: the port only names the socket file
    try:
        port = int(port) if port else None
    except (TypeError, ValueError):
        port = None
    return host, port, database


def patch(module: Any, context: Any) -> None:
    import psycopg2.extensions as extensions

    telemetry = dbapi.telemetry_for(context)
    original = module.connect
    if dbapi.is_patched(original):
        return
    cursors = subclasses.Derived(extensions.cursor, (
        subclasses.Execute, subclasses.ExecuteMany, subclasses.CallProc,
        subclasses.CopyExpert, subclasses.CopyTable))
    named_cursors = subclasses.Derived(extensions.cursor, (
        subclasses.NamedExecute, subclasses.named_fetch(extensions.cursor),
        subclasses.NamedScroll, subclasses.ExecuteMany, subclasses.CallProc,
        subclasses.CopyExpert, subclasses.CopyTable),
        (subclasses.FETCH,))

    class CursorFactory:
        """``connection.cursor()``, building a traced subclass of the class psycopg2 would
        use (below the program's connection class, so its choice is known); a named
        (server-side) cursor's class also traces its fetches."""

        __slots__ = ()

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            chosen = subclasses.chosen(args, kwargs, 1, "cursor_factory", None)
            named = subclasses.chosen(args, kwargs, 0, "name", None) is not None
            derive = named_cursors if named else cursors
            derived = derive(chosen or self.cursor_factory or extensions.cursor)  # type: ignore[attr-defined]
            if derived is not None:
                args, kwargs = subclasses.replaced(args, kwargs, 1, "cursor_factory", derived)
            return super().cursor(*args, **kwargs)  # type: ignore[misc]

    connections = subclasses.Derived(extensions.connection, (CursorFactory,),
                                     (subclasses.TARGET,))

    def target(connection: Any) -> dbapi.Target:
        address, port, database = server(connection.info)
        return dbapi.Target(telemetry, "postgresql", namespace=database, address=address,
                            port=port, render=renderer(connection))

    @functools.wraps(original)
    def connect(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("async_") or kwargs.get("async"):
            return original(*args, **kwargs)  # asynchronous: see the module docstring
        chosen = subclasses.chosen(args, kwargs, 1, "connection_factory", None)
        derived = connections(chosen or extensions.connection)
        if derived is not None:
            args, kwargs = subclasses.replaced(args, kwargs, 1, "connection_factory", derived)
        connection = original(*args, **kwargs)
        return subclasses.adopt(connection, derived, lambda: target(connection))

    module.connect = dbapi.mark_patched(connect)
    psycopg2_extras.arm()
