"""OpenTelemetry's current context, read and set without the API's Python layers.

Why: ``opentelemetry.context.get_current``/``attach``/``detach`` each pass through two Python
functions (the API's, then the runtime context's method) before reaching the one
``ContextVar`` that holds the context. A server request reads the context and sets it three
times or more; in a running program every such Python frame costs ~0.3 µs (its code is cold
again by the next request), which is a large share of what an unsampled request adds.

With OpenTelemetry's standard runtime context (the default: ``OTEL_PYTHON_CONTEXT`` unset or
``contextvars_context``) these are that ``ContextVar``'s own C methods, so a context set here
is the one the API reads, and the other way round. Any other runtime context (an entry point
of its own) gets the API's functions. The runtime context is chosen once, when
``opentelemetry.context`` is imported, and the API offers no way to change it later.

``reset`` is the ``ContextVar``'s: unlike ``opentelemetry.context.detach`` it raises when the
token was made in another ``contextvars.Context`` (another task or thread), so it is only for
a token set and reset in the same call.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as _api
from opentelemetry.context.context import Context

__all__ = ["attach", "get_current", "is_direct", "reset"]


def _direct_var() -> Any:
    """The ``ContextVar`` behind the API's runtime context, when it is the standard one."""
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    except ImportError:  # pragma: no cover - an API laid out differently
        return None
    runtime = getattr(_api, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if callable(getattr(var, "set", None)) else None


_VAR = _direct_var()
is_direct = _VAR is not None

get_current: Callable[[], Context]
attach: Callable[[Context], Token[Context]]
reset: Callable[[Token[Context]], None]
if _VAR is not None:
    get_current, attach, reset = _VAR.get, _VAR.set, _VAR.reset
else:  # another runtime context: the API's own calls
    get_current, attach = _api.get_current, _api.attach

    def reset(token: Token[Context]) -> None:
        _api._RUNTIME_CONTEXT.detach(token)
