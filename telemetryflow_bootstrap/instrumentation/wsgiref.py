"""wsgiref: an application served with ``wsgiref.simple_server`` (``make_server``, and
servers built on it) is served inside ``TelemetryWSGIMiddleware`` unless a framework
integration instruments it (see ``_served_app``). The patch wraps what
``WSGIServer.set_app`` is given. ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=wsgiref`` turns
it off.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _served_app

_ORIGINAL = "_telemetryflow_original"


def patch(module: Any, context: Any) -> None:
    """Wrap the application every ``WSGIServer.set_app`` is given (once per process)."""
    server_class = module.WSGIServer
    original = server_class.set_app
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already

    @functools.wraps(original)
    def set_app(self: Any, application: Any) -> None:
        original(self, _served_app.wsgi(application, context, "wsgiref"))

    setattr(set_app, _ORIGINAL, original)
    server_class.set_app = set_app
