"""Registry entries for the HTTP server instrumentations (see registry.Instrumentation).

FastAPI is a Starlette application but has an entry of its own: its ``__call__`` must be
wrapped too (it decides about FastAPI's native telemetry before Starlette runs), and when
``starlette.applications`` finishes importing on fastapi's behalf, ``fastapi.applications``
is still half-initialised; the ``fastapi`` package finishing is the moment to patch it.
"""

from __future__ import annotations

from .registry import Instrumentation

_PACKAGE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation("flask", ("flask",), f"{_PACKAGE}.flask:patch", "flask", ">=2.2"),
    Instrumentation("django", ("django.core.handlers.base",), f"{_PACKAGE}.django:patch",
                    "django", ">=4.2"),
    Instrumentation("starlette", ("starlette.applications",), f"{_PACKAGE}.starlette:patch",
                    "starlette", ">=0.27"),
    Instrumentation("fastapi", ("fastapi",), f"{_PACKAGE}.starlette:patch_fastapi",
                    "fastapi", ">=0.100"),
    # (the ASGI App too: the entry patches it when falcon.asgi.app is imported)
    Instrumentation("falcon", ("falcon.app",), f"{_PACKAGE}.falcon:patch", "falcon", ">=3.1"),
    Instrumentation("pyramid", ("pyramid.router",), f"{_PACKAGE}.pyramid:patch", "pyramid",
                    ">=2.0"),
    # (named as the contrib instrumentor's entry point; aiohttp serves its applications
    # itself, so its request handler is the one place to patch)
    Instrumentation("aiohttp-server", ("aiohttp.web_protocol",),
                    f"{_PACKAGE}.aiohttp_server:patch", "aiohttp", ">=3.9"),
    # (named as the contrib instrumentor's entry point, which also covers both sides:
    # tornado.web's server, tornado.httpclient's client, each patched when imported)
    Instrumentation("tornado", ("tornado.web", "tornado.httpclient"),
                    f"{_PACKAGE}.tornado:patch", "tornado", ">=6.1"),
    # Servers: any other application they serve (see _served_app).
    Instrumentation("gunicorn", ("gunicorn.workers.base",), f"{_PACKAGE}.gunicorn:patch",
                    "gunicorn", ">=21"),
    Instrumentation("uvicorn", ("uvicorn.config",), f"{_PACKAGE}.uvicorn:patch",
                    "uvicorn", ">=0.23"),
    Instrumentation("wsgiref", ("wsgiref.simple_server",), f"{_PACKAGE}.wsgiref:patch"),
    Instrumentation("waitress", ("waitress.server",), f"{_PACKAGE}.waitress:patch",
                    "waitress", ">=2.0"),
    # (wrap_app: where every way of serving, the CLI's workers and serve() alike, passes)
    Instrumentation("hypercorn", ("hypercorn.utils",), f"{_PACKAGE}.hypercorn:patch",
                    "hypercorn", ">=0.14"),
)
