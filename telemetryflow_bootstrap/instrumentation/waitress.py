"""waitress: the WSGI application a waitress server serves (``waitress-serve app:app``,
``waitress.serve(app)``, ``create_server``, webtest's ``StopableWSGIServer``) is served
inside ``TelemetryWSGIMiddleware`` unless a framework integration instruments it (see
``_served_app``), so any WSGI application under waitress gets its server spans: the spans,
attributes, duration metric and environment variables of ``instrumentation.wsgi``.

The patch wraps the application ``BaseWSGIServer.__init__`` is given, every server class
built on it included, before waitress puts its own proxy-headers middleware around it
(``--trusted-proxy``): the span sees the request as the application does (``client.address``
and ``url.scheme`` from the trusted ``X-Forwarded-*`` headers; untrusted ones cleared).
Each listening socket is a server of its own (``--listen`` twice): each wraps the
application in a middleware of its own, which only costs their construction.
``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=waitress`` turns it off.

waitress has no graceful stop: a request under way at SIGTERM is cut, and its span is not
recorded.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _served_app

_ORIGINAL = "_telemetryflow_original"


def patch(module: Any, context: Any) -> None:
    """Wrap the application every waitress server is built with (once per process)."""
    server_class = module.BaseWSGIServer
    original = server_class.__init__
    if getattr(original, _ORIGINAL, None) is not None:
        return  # patched already

    @functools.wraps(original)
    def __init__(self: Any, application: Any, *args: Any, **kwargs: Any) -> None:
        original(self, _served_app.wsgi(application, context, "waitress"), *args, **kwargs)

    setattr(__init__, _ORIGINAL, original)
    server_class.__init__ = __init__
