"""psycopg2: a CLIENT span and a ``db.client.operation.duration`` point per cursor
``execute``/``executemany``/``callproc`` (named, ``cursor_factory`` and extras cursors too).

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace`` (database),
``server.address``/``server.port`` (from libpq's connection info after connecting, so
service files and environment defaults are honoured and the password is never seen),
``db.query.text`` (``psycopg2.sql`` objects rendered only when they hold no ``Literal``),
``db.operation.name``, ``db.collection.name``, ``db.stored_procedure.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

psycopg2's C functions that take a connection or cursor type-check it, so
``register_type`` and ``quote_ident`` are wrapped to hand them the real object behind our
proxy: in ``psycopg2.extensions`` and in the psycopg2 modules that imported them by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wrapt

from . import dbapi


class _Cursor(dbapi.Execute, dbapi.ExecuteMany, dbapi.CallProc, dbapi.Next,
              dbapi.CursorProxy):
    pass


class _Connection(dbapi.ConnectionProxy):
    cursor_proxy = _Cursor


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


def _unwrapping(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
    return wrapped(*(dbapi.unwrap(a) for a in args),
                   **{k: dbapi.unwrap(v) for k, v in kwargs.items()})


def patch(module: Any, context: Any) -> None:
    telemetry = dbapi.telemetry_for(context)

    def make_proxy(connection: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        address, port, database = server(connection.info)
        target = dbapi.Target(telemetry, "postgresql", namespace=database, address=address,
                              port=port, render=renderer(connection))
        return _Connection(connection, target)

    dbapi.wrap_connect(module, "connect", make_proxy)
    import psycopg2.extensions

    replacements = {}
    for name in ("register_type", "quote_ident"):
        original = getattr(psycopg2.extensions, name, None)
        if original is not None:
            replacements[id(original)] = wrapt.FunctionWrapper(original, _unwrapping)
    rebind = _Rebind(replacements)
    for name in _TYPE_CHECKING_USERS:
        wrapt.register_post_import_hook(rebind, name)


# Modules that hold their own reference to the C functions (``from ... import name``).
_TYPE_CHECKING_USERS = ("psycopg2.extensions", "psycopg2.extras", "psycopg2._json",
                        "psycopg2._range", "psycopg2._ipaddress", "psycopg2.sql")


class _Rebind:
    """Points a module's names that refer to an original C function at its wrapper. A
    post-import hook: it must not raise (the program's import would fail)."""

    def __init__(self, replacements: dict[int, Any]) -> None:
        self._replacements = replacements

    def __call__(self, module: Any) -> None:
        try:
            for name, value in list(vars(module).items()):
                replacement = self._replacements.get(id(value))
                if replacement is not None:
                    setattr(module, name, replacement)
        except Exception:
            pass
