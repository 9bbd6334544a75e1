"""``db.query.text`` for statements composed with ``psycopg.sql`` (psycopg 3) or
``psycopg2.sql``: rendered against the connection when the composition holds no value.

Why not render every composition and let the sanitizer take the literals out: rendering
a ``Literal`` runs the driver's adapters on the program's value (a user type's dumper may
be slow or have side effects), all to produce text we would then throw away. So a
composition is rendered only when it is made solely of ``SQL``, ``Identifier`` and
``Placeholder`` parts; anything else (a ``Literal``, a part of a class we do not know)
means no text. The two libraries keep a ``Composed``'s parts differently (psycopg2: the
``seq`` attribute; psycopg 3: iterating it), and a user's subclass of ``Literal`` is still
a ``Literal``: classes are recognised by the names along their MRO.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_VALUE_FREE = frozenset({"SQL", "Identifier", "Placeholder"})


def renderer(connection: Any) -> Callable[[Any], str | None]:
    """Renders value-free compositions against the real ``connection``; None otherwise."""

    def render(statement: Any) -> str | None:
        if not hasattr(statement, "as_string") or not value_free(statement):
            return None
        text = statement.as_string(connection)
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else text

    return render


def value_free(composable: Any) -> bool:
    """True when rendering ``composable`` can put no value into the text."""
    for cls in type(composable).__mro__:
        name = cls.__name__
        if name == "Composed":
            parts = getattr(composable, "seq", None)  # psycopg2
            if parts is None:
                parts = composable  # psycopg 3: a Composed iterates over its parts
            return all(value_free(part) for part in parts)
        if name in _VALUE_FREE:
            return True
        if name == "Literal":
            return False
    return False
