"""mysql-connector-python (``mysql.connector``): a CLIENT span and a
``db.client.operation.duration`` point per cursor ``execute``/``executemany``/``callproc``,
for the C extension's cursors (``CMySQLCursor*``, what ``mysql.connector.connect()`` gives
when ``_mysql_connector`` loads), the pure-Python ones (``use_pure=True``,
``MySQLCursor*``), prepared cursors (``cursor(prepared=True)``), dictionary, raw and
buffered cursors, and the asyncio API (``mysql.connector.aio``, when the installed version
has it), whichever way the connection was made: ``connect()``, the connection classes
called directly, ``mysql.connector.pooling`` (pools and ``connect(pool_name=...)``),
option files, failover.

Attributes (see ``dbapi``): ``db.system.name`` (``mariadb`` when the server's handshake
says so, else ``mysql``), ``db.namespace`` (the database named at connect time),
``server.address``/``server.port`` (or the Unix socket path), ``db.query.text``,
``db.operation.name``, ``db.collection.name``, ``db.stored_procedure.name``,
``db.operation.batch.size``; on failure ``error.type``
(``mysql.connector.errors.ProgrammingError``) and ``db.response.status_code`` (the MySQL
error number). The password is never read. Environment: ``TELEMETRYFLOW_DB_COMMENTER``
(not applied to prepared cursors: the comment would be prepared with the statement, and
a new text per call would make the driver prepare it again each time).

Why patched at class level (as aiomysql) and not with proxies (as PyMySQL): the pool
checks its connections with ``isinstance`` and hands out its own ``PooledMySQLConnection``
around them, and the documentation builds connections by calling ``MySQLConnection`` or
``CMySQLConnection`` directly; patching the cursor classes' methods covers every way in.
A connection's attributes are computed once, at its first statement, and kept on it.

The driver runs ``executemany`` and ``callproc`` as calls of ``execute`` on the same cursor
(and ``executemulti`` as one ``execute``), reads ``get_warnings`` with a ``SHOW WARNINGS``
and connection properties (``autocommit``, ``database``, the ``sql_mode`` that parameter
escaping needs once per connection) with ``SELECT @@...`` on cursors of its own: while one
of those runs (``_inner``, per thread and per task) the inner statements are part of it,
not spans of their own. Not traced, as for the other drivers: ``commit``/``rollback``/
``start_transaction`` and the connection's ``cmd_*`` methods, which are not statements of
a cursor. 8.x's ``execute(..., multi=True)`` returns a generator that runs the statements
as it is read: its span covers only the call.

The driver's own trace-context propagation (since 8.1: the current span's ``traceparent``
sent as a query attribute) is turned off on connections to a server that cannot take query
attributes, MariaDB or MySQL before 8.0.23 (``_no_query_attributes`` says why: it corrupts
the C extension's prepared-statement parameters there). Elsewhere it is left on.

Hot path: a traced ``execute`` costs a suppression check, a context-variable read, two
attribute reads to find the connection's ``Target``, then ``dbapi.run``'s span and point.
Measured (callgrind, main-thread instructions per ``cur.execute("SELECT 1");
cur.fetchall()`` under the launcher, this instrumentation disabled → enabled, 26.10,
MariaDB 10.11): pure-Python 235.0k → 317.7k (+82.7k), C extension 100.2k → 183.2k
(+83.0k); PyMySQL's proxies under the same harness +87.2k (142.2k → 229.3k).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from . import dbapi
from ._http_common import suppressed

_TARGET = "_telemetryflow_target"  # a connection's dbapi.Target, once computed
_MISSING = object()

# True inside a traced executemany/callproc, or the driver's own SHOW WARNINGS/info_query.
_inner: ContextVar[bool] = ContextVar("telemetryflow_mysql_connector_inner", default=False)

# module → (plain cursor class, prepared cursor class); the classes that define the
# methods (the buffered, dict and raw cursors inherit them).
_SYNC = (("mysql.connector.cursor", "MySQLCursor", "MySQLCursorPrepared"),
         ("mysql.connector.cursor_cext", "CMySQLCursor", "CMySQLCursorPrepared"))
_ASYNC = ("mysql.connector.aio.cursor", "MySQLCursor", "MySQLCursorPrepared")
# The connections whose ``info_query`` (what ``conn.autocommit``, ``conn.database``, the
# escaping of parameters' ``sql_mode`` read) runs a cursor of the driver's own.
_INFO = (("mysql.connector.connection", "MySQLConnection"),
         ("mysql.connector.aio.connection", "MySQLConnection"))


def patch(module: Any, context: Any) -> None:
    from ._import_hooks import when_imported

    telemetry = dbapi.telemetry_for(context)
    for name, plain, prepared in _SYNC:
        try:
            cursors = importlib.import_module(name)
        except ImportError:  # no C extension (or it cannot load): the pure cursors only
            continue
        _patch_classes(telemetry, getattr(cursors, plain),
                       getattr(cursors, prepared, None), False)
    _quiet_info_query(importlib.import_module(_INFO[0][0]), _INFO[0][1], False)
    _settle_propagation(importlib.import_module("mysql.connector.abstracts"))
    # The asyncio API is a subpackage the program may import later (or never); hooked on
    # the package, which has imported its cursors and connection by then.
    when_imported("mysql.connector.aio", _guarded(telemetry))


def _guarded(telemetry: dbapi.Telemetry) -> Callable[[Any], None]:
    """The hook for ``mysql.connector.aio``: a post-import hook that raised would fail the
    program's import, so a failure is reported and the asyncio API left untraced."""

    def hook(package: Any) -> None:
        from .. import _diagnostics

        try:
            cursors = importlib.import_module(_ASYNC[0])
            _patch_classes(telemetry, getattr(cursors, _ASYNC[1]),
                           getattr(cursors, _ASYNC[2]), True)
            _quiet_info_query(importlib.import_module(_INFO[1][0]), _INFO[1][1], True)
        except Exception as exc:
            _diagnostics.warn(f"could not instrument mysql.connector.aio ({type(exc).__name__}:"
                              f" {exc}); it runs uninstrumented")

    return hook


