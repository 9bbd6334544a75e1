"""Value objects without ``@dataclass``: the equality, hash, ``repr`` and ``replace()`` a
dataclass would generate, written once here (stdlib only, imports nothing).

Why: every instrumented process imports the config, the commands and the registry at
start-up, and ``@dataclass`` compiles each class's ``__init__``/``__repr__``/``__eq__``
from generated source (``exec``) when the class is defined: ~0.2-2 ms a class, ~20 classes,
plus importing ``dataclasses`` itself (``inspect``, ``ast``, ``dis``, ``tokenize``) where
nothing else needs it. A class here lists its fields in ``_FIELDS`` (in declaration order)
and writes its own ``__init__``; everything else is shared, compiled once into the
``.pyc``.

They still answer ``dataclasses.fields()``, ``dataclasses.replace()`` and
``dataclasses.asdict()`` as before: ``__dataclass_fields__`` is built on first use, and
only then is ``dataclasses`` imported.
"""

from __future__ import annotations

TYPE_CHECKING = False  # (typing.TYPE_CHECKING without importing typing)
if TYPE_CHECKING:
    from typing import Any, TypeVar

    _V = TypeVar("_V", bound="FrozenValue")


_SHADOWS: dict[type, Any] = {}  # class -> the dataclass describing its fields


class _LazyDataclassFields:
    """``cls.__dataclass_fields__`` (and ``__dataclass_params__``), built from ``_FIELDS``
    and the ``__init__`` defaults when something asks (``dataclasses.fields``/``replace``/
    ``asdict``/``is_dataclass``, or ``@dataclass`` on a subclass), then kept here, per
    class (not set on the class: a base's would then hide this from its subclasses)."""

    def __init__(self, attribute: str) -> None:
        self._attribute = attribute

    def __get__(self, instance: object, owner: type) -> Any:
        shadow = _SHADOWS.get(owner)
        if shadow is None:  # (two threads may both build one: the same, harmlessly)
            shadow = _SHADOWS[owner] = self._shadow(owner)
        return getattr(shadow, self._attribute)

    @staticmethod
    def _shadow(owner: type) -> Any:
        """A dataclass with ``owner``'s fields, defaults and ``repr`` flags."""
        import dataclasses
        import inspect

        params = inspect.signature(owner.__init__).parameters  # type: ignore[misc]
        hidden: frozenset[str] = owner._NOT_SHOWN  # type: ignore[attr-defined]
        specs = []
        for name in owner._FIELDS:  # type: ignore[attr-defined]
            default = params[name].default
            spec = dataclasses.field(repr=name not in hidden) \
                if default is inspect.Parameter.empty \
                else dataclasses.field(default=default, repr=name not in hidden)
            specs.append((name, params[name].annotation, spec))
        return dataclasses.make_dataclass(owner.__name__, specs,
                                          frozen=issubclass(owner, FrozenValue))


class Record:
    """Fields compared and shown like a dataclass's (``eq=True``, the default ``repr``);
    mutable, unhashable, like ``@dataclass(slots=True)``."""

    __slots__ = ()
    _FIELDS: tuple[str, ...] = ()
    _NOT_SHOWN: frozenset[str] = frozenset()  # ``field(repr=False)``
    __dataclass_fields__ = _LazyDataclassFields("__dataclass_fields__")
    __dataclass_params__ = _LazyDataclassFields("__dataclass_params__")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS
                          if name not in self._NOT_SHOWN)
        return f"{self.__class__.__qualname__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        # (pickle, copy: rebuilt through ``__init__``, as the fields are positional in order)
        return (self.__class__, self._values())


class FrozenValue(Record):
    """A ``@dataclass(frozen=True)``: assigning a field raises ``FrozenInstanceError``,
    equal values hash equal, and ``replace(**changes)`` makes a changed copy (through
    ``__init__``, so it is validated as the original was). ``__init__`` sets the fields
    with ``object.__setattr__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError  # (only on misuse)

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._values())

    def replace(self: _V, **changes: Any) -> _V:
        values = {name: getattr(self, name) for name in self._FIELDS}
        values.update(changes)
        return self.__class__(**values)
