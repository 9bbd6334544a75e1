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
  ``SCRIPT_NAME`` prefix) and names the span ``{method} {http.route}``; a ``re_path()``
  pattern's leading ``^`` gives way to that ``/``, as Django itself drops it from a
  pattern included under another (``^articles/(?P<year>[0-9]{4})/$`` is reported as
  ``/articles/(?P<year>[0-9]{4})/$``), so every route starts with ``/`` whatever the kind
  of pattern;
- records an exception Django answers with a 5xx (event, ``error.type`` = its class,
  ERROR): a view's (``process_exception``) and one raised in another middleware, before
  URL resolution too (Django's ``got_request_exception`` signal; the route is then looked
  up from the path). Http404/PermissionDenied stay client errors;
- ends the span when the server closes the response, or, for a streamed body, when the
  server has taken its last chunk or the body raised (recorded as above, whatever status
  went out before: the response was cut short), and records one
  ``http.server.request.duration`` point (method, scheme, route, status code,
  error.type). Django's ASGI handler closes a response only after its body went out
  without an exception, so the body's own end is what ends a failed stream there.

Environment variables (read once, at patch time): ``TELEMETRYFLOW_EXCLUDED_URLS``,
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``/``_RESPONSE``/
``_SANITIZE_FIELDS``; ``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=django`` turns it off.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from opentelemetry import context as _otel_context

from .. import _diagnostics
from ..infrastructure.current_context import attach as _set_current
from ..infrastructure.current_context import reset as _reset_current
from ..middleware import REQUEST_KEY, SKIPPED, TelemetryMiddleware, _ServerRequest
from .wsgi import UnsampledRequest, open_environ

__all__ = ["TelemetryDjangoMiddleware"]

MIDDLEWARE_PATH = f"{__name__}.TelemetryDjangoMiddleware"
_ORIGINAL = "_telemetryflow_original"
_SIGNAL_UID = "telemetryflow.django.got_request_exception"
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
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        _connect_exception_signal()

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self.__acall__(request)
        meta = request.META
        outer = meta.get(REQUEST_KEY) or _outer_in_scope(request)
        if outer is not None:  # a middleware outside Django has the span (or skipped)
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
        outer = request.META.get(REQUEST_KEY) or _outer_in_scope(request)
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
                server_request = open_environ(self._core, meta, shortcut=True)
            else:
                server_request = open_environ(self._core, meta, scope.get("scheme", "http"),
                                              scope.get("http_version"), shortcut=True)
        except Exception as exc:
            _diagnostics.warn_every_minute(
                "django-open", f"Django request served uninstrumented ({type(exc).__name__}: "
                f"{exc})")
            return None
        if server_request is not None:
            meta[REQUEST_KEY] = server_request
        return server_request

    def _end_with(self, server_request: _ServerRequest, request: Any, response: Any) -> None:
        """End when the server closes the response (after the body went out); a streamed
        body also ends it when it runs out or raises (``_watch_stream``)."""
        try:
            _set_route(server_request, request)
            server_request.status_code = response.status_code
            if self._core.captures_response_headers \
                    and type(server_request) is not UnsampledRequest:  # (for the span)
                self._core.capture_response_headers(server_request, response.items())
            closers = getattr(response, "_resource_closers", None)
            if closers is not None and getattr(response, "streaming", False):
                _watch_stream(response, server_request)
        except Exception:
            closers = None
        if closers is not None:
            closers.append(server_request.finish)
        else:
            server_request.finish()


def _watch_stream(response: Any, server_request: _ServerRequest) -> None:
    """Put ``_watched``/``_awatched`` around the iterator a streaming response is sent
    from. Needed because the close that normally ends the span never comes when the body
    raises under Django's ASGI handler (it closes only after a clean send), which left the
    span open until the process exited.

    The private ``_iterator`` (Django 4.2-5.2), not the public ``streaming_content``
    setter: the setter would reset a ``FileResponse``'s ``file_to_stream`` and so turn off
    the server's ``wsgi.file_wrapper`` (sendfile). Its sync or async kind is kept, so
    Django sends it exactly as before; without the attribute the close still ends it."""
    iterator = getattr(response, "_iterator", None)
    if iterator is None:
        return
    if getattr(response, "is_async", False):
        response._iterator = _awatched(iterator, server_request)
    else:
        response._iterator = _watched(iterator, server_request)