def _patch_classes(telemetry: dbapi.Telemetry, plain: type, prepared: type | None,
                   is_async: bool) -> None:
    if dbapi.is_patched(vars(plain).get("execute")):
        return  # a second bootstrap: one span per call, not two

    def target_of(cursor: Any) -> dbapi.Target:
        # A weakref.proxy for the sync cursors; 8.x's C-extension cursors call it ``_cnx``.
        connection = getattr(cursor, "_connection", _MISSING)
        if connection is _MISSING:
            connection = cursor._cnx
        if connection is None:
            raise LookupError("closed cursor")  # the driver refuses the call: untraced
        target = getattr(connection, _TARGET, None)
        if target is None:
            target = _target(telemetry, connection)
            with contextlib.suppress(Exception):  # a connection class with slots
                setattr(connection, _TARGET, target)
            with contextlib.suppress(Exception):
                _no_query_attributes(connection, target.system)
        return target  # type: ignore[no-any-return]

    wrap = _async_traced if is_async else _traced
    for cls, commented in ((plain, True), (prepared, False)):
        if cls is None:
            continue  # a version without prepared cursors of that kind
        for method, kind in (("execute", "execute"), ("executemany", "batch"),
                             ("callproc", "procedure")):
            original = vars(cls).get(method)
            if original is None or (cls is prepared and method == "callproc"):
                continue  # inherited, or refused by the driver (NotSupportedError)
            setattr(cls, method, wrap(kind, original, target_of, commented))
        warnings = vars(cls).get("_fetch_warnings")  # SHOW WARNINGS on a cursor of its own
        if warnings is not None:
            cls._fetch_warnings = _quiet(warnings, is_async)


def _quiet_info_query(module: Any, name: str, is_async: bool) -> None:
    """The driver's own ``info_query`` statements are not spans (``_inner`` while it
    runs), as the C extension's, which need no cursor, are not."""
    connection = getattr(module, name)
    owner = next((cls for cls in connection.__mro__ if "info_query" in vars(cls)), None)
    if owner is None or dbapi.is_patched(vars(owner)["info_query"]):
        return
    owner.info_query = _quiet(vars(owner)["info_query"], is_async)


def _target(telemetry: dbapi.Telemetry, connection: Any) -> dbapi.Target:
    socket = dbapi.text_or_none(getattr(connection, "_unix_socket", None))
    address = socket or dbapi.text_or_none(getattr(connection, "_host", None))
    port = None if socket else getattr(connection, "_port", None)
    return dbapi.Target(telemetry, _system(connection),
                        namespace=dbapi.text_or_none(getattr(connection, "_database", None)),
                        address=address, port=port)


def _settle_propagation(abstracts: Any) -> None:
    """``_no_query_attributes`` as soon as the handshake says which server it is, before the
    statements a connection sends on its own (``SET NAMES``...); the first statement of a
    cursor does it too, should a version have no ``_post_connection``."""
    owner = getattr(abstracts, "MySQLConnectionAbstract", None)
    original = vars(owner).get("_post_connection") if owner is not None else None
    if original is None or dbapi.is_patched(original):
        return

    @functools.wraps(original)
    def _post_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(Exception):
            _no_query_attributes(self, _system(self))
        return original(self, *args, **kwargs)

    owner._post_connection = dbapi.mark_patched(_post_connection)


