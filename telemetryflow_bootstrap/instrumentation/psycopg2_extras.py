"""psycopg2.extras ``execute_values``/``execute_batch``: one CLIENT span and one
``db.client.operation.duration`` point per call, on a cursor of a traced connection.

Why they need their own patch: both format every row on the client (``cursor.mogrify``) and
send the result with ``cursor.execute``, so the statement our cursor sees carries the values
themselves (sanitized, but one long text per page, a different one per row count). Instead,
the call is traced as one batch operation whose ``db.query.text`` is the statement the
program wrote (``INSERT INTO t (a, b) VALUES %s``, sanitized like any other), and its pages
run with instrumentation suppressed, so they make no spans of their own. Attributes are
those of the connection's other statements (see ``dbapi``), plus
``db.operation.batch.size`` when ``argslist`` is a list or tuple of 2+ rows. The commenter
does not apply (as for ``executemany``). A cursor of an untraced connection (psycopg2
disabled, or connected before we were) is passed through untouched.

``arm()`` is called by the psycopg2 patch: the wrappers go into ``psycopg2.extras`` when the
program imports it (at once if it already has).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import wrapt
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, set_value

from ..infrastructure.current_context import attach, get_current, reset
from . import _db_subclasses, dbapi
from ._http_common import suppressed

_FUNCTIONS = ("execute_values", "execute_batch")


def arm() -> None:
    wrapt.register_post_import_hook(_patch, "psycopg2.extras")


def _patch(module: Any) -> None:
    # A post-import hook: raising would fail the program's ``import psycopg2.extras``.
    try:
        for name in _FUNCTIONS:
            original = getattr(module, name, None)
            if original is not None and not dbapi.is_patched(original):
                setattr(module, name, _traced(original))
    except Exception:
        pass


def _traced(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        traced_call = None if suppressed() else _prepare(args, kwargs)
        if traced_call is None:
            return original(*args, **kwargs)
        target, prepared, batch = traced_call
        return dbapi.run(target.telemetry, prepared, _quietly(original), args, kwargs, batch)

    return dbapi.mark_patched(traced)


def _prepare(args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> tuple[dbapi.Target, dbapi.Prepared, dict[str, int] | None] | None:
    """(target, prepared statement, batch attributes) when the cursor argument is one of a
    traced connection; None otherwise, or when anything about the arguments surprises us
    (the call then simply happens, untraced)."""
    try:
        cursor = args[0] if args else kwargs.get("cur")
        target = getattr(cursor.connection, _db_subclasses.TARGET, None)
        if not isinstance(target, dbapi.Target):
            return None
        statement = args[1] if len(args) > 1 else kwargs.get("sql")
        rows = args[2] if len(args) > 2 else kwargs.get("argslist")
        batch = ({dbapi.BATCH_SIZE: len(rows)}
                 if isinstance(rows, (list, tuple)) and len(rows) > 1 else None)
        return target, target.prepare(statement), batch
    except Exception:
        return None


def _quietly(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run with instrumentation suppressed: the cursor's own executes inside it
    are the pages of the batch we trace."""

    def call(*args: Any, **kwargs: Any) -> Any:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, get_current()))
        try:
            return function(*args, **kwargs)
        finally:
            reset(token)

    return call
