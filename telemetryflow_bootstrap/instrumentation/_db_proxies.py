"""Traced proxies for the pure-Python DB-API drivers (psycopg 3, PyMySQL, mysqlclient); the
C drivers (sqlite3, psycopg2) get subclasses instead (``_db_subclasses`` says why).

Why proxies here: these drivers type-check a connection with ``isinstance``, which a
``wrapt.ObjectProxy`` answers for the object it wraps, and their own Python code calls its
public methods internally (PyMySQL's and mysqlclient's ``executemany`` call
``self.execute``, psycopg's ``Connection.execute`` calls ``self.cursor()``): a subclass's
overrides would be entered again from inside the driver, while a proxy sees only the
program's calls.

A driver module patches its ``connect`` (``wrap_connect``) to return a ``ConnectionProxy``
whose ``cursor()`` returns a ``CursorProxy``. The mixins below give a proxy exactly the
traced methods the real object has (``hasattr(cur, "callproc")`` answers as before).
Methods that return the real object itself return the proxy instead, and a connection-level
``execute`` returns its cursor proxied, so chained, ``with`` and reused use stays traced;
every other result passes through untouched. Pickling and copying act on the real object:
the program gets the driver's own error, or an (untraced) copy where the driver makes one.
A proxy's class is named after the class of the object it wraps (``type(conn).__name__``
is ``Connection``, ``type(cur)`` reads ``<class 'pymysql.cursors.DictCursor'>``); ``type(x)
is`` the driver's class is the one thing a proxy cannot answer.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import wrapt

from . import dbapi
from ._http_common import suppressed

_MAX_NAMED = 256
_named: dict[tuple[type, type], type] = {}  # (proxy class, wrapped class) -> named proxy class


class _Proxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __new__(cls, wrapped: Any, *args: Any, **kwargs: Any) -> Any:
        # An instance of a subclass named like the wrapped object's class (see the module).
        real = type(wrapped)
        try:
            named = _named[cls, real]
        except KeyError:
            named = type(cls)(real.__name__, (cls,), {
                "__module__": real.__module__, "__qualname__": real.__qualname__,
                "__doc__": real.__doc__})
            if len(_named) >= _MAX_NAMED:
                _named.clear()
            named = _named.setdefault((cls, real), named)
        return super().__new__(named)

    def __init__(self, wrapped: Any, target: dbapi.Target) -> None:
        super().__init__(wrapped)
        self._self_target = target

    def __enter__(self) -> Any:
        result = self.__wrapped__.__enter__()
        return self if result is self.__wrapped__ else result

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    # wrapt's proxy refuses these outright (NotImplementedError).
    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__wrapped__.__reduce_ex__(protocol)

    def __reduce__(self) -> Any:
        return self.__wrapped__.__reduce__()

    def __copy__(self) -> Any:
        return copy.copy(self.__wrapped__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.__wrapped__, memo)


class _AsyncProxy(_Proxy):
    async def __aenter__(self) -> Any:
        result = await self.__wrapped__.__aenter__()
        return self if result is self.__wrapped__ else result


class CursorProxy(_Proxy):
    """A traced cursor; ``connection`` answers with the connection proxy it came from."""

    def __init__(self, wrapped: Any, target: dbapi.Target, owner: Any = None) -> None:
        super().__init__(wrapped, target)
        self._self_owner = owner

    @property
    def connection(self) -> Any:
        real = self.__wrapped__.connection
        owner = self._self_owner
        return owner if owner is not None and real is owner.__wrapped__ else real


class AsyncCursorProxy(_AsyncProxy, CursorProxy):
    def __aiter__(self) -> Any:
        return self.__wrapped__.__aiter__()


class ConnectionProxy(_Proxy):
    """A traced connection: ``cursor()`` hands out ``cursor_proxy`` instances."""

    cursor_proxy: type[CursorProxy] = CursorProxy

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor_proxy(self.__wrapped__.cursor(*args, **kwargs), self._self_target,
                                 self)

    def _proxied_cursor(self, result: Any) -> Any:
        """``result`` proxied when it is a cursor of this connection (what a
        connection-level ``execute`` returns), so the program's reuse of it is traced."""
        if getattr(result, "connection", None) is self.__wrapped__:
            return self.cursor_proxy(result, self._self_target, self)
        return result


class AsyncConnectionProxy(_AsyncProxy, ConnectionProxy):
    cursor_proxy: type[CursorProxy] = AsyncCursorProxy