def _watched(iterator: Iterator[Any], server_request: _ServerRequest) -> Iterator[Any]:
    """The chunks unchanged, each produced with the request's context current (the server
    pulls them after the view and the middleware have returned: without it, work done in a
    streaming generator would belong to no request, or start a trace of its own); the
    request ends after the last, or with the exception that cut the body short, or when
    whoever iterates drops it (a client gone)."""
    context = server_request.context
    try:
        while True:
            token = _set_current(context)
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except BaseException as error:
                server_request.finish(error)
                raise
            finally:
                _reset_current(token)
            yield chunk
    finally:
        server_request.finish()


async def _awatched(iterator: AsyncIterator[Any],
                    server_request: _ServerRequest) -> AsyncIterator[Any]:
    """``_watched`` for an async iterator (its steps too run with the request's context
    current). Cancelled is how Django's ASGI handler stops a
    body whose client went away: ended as is, as a client gone from a WSGI server or from
    Starlette (an event stream ends that way every time; not a server error)."""
    context = server_request.context
    try:
        while True:
            # (set and reset around one step: both happen in the task that awaits it)
            token = _set_current(context)
            try:
                chunk = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                server_request.finish(error)
                raise
            finally:
                _reset_current(token)
            yield chunk
    finally:
        server_request.finish()


def _connect_exception_signal() -> None:
    # (dispatch_uid: connected once, however many handlers build the middleware)
    from django.core.signals import got_request_exception

    got_request_exception.connect(_on_exception, weak=False, dispatch_uid=_SIGNAL_UID)


def _on_exception(sender: Any, request: Any = None, **_: Any) -> None:
    """``got_request_exception``: Django is about to answer an exception with a 500.

    Django sends it for every exception it answers with a 500, also one raised in a
    middleware, which ``process_exception`` never sees; it sends it from inside its
    ``except`` block, so the exception is ``sys.exc_info()`` (Django's test client reads it
    the same way; asgiref re-raises it in the thread an async handler hands over to). Such
    a request may fail before URL resolution: its route is then looked up from the path."""
    try:
        server_request = request.META.get(REQUEST_KEY) if request is not None else None
        if not isinstance(server_request, _ServerRequest):
            return
        exception = sys.exc_info()[1]
        if exception is not None:  # (the one answered, over what process_exception saw)
            server_request.error = exception
        if server_request.route is None:
            _set_route(server_request, request)
            if server_request.route is None:
                _resolve_route(server_request, request)
    except Exception:  # a receiver that raises would break Django's error handling
        pass


def _resolve_route(server_request: _ServerRequest, request: Any) -> None:
    from django.urls import Resolver404, resolve

    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return
    _set_route(server_request, request, match)


def _outer_in_scope(request: Any) -> Any:
    """The request an ASGI middleware outside Django opened (``TelemetryASGIMiddleware``,
    also uvicorn's patch around a user's ASGI wrapper of Django): it marks the ASGI scope,
    which Django's ``ASGIRequest`` keeps as ``scope`` (not in ``META``)."""
    scope = request.__dict__.get("scope")
    return scope.get(REQUEST_KEY) if type(scope) is dict else None


def _set_route(server_request: _ServerRequest | str, request: Any, match: Any = None) -> None:
    if server_request is SKIPPED or server_request.route is not None:  # type: ignore[union-attr]
        return
    if match is None:
        match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if route is None:
        return
    if route.startswith("^"):  # a re_path() (or an include() under one)
        route = route[1:]
    if not route.startswith("/"):
        route = "/" + route
    script_name = request.META.get("SCRIPT_NAME", "").rstrip("/")
    server_request.route = script_name + route if script_name else route
