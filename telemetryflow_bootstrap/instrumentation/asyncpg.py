"""asyncpg: a CLIENT span and a ``db.client.operation.duration`` point per
``Connection.execute``/``executemany``/``fetch``/``fetchval``/``fetchrow``/``fetchmany``
(and so per ``Pool`` call, which delegates to a connection; a transaction's
BEGIN/COMMIT are real round trips and show as such).

Attributes (see ``dbapi``): ``db.system.name=postgresql``, ``db.namespace``,
``server.address``/``server.port`` (the address asyncpg actually connected to),
``db.query.text``, ``db.operation.name``, ``db.collection.name``,
``db.operation.batch.size``; on failure ``error.type`` and ``db.response.status_code``
(SQLSTATE). Environment: ``TELEMETRYFLOW_DB_COMMENTER``.

asyncpg is not DB-API and its pool hands out its own connection objects (a proxy would
fail its identity checks), so the ``Connection`` methods are patched at class level; the
per-server attributes are cached by (address, database) instead of per connection.
Prepared statements (``conn.prepare``) and cursors are not traced, nor are the statements
asyncpg sends on its own to reset a connection (``Connection.reset``, which a pool runs at
every release: ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;``, and
the ``ROLLBACK`` of a transaction left open). A pool's ``reset=`` callback is the program's
code: its statements are traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import dbapi
from ._http_common import suppressed

_SINGLE = ("execute", "fetch", "fetchval", "fetchrow")
_BATCH = ("executemany", "fetchmany")
_HOUSEKEEPING = ("reset", "_reset")  # asyncpg's own statements run inside these
_MAX_TARGETS = 64

# True inside asyncpg's housekeeping (per task: a ContextVar, not the OpenTelemetry
# suppression flag, which would also silence whatever else the task does meanwhile, e.g.
# the log record asyncpg writes about a transaction left open).
_housekeeping: ContextVar[bool] = ContextVar("telemetryflow_asyncpg_housekeeping",
                                             default=False)


def patch(module: Any, context: Any) -> None:
    import asyncpg.connection

    telemetry = dbapi.telemetry_for(context)
    targets: dict[Any, dbapi.Target] = {}

    def target_of(connection: Any) -> dbapi.Target:
        try:
            key = (connection._addr, connection._params.database)
        except AttributeError:
            key = None
        target = targets.get(key)
        if target is None:
            target = _target(telemetry, key)
            if len(targets) >= _MAX_TARGETS:
                targets.clear()
            targets[key] = target
        return target

    cls = asyncpg.connection.Connection
    if dbapi.is_patched(getattr(cls, "fetch", None)):
        return
    for name in _SINGLE:
        if hasattr(cls, name):
            setattr(cls, name, _traced(getattr(cls, name), target_of, batch=False))
    for name in _BATCH:
        if hasattr(cls, name):
            setattr(cls, name, _traced(getattr(cls, name), target_of, batch=True))
    for name in _HOUSEKEEPING:
        if hasattr(cls, name):
            setattr(cls, name, _untraced(getattr(cls, name)))


def _target(telemetry: dbapi.Telemetry, key: Any) -> dbapi.Target:
    address = port = database = None
    if key is not None:
        addr, database = key
        if isinstance(addr, tuple) and len(addr) >= 2:
            address, port = str(addr[0]), addr[1]
        elif addr:
            address = str(addr)  # a Unix socket path
    return dbapi.Target(telemetry, "postgresql", namespace=database, address=address,
                        port=port)


def _traced(original: Callable[..., Any], target_of: Callable[[Any], dbapi.Target],
            batch: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if suppressed() or _housekeeping.get():
            return await original(self, *args, **kwargs)
        target = target_of(self)
        telemetry = target.telemetry
        prepared = target.prepare(dbapi.statement_of(args, kwargs))
        if batch:
            return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                         args, kwargs, dbapi.batch_size(args, kwargs))
        return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                     args, kwargs, None, dbapi.rewrite_for(telemetry))

    return dbapi.mark_patched(method)


def _untraced(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (a coroutine method) with the statements it sends left untraced."""

    @functools.wraps(original)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        outer = _housekeeping.get()
        _housekeeping.set(True)
        try:
            return await original(self, *args, **kwargs)
        finally:
            _housekeeping.set(outer)

    return method
