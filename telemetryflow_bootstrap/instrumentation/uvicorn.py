"""uvicorn: the application uvicorn loads (``uvicorn app:app``, ``uvicorn.run``, gunicorn's
``UvicornWorker``) is served inside ``TelemetryASGIMiddleware`` unless a framework
integration instruments it (see ``_served_app``), so any ASGI application, and a WSGI one
served with ``--interface wsgi``, gets its server spans.

The patch wraps what ``Config.load`` loaded, once per load, inside uvicorn's own proxy-headers
and message-logging middlewares (so the span sees the request as the application does) and
around its ASGI 2 and WSGI adapters. ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=uvicorn``
turns it off.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import _diagnostics
from . import _served_app

_ORIGINAL = "_telemetryflow_original"
# uvicorn's middlewares that wrap the application (each keeps it as ``.app``)
_OUTER = frozenset({"ProxyHeadersMiddleware", "MessageLoggerMiddleware"})
_ADAPTERS = frozenset({"ASGI2Middleware", "WSGIMiddleware"})


def patch(module: Any, context: Any) -> None:
    """Wrap the application every ``Config.load`` loads (once per process)."""
    config_class = module.Config
    original = config_class.load
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already

    @functools.wraps(original)
    def load(self: Any) -> None:
        original(self)
        try:
            _wrap_loaded(self, context)
        except Exception as exc:  # an uvicorn laid out otherwise: serve it as it is
            _diagnostics.warn_every_minute(
                "uvicorn-app", f"uvicorn: application served without server spans "
                f"({type(exc).__name__}: {exc})")

    setattr(load, _ORIGINAL, original)
    config_class.load = load


def _wrap_loaded(config: Any, context: Any) -> None:
    holder, app = None, config.loaded_app
    while _is_uvicorn(app, _OUTER):
        holder, app = app, app.app
    user_app = app.app if _is_uvicorn(app, _ADAPTERS) else app
    if _served_app.instrumented_by_framework(user_app):
        return
    wrapped = _served_app.asgi(app, context, "uvicorn")
    if holder is None:
        config.loaded_app = wrapped
    else:
        holder.app = wrapped


def _is_uvicorn(app: Any, names: frozenset[str]) -> bool:
    cls = type(app)
    return cls.__name__ in names and cls.__module__.startswith("uvicorn.") and \
        hasattr(app, "app")