def _no_query_attributes(connection: Any, system: str) -> None:
    """Turn the driver's own trace-context propagation off for a server that cannot take
    query attributes (MariaDB; MySQL before 8.0.23).

    Why: since 8.1 the driver sends the current span's ``traceparent`` as a query
    attribute whenever a recording span is current (under the launcher the process span
    always is). A server without query attributes gets it as an extra parameter: the C
    extension's prepared statements then bind the program's values wrong (``SELECT %s``
    with 5 answered 327934, seen with 26.10 on MariaDB 10.11) and the pure-Python
    connection warns at every statement (an exception under ``-W error``)."""
    if not getattr(connection, "otel_context_propagation", False):
        return
    version = getattr(connection, "server_version", None) or ()
    if system == "mariadb" or tuple(version[:3]) < (8, 0, 23):
        connection.otel_context_propagation = False


def _system(connection: Any) -> str:
    """``mariadb`` or ``mysql``, from the version the server sent at connect time (the
    ``server_info`` property where the class has one: ``get_server_info()`` warns as
    deprecated there; 8.x has only the method)."""
    try:
        try:
            info = connection.server_info
        except AttributeError:  # 8.x (also through the cursors' weakref.proxy)
            info = connection.get_server_info()
    except Exception:
        return "mysql"
    if isinstance(info, bytes):
        info = info.decode("latin-1")
    return "mariadb" if "mariadb" in str(info).lower() else "mysql"


def _batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, int] | None:
    rows = args[1] if len(args) > 1 else kwargs.get("seq_params")
    if isinstance(rows, (list, tuple)) and len(rows) > 1:
        return {dbapi.BATCH_SIZE: len(rows)}
    return None


def _prepare(kind: str, cursor: Any, target_of: Callable[[Any], dbapi.Target],
             args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[dbapi.Target, dbapi.Prepared, dict[str, Any] | None]:
    target = target_of(cursor)
    if kind == "procedure":
        return target, target.procedure(dbapi.procedure_of(args, kwargs)), None
    prepared = target.prepare(dbapi.statement_of(args, kwargs))
    return target, prepared, (_batch_size(args, kwargs) if kind == "batch" else None)


def _quiet(original: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
    """``original`` with the statements it runs on cursors of the driver's own untraced."""
    if is_async:
        @functools.wraps(original)
        async def quiet_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            token = _inner.set(True)
            try:
                return await original(self, *args, **kwargs)
            finally:
                _inner.reset(token)

        return dbapi.mark_patched(quiet_async)

    @functools.wraps(original)
    def quiet(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _inner.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _inner.reset(token)

    return dbapi.mark_patched(quiet)


def _traced(kind: str, original: Callable[..., Any],
            target_of: Callable[[Any], dbapi.Target], commented: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _inner.get() or suppressed():
            return original(self, *args, **kwargs)
        try:
            target, prepared, extra = _prepare(kind, self, target_of, args, kwargs)
        except Exception:
            return original(self, *args, **kwargs)
        telemetry = target.telemetry
        rewrite = dbapi.rewrite_for(telemetry) if commented and kind == "execute" else None
        if kind == "execute":
            return dbapi.run(telemetry, prepared, functools.partial(original, self), args,
                             kwargs, None, rewrite)
        token = _inner.set(True)
        try:
            return dbapi.run(telemetry, prepared, functools.partial(original, self), args,
                             kwargs, extra)
        finally:
            _inner.reset(token)

    return dbapi.mark_patched(traced)


def _async_traced(kind: str, original: Callable[..., Any],
                  target_of: Callable[[Any], dbapi.Target],
                  commented: bool) -> Callable[..., Any]:
    @functools.wraps(original)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _inner.get() or suppressed():
            return await original(self, *args, **kwargs)
        try:
            target, prepared, extra = _prepare(kind, self, target_of, args, kwargs)
        except Exception:
            return await original(self, *args, **kwargs)
        telemetry = target.telemetry
        rewrite = dbapi.rewrite_for(telemetry) if commented and kind == "execute" else None
        if kind == "execute":
            return await dbapi.run_async(telemetry, prepared, functools.partial(original, self),
                                         args, kwargs, None, rewrite)
        token = _inner.set(True)
        try:
            return await dbapi.run_async(telemetry, prepared,
                                         functools.partial(original, self), args, kwargs,
                                         extra)
        finally:
            _inner.reset(token)

    return dbapi.mark_patched(traced)
