"""The application a server is about to serve, wrapped for server spans unless a framework
integration of ours already instruments it.

Why at the server: a WSGI or ASGI application of a framework we have no integration for
(Bottle, Quart, Litestar, a hand-written callable) would otherwise get no server span at
all. The servers we patch (``gunicorn``, ``uvicorn``, ``wsgiref``, ``waitress``,
``hypercorn``) hand us the application they loaded, once, before the first request;
wrapping it there costs nothing per request beyond the middleware itself.

A Flask, Django, Starlette, FastAPI, Falcon or Pyramid application is left alone: its own
integration knows its routes and already makes its one span, and a second layer would only
add per-request cost. An application that is something else wrapped around one of these (a
user's middleware, werkzeug's ``DispatcherMiddleware``) is wrapped: the framework's
integration sees an outer span and only tells it the route.
"""

from __future__ import annotations

from typing import Any

from .. import _diagnostics

_FRAMEWORKS = frozenset({"flask", "django", "starlette", "fastapi", "falcon", "pyramid"})


def instrumented_by_framework(app: Any) -> bool:
    """Whether ``app`` (or the object a bound method belongs to) is an application of a
    framework we instrument, or one of our middlewares."""
    owner = getattr(app, "__self__", None)
    if owner is not None and not isinstance(owner, type):
        app = owner
    for cls in type(app).__mro__:
        module = cls.__module__ or ""
        if module.partition(".")[0] in _FRAMEWORKS:
            return True
        if module.startswith("telemetryflow_bootstrap."):
            return True
    return False


def wsgi(app: Any, context: Any, server: str) -> Any:
    """``app`` in a ``TelemetryWSGIMiddleware``, or ``app`` itself (see module)."""
    return _wrapped(app, context, server, "wsgi", "TelemetryWSGIMiddleware")


def asgi(app: Any, context: Any, server: str) -> Any:
    """``app`` in a ``TelemetryASGIMiddleware``, or ``app`` itself (see module)."""
    return _wrapped(app, context, server, "asgi", "TelemetryASGIMiddleware")


def _wrapped(app: Any, context: Any, server: str, module: str, middleware: str) -> Any:
    if app is None or instrumented_by_framework(app):
        return app
    try:
        from importlib import import_module

        wrapper = getattr(import_module(f"{__package__}.{module}"), middleware)
        return wrapper(app, client=context)
    except Exception as exc:  # never keep the server from serving
        _diagnostics.warn_every_minute(
            f"{server}-app", f"{server}: application served without server spans "
            f"({type(exc).__name__}: {exc})")
        return app
