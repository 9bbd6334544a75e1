"""Traced subclasses of a C driver's own classes (sqlite3, psycopg2): how those drivers are
instrumented, where the pure-Python ones get proxies (``_db_proxies``).

Why subclasses: these drivers' C code type-checks the connection it is handed
(``sqlite3.Cursor(conn)``, ``Connection.backup``, ``psycopg2.sql.Literal.as_string(conn)``,
``psycopg2.extensions.cursor(conn)``, every adapter's ``prepare(conn)``...). A proxy fails
each of those checks and no list of unwrapped call sites is ever complete; an instance of a
subclass passes them all, and ``type(conn)``, ``isinstance``, pickling and the interpreter's
messages about the object stay the driver's. Both drivers build their objects through a
factory the program may name (``sqlite3.connect(factory=)``, ``Connection.cursor(factory)``,
``psycopg2.connect(connection_factory=)``, ``cursor(cursor_factory=)``): the patch passes a
class derived from the one the program named (or the driver's default), so the program gets
an instance of the class it asked for.

Where our methods sit: ``Derived(ProgramClass, Traced)``, ``Traced(our mixins...,
DriverClass)``, so the MRO runs Derived, the program's classes, our mixins, then the
driver's C class. A program's override (``LoggingConnection.cursor`` choosing its cursor
class, a cursor subclass's ``execute``) runs first and reaches ours through ``super()``
exactly where it would have reached the driver's, so we trace the C call with its final
arguments. Only C methods are overridden, and C code calls them directly, never by name, so
nothing is traced twice (Python 3.10's sqlite3 shortcuts are the exception; see sqlite3).

Class state: a class attribute set or deleted through a derived class (``type(self).count
+= 1`` in the program's cursor class, a classmethod caching on ``cls``) lands on the class it
stands for, where the program's own code reads it (and the driver's immutable class refuses
it, as it would have).

Names: a derived class takes the ``__name__``, ``__qualname__``, ``__module__`` and
``__doc__`` of the class it stands for. The interpreter's own messages ("'sqlite3.Connection'
object has no attribute 'x'", "cannot pickle 'sqlite3.Connection' object") use a class's C
name, which for a class statement is its ``__name__`` but for a C class is dotted; a class
derived from a C class is therefore created under the dotted name, and ``_DottedName``
answers ``__name__`` with the last part.

Per-connection data (``Target``) lives in a slot of the connection (connections only: a
cursor finds it through ``cursor.connection``, so a cursor built from a traced class by
hand is traced too). Not traced: cursors built from the driver's own class
(``sqlite3.Cursor(conn)``), and factories that are functions, not classes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from . import dbapi
from ._http_common import suppressed

TARGET = "_telemetryflow_target"  # the connection slot holding its dbapi.Target
FETCH = "_telemetryflow_fetch"  # a named cursor's slot: the dbapi.Prepared of its fetches
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: clear for a static C class
_MAX_DERIVED = 256  # derived classes cached per driver class


# derived class -> the class it stands for (weak: a derived class refers to it, not back)
_stands_for: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


class _StandIn(type):
    """Metaclass of a derived class: class attributes are set and deleted on the class it
    stands for (see the module)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        original = _stands_for.get(cls)
        if original is None:  # a class of the program's derived from ours
            super().__setattr__(name, value)
        else:
            setattr(original, name, value)

    def __delattr__(cls, name: str) -> None:
        original = _stands_for.get(cls)
        if original is None:
            super().__delattr__(name)
        else:
            delattr(original, name)


class _DottedName(_StandIn):
    """Metaclass of a class derived from a C class, created under the C class's dotted
    name (``sqlite3.Connection``) so that messages naming it read as before; ``__name__``
    answers the last part, as it does for the C class."""

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        return _type_name(cls).rpartition(".")[2]


_type_name = type.__dict__["__name__"].__get__
_metaclasses: dict[type, type] = {type: _StandIn}


