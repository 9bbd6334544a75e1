"""``_method_wrappers``: a method wrapped without wrapt behaves as the method did, and ours
is found (and never doubled) under anyone else's wrapper."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import pytest
import wrapt

from telemetryflow_bootstrap.instrumentation import _method_wrappers as mw


def _recording(calls: list[tuple[Any, ...]]) -> mw.Wrapper:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        calls.append((wrapped, instance, args, kwargs))
        return wrapped(*args, **kwargs)

    return wrapper


def _fresh_class() -> type:
    class Client:
        """A client."""

        def __init__(self, name: str) -> None:
            self.name = name

        def send(self, request: Any, *, timeout: float = 1.0) -> tuple[Any, ...]:
            """Send it."""
            if request == "boom":
                raise KeyError(request)
            return (self.name, request, timeout)

        async def send_async(self, request: Any) -> tuple[Any, ...]:
            return (self.name, request)

    return Client


def test_the_wrapper_gets_the_bound_method_the_instance_and_the_arguments() -> None:
    client_type = _fresh_class()
    original = vars(client_type)["send"]
    calls: list[tuple[Any, ...]] = []
    wrapper = _recording(calls)
    method = mw.wrap_once(client_type, "send", wrapper)
    assert method is not None and vars(client_type)["send"] is method
    assert mw.wrapper_of(method) is wrapper
    client = client_type("a")
    assert client.send("r", timeout=2.0) == ("a", "r", 2.0)
    [(wrapped, instance, args, kwargs)] = calls
    assert instance is client and args == ("r",) and kwargs == {"timeout": 2.0}
    assert wrapped.__func__ is original and wrapped.__self__ is client
    # looks like the method it replaced
    assert client_type.send.__name__ == "send" and client_type.send.__doc__ == "Send it."
    assert inspect.signature(client_type.send) == inspect.signature(original)


def test_exceptions_and_results_pass_through_as_the_same_objects() -> None:
    client_type = _fresh_class()
    mw.wrap_once(client_type, "send", _recording([]))
    with pytest.raises(KeyError) as raised:
        client_type("a").send("boom")
    assert raised.value.args == ("boom",)
    marker = object()
    assert client_type("a").send(marker)[1] is marker


def test_a_subclass_calling_super_goes_through_the_wrapper_with_its_own_instance() -> None:
    client_type = _fresh_class()
    calls: list[tuple[Any, ...]] = []
    mw.wrap_once(client_type, "send", _recording(calls))

    class Sub(client_type):  # type: ignore[misc,valid-type]
        def send(self, request: Any, **kwargs: Any) -> tuple[Any, ...]:
            return super().send(request + "!", **kwargs)

    sub = Sub("s")
    assert sub.send("r") == ("s", "r!", 1.0)
    assert calls[0][1] is sub


def _recording_async(calls: list[tuple[Any, ...]]) -> mw.Wrapper:
    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        calls.append(args)
        return await wrapped(*args, **kwargs)

    return wrapper


def test_a_coroutine_method_stays_a_coroutine_function() -> None:
    client_type = _fresh_class()
    calls: list[tuple[Any, ...]] = []
    mw.wrap_once(client_type, "send_async", _recording_async(calls))
    assert inspect.iscoroutinefunction(client_type.send_async)
    assert asyncio.run(client_type("a").send_async("r")) == ("a", "r")
    assert calls == [("r",)]


def test_wrapped_once_only_even_under_someone_elses_wrappers() -> None:
    """A second patch finds ours under a wrapt wrapper and under a functools.wraps one."""
    client_type = _fresh_class()
    calls: list[tuple[Any, ...]] = []
    ours = mw.wrap_once(client_type, "send", _recording(calls))
    assert mw.wrap_once(client_type, "send", _recording(calls)) is None

    def theirs(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(client_type, "send", theirs)
    assert mw.our_wrapper(client_type, "send") is ours
    assert mw.wrap_once(client_type, "send", _recording(calls)) is None

    current = vars(client_type)["send"]

    @functools.wraps(current)
    def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
        return current.__get__(self, type(self))(*args, **kwargs)

    client_type.send = plain  # type: ignore[method-assign]
    assert mw.our_wrapper(client_type, "send") is ours
    assert mw.wrap_once(client_type, "send", _recording(calls)) is None
    assert client_type("a").send("r") == ("a", "r", 1.0)
    assert len(calls) == 1  # ours ran once, under both others


def test_unwrap_puts_back_the_very_original() -> None:
    client_type = _fresh_class()
    original = vars(client_type)["send"]
    ours = mw.wrap_once(client_type, "send", _recording([]))
    assert ours is not None
    mw.unwrap(client_type, "send", ours)
    assert vars(client_type)["send"] is original
    assert mw.our_wrapper(client_type, "send") is None
    with pytest.raises(ValueError, match="not that wrapper of ours"):
        mw.unwrap(client_type, "send", ours)


def test_a_missing_method_is_an_error_naming_it() -> None:
    with pytest.raises(AttributeError, match=r"Client\.nothing not found"):
        mw.wrap_once(_fresh_class(), "nothing", _recording([]))


def test_a_callable_stored_on_the_class_that_is_no_descriptor() -> None:
    """An object with ``__call__`` but no ``__get__`` is called with the instance first,
    as a method lookup would do for a function (and not for this object): ours binds it."""

    class Callable_:
        def __call__(self, instance: Any, value: Any) -> Any:
            return (instance.name, value)

    client_type = _fresh_class()
    client_type.handle = Callable_()  # type: ignore[attr-defined]
    calls: list[tuple[Any, ...]] = []
    mw.wrap_once(client_type, "handle", _recording(calls))
    client = client_type("a")
    assert client.handle(5) == ("a", 5)
    assert calls[0][1] is client


@pytest.mark.parametrize("kind", ["function", "static", "not a descriptor"])
def test_stand_aside_runs_the_original_directly_with_the_same_outcome(kind: str) -> None:
    """``stand_aside`` true: the wrapper is not called and the method it replaced gets the
    very arguments; false: the wrapper runs. Results and exceptions pass through either way,
    for a plain function, a staticmethod and a callable that is no descriptor alike."""

    class Callable_:
        def __call__(self, instance: Any, request: Any, *, timeout: float = 1.0) -> Any:
            if request == "boom":
                raise KeyError(request)
            return (instance.name, request, timeout)

    client_type = _fresh_class()
    if kind == "static":
        def static_send(request: Any, *, timeout: float = 1.0) -> Any:
            if request == "boom":
                raise KeyError(request)
            return ("static", request, timeout)

        client_type.send = staticmethod(static_send)  # type: ignore[method-assign]
    elif kind == "not a descriptor":
        client_type.send = Callable_()  # type: ignore[method-assign]
    calls: list[tuple[Any, ...]] = []
    aside = [True]
    mw.wrap_once(client_type, "send", _recording(calls), stand_aside=lambda: aside[0])
    client = client_type("a")
    expected_name = "static" if kind == "static" else "a"
    assert client.send("r", timeout=3.0) == (expected_name, "r", 3.0)
    with pytest.raises(KeyError):
        client.send("boom")
    assert calls == []
    aside[0] = False
    assert client.send("r") == (expected_name, "r", 1.0)
    assert len(calls) == 1 and calls[0][1] is client and calls[0][2] == ("r",)
    assert mw.our_wrapper(client_type, "send") is not None


def test_stand_aside_on_a_coroutine_method() -> None:
    client_type = _fresh_class()
    calls: list[tuple[Any, ...]] = []
    aside = [True]
    mw.wrap_once(client_type, "send_async", _recording_async(calls),
                 stand_aside=lambda: aside[0])
    assert inspect.iscoroutinefunction(client_type.send_async)
    assert asyncio.run(client_type("a").send_async("r")) == ("a", "r")
    assert calls == []
    aside[0] = False
    assert asyncio.run(client_type("a").send_async("q")) == ("a", "q")
    assert calls == [("q",)]
