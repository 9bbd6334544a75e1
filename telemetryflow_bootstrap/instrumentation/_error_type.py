"""``error.type`` for an exception: one rule for every span and metric point we record.

The semantic conventions ask for the exception's canonical (fully-qualified) class name
when an exception ended the operation: ``requests.exceptions.ConnectTimeout``,
``psycopg.errors.UndefinedTable``, ``myapp.errors.PaymentFailed``; a built-in keeps its bare
name (``TimeoutError``, ``ValueError``). Bare class names collide across libraries (both
``requests`` and ``httpx`` have a ``ConnectTimeout``; every web framework an ``HTTPError``),
so a dashboard grouping by ``error.type`` could not tell whose failure it counts; and the
HTTP clients, the databases and the servers used to disagree (full names for the first
two, bare ones for the servers and ``end_span(error)``).

Imported at start-up (the SDK client's ``end_span``): the standard library only. Called
only on failure, so a success pays nothing for it.
"""

from __future__ import annotations

__all__ = ["CLIENT_DISCONNECT", "error_type"]

# A client that went away before its response was sent: whether Starlette told the
# application (``ClientDisconnect`` raised by ``Request.body()``) or uvicorn dropped a
# response nobody was left to receive (no exception at all). One fixed value for both, and
# for any framework: the condition, not the class of whichever layer noticed it.
CLIENT_DISCONNECT = "ClientDisconnect"


def error_type(error: BaseException) -> str:
    """``error``'s fully-qualified class name (``module.QualName``); a built-in's bare
    ``QualName``, as is a class whose ``__module__`` is not a non-empty str (a class made by
    hand with ``type()`` may carry anything there)."""
    kind = type(error)
    module = kind.__module__
    if type(module) is not str or not module or module == "builtins":
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"