def _metaclass(program_metaclass: type) -> type:
    """``_StandIn`` combined with the metaclass of the program's class (an ABC's...)."""
    try:
        return _metaclasses[program_metaclass]
    except KeyError:
        made = type(program_metaclass.__name__, (_StandIn, program_metaclass),
                    {"__module__": __name__})
        return _metaclasses.setdefault(program_metaclass, made)


class Derived:
    """The traced classes standing for the subclasses of one driver class: ``derived(cls)``
    is the class to build instead of ``cls``, made once per ``cls``."""

    def __init__(self, driver_class: type, mixins: tuple[type, ...],
                 slots: tuple[str, ...] = ()) -> None:
        self._driver = driver_class
        self._slots = slots
        self._traced = type(f"Traced{driver_class.__name__.title()}", (*mixins, driver_class),
                            {"__slots__": (), "__module__": __name__})
        self._derived: dict[Any, type] = {}

    def __call__(self, cls: Any) -> type | None:
        """The traced class standing for ``cls``; None to leave ``cls`` alone (not a
        subclass of the driver's class, e.g. a function, or a class we cannot derive from).
        Never raises."""
        try:
            return self._derived[cls]
        except (KeyError, TypeError):  # TypeError: an unhashable factory
            pass
        try:
            if not (isinstance(cls, type) and issubclass(cls, self._driver)):
                return None
            if issubclass(cls, self._traced):
                return cls  # ours already (a second patch, or our class passed back)
            original = _stands_for.get(cls)
            if original is not None:  # another Derived's (a plain cursor's class, passed
                return self(original)  # for a named one): ours for the program's class
            derived = self._derive(cls)
        except Exception:  # an __init_subclass__ that refuses us, a layout conflict...
            return None
        if len(self._derived) >= _MAX_DERIVED:
            self._derived.clear()  # classes made per call: rare; the old ones still work
        return self._derived.setdefault(cls, derived)

    def _derive(self, cls: type) -> type:
        namespace = {"__slots__": self._slots, "__module__": cls.__module__,
                     "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
        bases = (self._traced,) if cls is self._driver else (cls, self._traced)
        if cls is self._driver or not cls.__flags__ & _HEAPTYPE:
            derived = _DottedName(f"{cls.__module__}.{cls.__qualname__}", bases, namespace)
        else:
            derived = _metaclass(type(cls))(cls.__name__, bases, namespace)
        _stands_for[derived] = cls
        return derived


def chosen(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, keyword: str,
           default: Any) -> Any:
    """The argument at ``position`` or ``keyword``, else ``default``."""
    return args[position] if len(args) > position else kwargs.get(keyword, default)


def replaced(args: tuple[Any, ...], kwargs: dict[str, Any], position: int, keyword: str,
             value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args``/``kwargs`` with the argument at ``position`` (when given positionally) or
    ``keyword`` set to ``value``; a name also given by position stays, for the driver to
    refuse as it would have."""
    if len(args) > position:
        return (*args[:position], value, *args[position + 1:]), kwargs
    return args, {**kwargs, keyword: value}


def adopt(connection: Any, derived: type | None,
          target: Callable[[], dbapi.Target]) -> Any:
    """``connection``, given its ``Target`` when it is an instance of ``derived``; if
    computing the target fails, it stays untraced (never the program's problem)."""
    if derived is not None and isinstance(connection, derived):
        with contextlib.suppress(Exception):
            setattr(connection, TARGET, target())
    return connection


def _target_of(cursor: Any) -> dbapi.Target | None:
    try:
        return cursor.connection._telemetryflow_target  # type: ignore[no-any-return]
    except AttributeError:  # a connection built from our class by hand: no target
        return None


# ----- the traced C methods of a cursor ----------------------------------------------------
#
# One mixin per method, so a traced cursor has exactly the driver's methods (sqlite3 has no
# callproc, psycopg2 no executescript). Each calls ``run`` itself: a driver error's traceback
# shows two frames of ours (this method and ``run``).


class Execute:
    __slots__ = ()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        method = super().execute  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        telemetry = target.telemetry
        return dbapi.run(telemetry, target.prepare(dbapi.statement_of(args, kwargs)), method,
                         args, kwargs, None, dbapi.rewrite_for(telemetry))


class NamedExecute:
    """A server-side (named) cursor's ``execute``: its span covers the ``DECLARE``, and it
    keeps the statement's ``FETCH`` for the fetches that run the query (``NamedFetch``)."""

    __slots__ = ()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        method = super().execute  # type: ignore[misc]
        target = _target_of(self)
        if target is None:
            return method(*args, **kwargs)
        prepared = target.prepare(dbapi.statement_of(args, kwargs))
        with contextlib.suppress(Exception):  # a class of the program's without our slot
            setattr(self, FETCH, prepared.fetch())
        if suppressed():
            return method(*args, **kwargs)
        telemetry = target.telemetry
        return dbapi.run(telemetry, prepared, method, args, kwargs, None,
                         dbapi.rewrite_for(telemetry))


class NamedFetch:
    """A server-side cursor's fetches: each is a round trip (``FETCH FORWARD n FROM name``)
    during which PostgreSQL runs the declared query, so each is a ``FETCH`` span and a
    duration point. Client-side cursors never get these methods: their fetches read memory
    and stay the driver's C calls. Iteration: see ``named_fetch``."""

    __slots__ = ()

    def fetchone(self, *args: Any, **kwargs: Any) -> Any:
        return _fetch(self, super().fetchone, args, kwargs)  # type: ignore[misc]

    def fetchmany(self, *args: Any, **kwargs: Any) -> Any:
        return _fetch(self, super().fetchmany, args, kwargs)  # type: ignore[misc]

    def fetchall(self, *args: Any, **kwargs: Any) -> Any:
        return _fetch(self, super().fetchall, args, kwargs)  # type: ignore[misc]


def named_fetch(driver_class: type) -> type:
    """``NamedFetch`` with the ``__next__`` of ``driver_class``'s named cursors.

    Iteration fetches ``itersize`` rows at a time: only the ``__next__`` that starts a page
    is traced (the driver's own test: ``rownumber >= rowcount``). The others return a row
    already in memory, the per-row path: they call the driver's C ``__next__`` directly,
    as ``super()`` would cost more than the row itself (no class between ours and the
    driver's defines one)."""
    driver_next = driver_class.__next__

    def __next__(self: Any) -> Any:
        if self.rownumber < self.rowcount:
            return driver_next(self)
        return _next_page(self, driver_next)

    return type("NamedFetch", (NamedFetch,), {"__slots__": (), "__module__": __name__,
                                              "__next__": __next__})


class NamedScroll:
    """A server-side cursor's ``scroll``: a ``MOVE`` round trip during which PostgreSQL
    computes the rows it skips (an absolute scroll to a far row runs the query that far),
    so it is a ``MOVE`` span and duration point with the declared statement's text, as a
    fetch is. psycopg2 sends it for any mode (all but ``absolute`` read as relative).
    ``close()``'s ``CLOSE`` is not traced: it drops the portal without query work, and a
    span for it would add one to every cursor the program uses."""

    __slots__ = ()

    def scroll(self, *args: Any, **kwargs: Any) -> Any:
        method = super().scroll  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        prepared = as_operation(getattr(self, FETCH, None) or target.fetch(), "MOVE")
        return dbapi.run(target.telemetry, prepared, method, args, kwargs)


# (id of a Prepared, operation) -> (that Prepared, kept alive so its id stays its own; the
# Prepared of the operation)
_as_operation: dict[tuple[int, str], tuple[dbapi.Prepared, dbapi.Prepared]] = {}
_MAX_AS_OPERATION = 256  # (a query text is up to 8 KB: at most a few MB held)


def as_operation(prepared: dbapi.Prepared, operation: str) -> dbapi.Prepared:
    """``prepared``'s statement as another operation on it: the ``MOVE`` of a server
    cursor over it, its ``PREPARE``. ``{operation} {collection}``, the statement's query
    text and collection (the server works on that query: grouping by ``db.query.text`` adds
    its whole cost up, as for ``dbapi.Prepared.fetch``); built once per pair. Used by
    psycopg and asyncpg too (this module imports nothing heavy)."""
    key = (id(prepared), operation)
    found = _as_operation.get(key)
    if found is not None:
        return found[1]
    attributes = {**prepared.attributes, dbapi.OPERATION: operation}
    attributes.pop(dbapi.BATCH_SIZE, None)
    metric = {**prepared.metric_attributes, dbapi.OPERATION: operation}
    collection = attributes.get(dbapi.COLLECTION)
    made = dbapi.Prepared(f"{operation} {collection}" if collection else operation,
                          attributes, metric)
    if len(_as_operation) >= _MAX_AS_OPERATION:
        _as_operation.clear()  # rare: one entry per statement scrolled or prepared
    _as_operation[key] = (prepared, made)
    return made


def _next_page(cursor: Any, driver_next: Callable[[Any], Any]) -> Any:
    target = _target_of(cursor)
    if target is None or suppressed():
        return driver_next(cursor)
    span = dbapi.Span(target.telemetry, getattr(cursor, FETCH, None) or target.fetch())
    try:
        row = driver_next(cursor)
    except StopIteration:  # the page came back empty: the end, not a failure
        span.end()
        raise
    except BaseException as exc:
        span.end(exc)
        raise
    span.end()
    return row


def _fetch(cursor: Any, method: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    target = _target_of(cursor)
    if target is None or suppressed():
        return method(*args, **kwargs)
    prepared = getattr(cursor, FETCH, None) or target.fetch()
    return dbapi.run(target.telemetry, prepared, method, args, kwargs)


class ExecuteMany:
    __slots__ = ()

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        method = super().executemany  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        return dbapi.run(target.telemetry, target.prepare(dbapi.statement_of(args, kwargs)),
                         method, args, kwargs, dbapi.batch_size(args, kwargs))


class ExecuteScript:
    __slots__ = ()

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        method = super().executescript  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        return dbapi.run(target.telemetry, target.prepare(dbapi.statement_of(args, kwargs)),
                         method, args, kwargs)


class CallProc:
    __slots__ = ()

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        method = super().callproc  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        return dbapi.run(target.telemetry, target.procedure(dbapi.procedure_of(args, kwargs)),
                         method, args, kwargs)


class CopyExpert:
    """psycopg2's ``copy_expert(sql, file)``: the COPY statement the program wrote."""

    __slots__ = ()

    def copy_expert(self, *args: Any, **kwargs: Any) -> Any:
        method = super().copy_expert  # type: ignore[misc]
        target = _target_of(self)
        if target is None or suppressed():
            return method(*args, **kwargs)
        statement = args[0] if args else kwargs.get("sql")
        return dbapi.run(target.telemetry, target.prepare(statement), method, args, kwargs)


class CopyTable:
    """psycopg2's ``copy_from(file, table)``/``copy_to(file, table)``: a COPY of the table
    the program names; the statement psycopg2 composes is not shown (its text is ours to
    guess, not the program's)."""

    __slots__ = ()

    def copy_from(self, *args: Any, **kwargs: Any) -> Any:
        return _copy_table(self, super().copy_from, args, kwargs)  # type: ignore[misc]

    def copy_to(self, *args: Any, **kwargs: Any) -> Any:
        return _copy_table(self, super().copy_to, args, kwargs)  # type: ignore[misc]


def _copy_table(cursor: Any, method: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
    target = _target_of(cursor)
    if target is None or suppressed():
        return method(*args, **kwargs)
    table = args[1] if len(args) > 1 else kwargs.get("table")
    if not isinstance(table, str):
        return method(*args, **kwargs)  # the driver refuses it, untraced
    return dbapi.run(target.telemetry, target.copy(table), method, args, kwargs)