# ----- the traced methods ------------------------------------------------------------------
#
# Each calls ``run`` itself: a driver error's traceback shows two frames of ours (this
# method and ``run``).


class Next:
    """For cursors that are their own iterators (``next(cur)``)."""

    def __next__(self) -> Any:
        return next(self.__wrapped__)  # type: ignore[attr-defined]


class Execute:
    """A cursor's ``execute``: one span per statement; the commenter applies."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__  # type: ignore[attr-defined]
        method = wrapped.execute
        if suppressed():
            result = method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            telemetry = target.telemetry
            result = dbapi.run(telemetry, target.prepare(dbapi.statement_of(args, kwargs)),
                               method, args, kwargs, None, dbapi.rewrite_for(telemetry))
        return self if result is wrapped else result


class ConnectionExecute:
    """A connection's ``execute`` shortcut: traced like a cursor's; the cursor it returns
    is proxied (``cur = conn.execute(...)`` then ``cur.execute(...)`` is traced too)."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        method = self.__wrapped__.execute  # type: ignore[attr-defined]
        if suppressed():
            result = method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            telemetry = target.telemetry
            result = dbapi.run(telemetry, target.prepare(dbapi.statement_of(args, kwargs)),
                               method, args, kwargs, None, dbapi.rewrite_for(telemetry))
        return self._proxied_cursor(result)  # type: ignore[attr-defined]


class ExecuteMany:
    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__  # type: ignore[attr-defined]
        method = wrapped.executemany
        if suppressed():
            result = method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            result = dbapi.run(target.telemetry,
                               target.prepare(dbapi.statement_of(args, kwargs)), method, args,
                               kwargs, dbapi.batch_size(args, kwargs))
        return self if result is wrapped else result


class CallProc:
    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        method = self.__wrapped__.callproc  # type: ignore[attr-defined]
        if suppressed():
            return method(*args, **kwargs)
        target = self._self_target  # type: ignore[attr-defined]
        return dbapi.run(target.telemetry, target.procedure(dbapi.procedure_of(args, kwargs)),
                         method, args, kwargs)


class AsyncExecute:
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__  # type: ignore[attr-defined]
        method = wrapped.execute
        if suppressed():
            result = await method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            telemetry = target.telemetry
            result = await dbapi.run_async(
                telemetry, target.prepare(dbapi.statement_of(args, kwargs)), method, args,
                kwargs, None, dbapi.rewrite_for(telemetry))
        return self if result is wrapped else result


class AsyncConnectionExecute:
    """``ConnectionExecute`` for an asyncio connection."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        method = self.__wrapped__.execute  # type: ignore[attr-defined]
        if suppressed():
            result = await method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            telemetry = target.telemetry
            result = await dbapi.run_async(
                telemetry, target.prepare(dbapi.statement_of(args, kwargs)), method, args,
                kwargs, None, dbapi.rewrite_for(telemetry))
        return self._proxied_cursor(result)  # type: ignore[attr-defined]


class AsyncExecuteMany:
    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__  # type: ignore[attr-defined]
        method = wrapped.executemany
        if suppressed():
            result = await method(*args, **kwargs)
        else:
            target = self._self_target  # type: ignore[attr-defined]
            result = await dbapi.run_async(
                target.telemetry, target.prepare(dbapi.statement_of(args, kwargs)), method,
                args, kwargs, dbapi.batch_size(args, kwargs))
        return self if result is wrapped else result


class Copy:
    """psycopg's ``cursor.copy(statement)``: one span from entering the ``with`` block
    (the COPY statement is sent) to leaving it (the data is flushed and the server
    answers), as the whole block is the one operation; a block that raises ends it with
    that exception's type."""

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        manager = self.__wrapped__.copy(*args, **kwargs)  # type: ignore[attr-defined]
        return _traced(self, manager, _TracedBlock, args, kwargs)


