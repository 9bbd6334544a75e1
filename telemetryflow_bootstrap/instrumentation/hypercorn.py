"""hypercorn: the application hypercorn serves (``hypercorn app:app``, each ``--workers``
process, ``hypercorn.asyncio.serve``; ``hypercorn.trio.serve`` and the trio worker by the same
path, untested) is served inside ``TelemetryASGIMiddleware``, or ``TelemetryWSGIMiddleware``
for a WSGI application, unless a framework integration instruments it (see
``_served_app``), so any application under hypercorn gets its server spans, over HTTP/1.1
and HTTP/2 alike: the spans, attributes, duration metric and environment variables of
``instrumentation.asgi`` (``instrumentation.wsgi``).

The patch post-processes ``hypercorn.utils.wrap_app``, the one place where every way of
serving turns the program's application into hypercorn's ``ASGIWrapper``/``WSGIWrapper``:
the wrapper's ``.app`` is replaced, so the wrapper classes themselves stay untouched (the
``AsyncioWSGIMiddleware`` a program builds uses ``WSGIWrapper`` too, and may be served by
another server that makes the span already). ``hypercorn.asyncio`` and ``hypercorn.trio``
import ``wrap_app`` by name: a copy bound before the patch ran (the program imported them
before telemetry started) is replaced as well.

Two layouts of hypercorn's own middlewares are looked into. ``ProxyFixMiddleware`` deep-copies
the scope it rewrites: our middleware goes inside it (a request object of ours in the scope
must not be copied), which also lets the span see the client and scheme it restores. An
``AsyncioWSGIMiddleware``/``TrioWSGIMiddleware`` gets its WSGI application wrapped instead, so a
Flask application inside keeps its own one span. ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=
hypercorn`` turns it off.

At SIGTERM a single hypercorn process finishes the requests under way (their spans are
exported); with ``--workers`` the master terminates the other workers as soon as one has
stopped, and a request still under way in one of them is cut, with no span.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from .. import _diagnostics
from . import _served_app

_ORIGINAL = "_telemetryflow_original"
_IMPORTERS = ("hypercorn.asyncio", "hypercorn.trio")  # (``from ..utils import wrap_app``)


def patch(module: Any, context: Any) -> None:
    """Wrap what every ``wrap_app`` call returns (once per process)."""
    original = module.wrap_app
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already

    @functools.wraps(original)
    def wrap_app(*args: Any, **kwargs: Any) -> Any:
        wrapper = original(*args, **kwargs)
        try:
            _wrap_served(wrapper, context)
        except Exception as exc:  # a hypercorn laid out otherwise: serve it as it is
            _diagnostics.warn_every_minute(
                "hypercorn-app", f"hypercorn: application served without server spans "
                f"({type(exc).__name__}: {exc})")
        return wrapper

    setattr(wrap_app, _ORIGINAL, original)
    module.wrap_app = wrap_app
    for name in _IMPORTERS:
        importer = sys.modules.get(name)
        if importer is not None and getattr(importer, "wrap_app", None) is original:
            importer.wrap_app = wrap_app


def _wrap_served(wrapper: Any, context: Any) -> None:
    kind = type(wrapper).__name__
    if kind == "WSGIWrapper":
        wrapper.app = _served_app.wsgi(wrapper.app, context, "hypercorn")
        return
    if kind != "ASGIWrapper":
        return
    holder, app = wrapper, wrapper.app
    while _is_hypercorn(app, "ProxyFixMiddleware"):
        holder, app = app, app.app
    inner = getattr(app, "wsgi_app", None)
    if _is_hypercorn(app, "AsyncioWSGIMiddleware", "TrioWSGIMiddleware") and \
            type(inner).__name__ == "WSGIWrapper":
        inner.app = _served_app.wsgi(inner.app, context, "hypercorn")
        return
    holder.app = _served_app.asgi(app, context, "hypercorn")


def _is_hypercorn(app: Any, *names: str) -> bool:
    cls = type(app)
    return cls.__name__ in names and cls.__module__.startswith("hypercorn.")
