"""Wrapping one method of a class, ours recognisable under anyone else's wrapper.

Why not wrapt here (the database proxies still use it): importing wrapt 2.5 imports asyncio
and importlib.metadata, 20-50 ms for every process that does, and the HTTP clients we wrap
are imported by most programs (``http.client`` by ``urllib.request`` alone), as is
``multiprocessing``. A wrapper here is a plain function. At each call it binds the method it
replaced to the instance, as a method lookup on the class would have, and calls
``wrapper(bound, instance, args, kwargs)`` (the signature of wrapt's ``FunctionWrapper``, so
the wrapper bodies are unchanged). ``functools.update_wrapper`` gives it the method's name,
docstring and ``__wrapped__`` (``inspect.signature`` follows it); a coroutine method gets a
coroutine wrapper, so ``inspect.iscoroutinefunction`` still says so.

``stand_aside``: a check asked before anything else, at every call; when true, the method it
replaced runs directly. Why: an HTTP layer under another's span (urllib3 under requests)
only ever stands aside, and paying for its wrapper's frames and a second packing of the
arguments on every call added ~2 µs to each ``requests`` call for nothing.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import Callable
from typing import Any

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

# Our wrappers by identity (a WeakSet compares by equality, and a wrapt proxy around one
# of ours is equal to it)
_ours: dict[int, weakref.ref[Callable[..., Any]]] = {}
_MAX_DEPTH = 32  # wrappers of wrappers looked through (and a guard against cycles)


def wrap_once(owner: type, name: str, wrapper: Wrapper,
              stand_aside: Callable[[], bool] | None = None) -> Callable[..., Any] | None:
    """Wrap ``owner.name`` (where the class itself defines it) unless one of our wrappers
    is there already, under others or not; returns the new method, None when already done.
    ``stand_aside``: see the module."""
    current = vars(owner).get(name)
    if current is None:
        raise AttributeError(f"{owner.__qualname__}.{name} not found")
    if _find_ours(current) is not None:
        return None
    method = _method(current, wrapper, stand_aside)
    setattr(owner, name, method)
    return method


def our_wrapper(owner: type, name: str) -> Callable[..., Any] | None:
    """Our wrapper on ``owner.name`` (possibly under someone else's), or None."""
    current = vars(owner).get(name)
    return None if current is None else _find_ours(current)


def unwrap(owner: type, name: str, method: Callable[..., Any]) -> None:
    """Put back what ``method`` (a ``wrap_once`` result) replaced; it must still be the
    class's own attribute (tests, and anyone undoing the patch)."""
    if vars(owner).get(name) is not method or not _is_ours(method):
        raise ValueError(f"{owner.__qualname__}.{name} is not that wrapper of ours")
    setattr(owner, name, method.__wrapped__)  # type: ignore[attr-defined]


def wrapper_of(method: Callable[..., Any]) -> Wrapper:
    """The ``wrapper`` a method of ours calls."""
    return method._telemetryflow_wrapper  # type: ignore[attr-defined,no-any-return]


def _method(current: Any, wrapper: Wrapper,
            stand_aside: Callable[[], bool] | None) -> Callable[..., Any]:
    get = getattr(current, "__get__", None)
    if get is None:  # not a descriptor: a plain callable stored on the class
        def get(instance: Any, owner: Any, current: Any = current) -> Any:
            return functools.partial(current, instance)

    if inspect.iscoroutinefunction(current):
        if stand_aside is None:
            async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
                return await wrapper(get(self, type(self)), self, args, kwargs)
        else:
            async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
                if stand_aside():
                    return await get(self, type(self))(*args, **kwargs)
                return await wrapper(get(self, type(self)), self, args, kwargs)
    elif stand_aside is None:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return wrapper(get(self, type(self)), self, args, kwargs)
    elif inspect.isfunction(current):  # (called as the class would: no bound method made)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            if stand_aside():
                return current(self, *args, **kwargs)
            return wrapper(get(self, type(self)), self, args, kwargs)
    else:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            if stand_aside():
                return get(self, type(self))(*args, **kwargs)
            return wrapper(get(self, type(self)), self, args, kwargs)

    functools.update_wrapper(method, current)
    method._telemetryflow_wrapper = wrapper  # type: ignore[attr-defined]
    key = id(method)
    _ours[key] = weakref.ref(method, lambda _ref, key=key: _ours.pop(key, None))
    return method


def _is_ours(candidate: Any) -> bool:
    known = _ours.get(id(candidate))
    return known is not None and known() is candidate


def _find_ours(candidate: Any) -> Callable[..., Any] | None:
    for _ in range(_MAX_DEPTH):
        if _is_ours(candidate):
            return candidate  # type: ignore[no-any-return]
        candidate = getattr(candidate, "__wrapped__", None)
        if candidate is None:
            return None
    return None