def _traced(proxy: Any, result: Any, tracer: Callable[..., Any], args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> Any:
    """``result`` of the driver's call with ``args``/``kwargs`` (a block, a row stream)
    wrapped by ``tracer`` for the statement they name; as it is when instrumentation is
    suppressed or the statement cannot be read."""
    if suppressed():
        return result
    target = proxy._self_target
    try:
        prepared = target.prepare(dbapi.statement_of(args, kwargs))
    except Exception:
        return result
    return tracer(result, target.telemetry, prepared)


class Stream:
    """psycopg's ``cursor.stream(statement)``: one span from the first row asked for (the
    statement is sent) until the rows run out, the loop leaves early (the generator is
    closed and psycopg cancels the query: not a failure) or the driver raises. psycopg
    holds the connection's lock for all of it, so that is how long the operation occupies
    the connection, the program's work between rows included (as in a ``copy()`` block)."""

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        rows = self.__wrapped__.stream(*args, **kwargs)  # type: ignore[attr-defined]
        return _traced(self, rows, _streamed, args, kwargs)


def _streamed(rows: Any, telemetry: dbapi.Telemetry, prepared: dbapi.Prepared) -> Any:
    span = dbapi.Span(telemetry, prepared)  # runs at the first next(): nothing sent before
    try:
        yield from rows  # send/throw/close reach the driver's generator as before
    except GeneratorExit:
        span.end()
        raise
    except BaseException as exc:
        span.end(exc)
        raise
    span.end()


class AsyncStream:
    """``Stream`` for an asyncio cursor, whose ``stream()`` is an async generator."""

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        rows = self.__wrapped__.stream(*args, **kwargs)  # type: ignore[attr-defined]
        return _traced(self, rows, _streamed_async, args, kwargs)


async def _streamed_async(rows: Any, telemetry: dbapi.Telemetry,
                          prepared: dbapi.Prepared) -> Any:
    # An async generator cannot ``yield from``: closing ours closes the driver's explicitly,
    # so its cleanup (cancelling the query) runs when the program's loop leaves early.
    span = dbapi.Span(telemetry, prepared)
    failure: BaseException | None = None
    try:
        async for row in rows:
            yield row
    except GeneratorExit:
        raise
    except BaseException as exc:
        failure = exc
        raise
    finally:
        try:
            await rows.aclose()
        finally:
            span.end(failure)


class _TracedBlock:
    """A driver's (sync or async) context manager, traced from enter to exit."""

    __slots__ = ("_manager", "_prepared", "_span", "_telemetry")

    def __init__(self, manager: Any, telemetry: dbapi.Telemetry,
                 prepared: dbapi.Prepared) -> None:
        self._manager = manager
        self._telemetry = telemetry
        self._prepared = prepared
        self._span: dbapi.Span | None = None

    def __enter__(self) -> Any:
        self._span = span = dbapi.Span(self._telemetry, self._prepared)
        try:
            return self._manager.__enter__()
        except BaseException as exc:
            span.end(exc)
            raise

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> Any:
        try:
            swallowed = self._manager.__exit__(kind, exc, tb)
        except BaseException as raised:
            self._end(raised)
            raise
        self._end(None if swallowed else exc)
        return swallowed

    async def __aenter__(self) -> Any:
        self._span = span = dbapi.Span(self._telemetry, self._prepared)
        try:
            return await self._manager.__aenter__()
        except BaseException as exc:
            span.end(exc)
            raise

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> Any:
        try:
            swallowed = await self._manager.__aexit__(kind, exc, tb)
        except BaseException as raised:
            self._end(raised)
            raise
        self._end(None if swallowed else exc)
        return swallowed

    def _end(self, exc: BaseException | None) -> None:
        if self._span is not None:
            self._span.end(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)


# ----- patching connect --------------------------------------------------------------------

_Make = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


def wrap_connect(owner: Any, name: str, make_proxy: _Make) -> None:
    """Replace ``owner.name`` (a connect function or classmethod) so it returns
    ``make_proxy(connection, args, kwargs)``; if that fails, the real connection."""

    def connect(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        connection = wrapped(*args, **kwargs)
        return _proxied(make_proxy, connection, args, kwargs)

    wrapt.wrap_function_wrapper(owner, name, connect)


def wrap_connect_async(owner: Any, name: str, make_proxy: _Make) -> None:
    """``wrap_connect`` for an ``async`` connect."""

    async def connect(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        connection = await wrapped(*args, **kwargs)
        return _proxied(make_proxy, connection, args, kwargs)

    wrapt.wrap_function_wrapper(owner, name, connect)


def _proxied(make_proxy: _Make, connection: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
    if isinstance(connection, _Proxy):
        return connection  # a factory that connects through an already-patched connect
    try:
        return make_proxy(connection, args, kwargs)
    except Exception:
        return connection  # never let us cost the program its connection
