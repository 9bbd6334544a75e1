"""gunicorn: the WSGI application of a synchronous, threaded, gevent or eventlet worker is
served inside ``TelemetryWSGIMiddleware`` unless a framework integration instruments it
(see ``_served_app``), so any WSGI application under gunicorn gets its server spans.

The patch wraps what ``Worker.load_wsgi`` loaded, in each worker, once. An ASGI worker
(uvicorn's ``UvicornWorker``) is left to the uvicorn integration, and the tornado worker
(which may serve a tornado application, not a WSGI one) to the tornado integration.
``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=gunicorn`` turns it off.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _served_app

_ORIGINAL = "_telemetryflow_original"
_WSGI_WORKERS = frozenset({"gunicorn.workers.sync", "gunicorn.workers.gthread",
                           "gunicorn.workers.ggevent", "gunicorn.workers.geventlet"})


def patch(module: Any, context: Any) -> None:
    """Wrap the application every WSGI worker loads (once per process)."""
    worker_class = module.Worker
    original = worker_class.load_wsgi
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already

    @functools.wraps(original)
    def load_wsgi(self: Any) -> None:
        original(self)
        if _serves_wsgi(type(self)):
            self.wsgi = _served_app.wsgi(self.wsgi, context, "gunicorn")

    setattr(load_wsgi, _ORIGINAL, original)
    worker_class.load_wsgi = load_wsgi


def _serves_wsgi(worker_class: type) -> bool:
    return any(cls.__module__ in _WSGI_WORKERS for cls in worker_class.__mro__)
