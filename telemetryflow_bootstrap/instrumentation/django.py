"""Django: every project gets a SERVER span per request, without code changes.

The patch wraps ``BaseHandler.load_middleware`` so that, whenever Django builds its middleware
chain (``runserver``, any WSGI or ASGI server, the test client), ``TelemetryDjangoMiddleware``
is first in ``settings.MIDDLEWARE`` (unless it is listed already: added by hand it is not
added twice). Being outermost it sees every request, sync or async, and:

- opens one SERVER span continuing the incoming ``traceparent`` (global propagator), with
  the attributes of ``instrumentation.wsgi`` (method, ``url.scheme``, ``url.path``,
  ``url.query`` redacted, ``server.address``/``server.port``, ``network.protocol.version``,
  ``user_agent.original``, ``client.address``, ``http.response.status_code``,
  ``error.type``, captured headers when configured);
- sets ``http.route`` from ``request.resolver_match.route`` (with a leading ``/`` and the
  ``SCRIPT_NAME`` prefix) and names the span ``{method} {http.route}``;
- records a view's exception (``process_exception``: event, ``error.type``, ERROR) when
  Django answers it with a 5xx (Http404/PermissionDenied stay client errors);
- ends the span when the server closes the response, i.e. after a streamed body was sent,
  and records one ``http.server.request.duration`` point (method, scheme, route, status
  code, error.type).

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=django`` turns it off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from opentelemetry import context as _otel_context

from .. import _diagnostics
from ..middleware import REQUEST_KEY, SKIPPED, TelemetryMiddleware, _ServerRequest
from .wsgi import UnsampledRequest, open_environ, shortcut_for

__all__ = ["TelemetryDjangoMiddleware"]

MIDDLEWARE_PATH = f"{__name__}.TelemetryDjangoMiddleware"
_ORIGINAL = "_telemetryflow_original"
_attach = _otel_context.attach
_detach = _otel_context.detach
_core: TelemetryMiddleware | None = None  # the patch's; hand-added middleware builds its own


def patch(module: Any, context: Any) -> None:
    """Put ``TelemetryDjangoMiddleware`` first whenever Django loads its middleware."""
    global _core
    handler_class = module.BaseHandler
    original = handler_class.load_middleware
    if getattr(original, _ORIGINAL, None) is not None:
        return
    _core = TelemetryMiddleware(context)

    @functools.wraps(original)
    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> Any:
        _insert_middleware()
        return original(self, *args, **kwargs)

    setattr(load_middleware, _ORIGINAL, original)
    handler_class.load_middleware = load_middleware


def _insert_middleware() -> None:
    try:
        from django.conf import settings

        current = settings.MIDDLEWARE
        if current is None or MIDDLEWARE_PATH in current:
            return
        updated = [MIDDLEWARE_PATH, *current]
        settings.MIDDLEWARE = tuple(updated) if isinstance(current, tuple) else updated
    except Exception as exc:  # Django starts; it runs uninstrumented
        _diagnostics.warn_every_minute(
            "django-middleware", f"could not add the Django middleware ({type(exc).__name__}: "
            f"{exc}); Django runs uninstrumented")


class TelemetryDjangoMiddleware:
    """The Django middleware; added automatically under ``telemetryflow-run``, or list
    ``"telemetryflow_bootstrap.instrumentation.django.TelemetryDjangoMiddleware"`` first in
    ``MIDDLEWARE`` yourself."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        from asgiref.sync import iscoroutinefunction, markcoroutinefunction

        self.get_response = get_response
        self._core = _core if _core is not None else TelemetryMiddleware(None)
        self._shortcut = shortcut_for(self._core)
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        meta = request.META
        outer = meta.get(REQUEST_KEY)
        if outer is not None:  # a WSGI middleware outside Django has the span (or skipped)
            response = self.get_response(request)
            _set_route(outer, request)
            return response
        server_request = self._open(request)
        if server_request is None:
            return self.get_response(request)
        token = _attach(server_request.context)
        try:
            response = self.get_response(request)
        except BaseException as error:
            _set_route(server_request, request)
            server_request.finish(error)
            raise
        finally:
            _detach(token)
        self._end_with(server_request, request, response)
        return response

    async def __acall__(self, request: Any) -> Any:
        outer = request.META.get(REQUEST_KEY)
        if outer is not None:
            response = await self.get_response(request)
            _set_route(outer, request)
            return response
        server_request = self._open(request)
        if server_request is None:
            return await self.get_response(request)
        token = _attach(server_request.context)
        try:
            response = await self.get_response(request)
        except BaseException as error:
            _set_route(server_request, request)
            server_request.finish(error)
            raise
        finally:
            _detach(token)
        self._end_with(server_request, request, response)
        return response

    def process_exception(self, request: Any, exception: BaseException) -> None:
        server_request = request.META.get(REQUEST_KEY)
        if server_request is not None and server_request is not SKIPPED:
            server_request.error = exception

    def _open(self, request: Any) -> _ServerRequest | None:
        try:
            meta = request.META
            scope = getattr(request, "scope", None)  # ASGIRequest: META has no scheme
            if scope is None:
                server_request = open_environ(self._core, meta, shortcut=self._shortcut)
            else:
                server_request = open_environ(self._core, meta, scope.get("scheme", "http"),
                                              scope.get("http_version"), self._shortcut)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "django-open", f"Django request served uninstrumented ({type(exc).__name__}: "
                f"{exc})")
            return None
        if server_request is not None:
            meta[REQUEST_KEY] = server_request
        return server_request

    def _end_with(self, server_request: _ServerRequest, request: Any, response: Any) -> None:
        """End when the server closes the response (after the body went out)."""
        try:
            _set_route(server_request, request)
            server_request.status_code = response.status_code
            if self._core.captures_response_headers \
                    and type(server_request) is not UnsampledRequest:  # (for the span)
                self._core.capture_response_headers(server_request, response.items())
            closers = getattr(response, "_resource_closers", None)
        except Exception:
            closers = None
        if closers is not None:
            closers.append(server_request.finish)
        else:
            server_request.finish()


def _set_route(server_request: _ServerRequest | str, request: Any) -> None:
    if server_request is SKIPPED or server_request.route is not None:  # type: ignore[union-attr]
        return
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if route is None:
        return
    if not route.startswith(("/", "^")):
        route = "/" + route
    script_name = request.META.get("SCRIPT_NAME", "").rstrip("/")
    server_request.route = script_name + route if script_name else route
