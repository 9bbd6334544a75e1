"""``tornado``: every ``tornado.web.Application`` served by tornado's own ``HTTPServer`` gets a
SERVER span per HTTP request (tornado is neither WSGI nor ASGI: no other patch of ours sees
its requests), and every request ``AsyncHTTPClient``/``HTTPClient`` sends gets a CLIENT span
(the client side: ``_tornado_client``). One registry entry, ``tornado`` (the contrib
instrumentor's entry point name, which also covers both sides), triggered by the import of
``tornado.web`` or ``tornado.httpclient``; each side is patched when its module is imported.

Produces (server)
    one SERVER span per request, named ``{method} {http.route}`` (``{method}`` when no rule
    matched: tornado's 404 ``ErrorHandler``, a ``default_handler_class``), continuing the
    incoming ``traceparent`` (global propagator), and one ``http.server.request.duration``
    point (seconds; ``http.request.method``, ``url.scheme``, ``http.route``,
    ``http.response.status_code``, ``error.type``).
Route
    The regular expression of the ``URLSpec`` (or ``Rule(PathMatches(...))``) that matched,
    as the application wrote it: ``/items/([0-9]+)``, ``/users/(?P<name>[^/]+)`` (the ``$``
    tornado appends, or the application wrote, left out). Why not the reversible form
    tornado keeps for ``reverse_url`` (``/items/%s``): it exists only for some patterns,
    loses the group's constraint, and its ``%s`` means nothing to a reader; the pattern is
    what the application's author wrote and greps for, as Django's ``re_path()`` routes are
    reported. A rule nested in another router (``Rule(PathMatches("/api.*"), [...])``,
    ``add_handlers`` host groups) is named by the innermost pattern, which tornado matches
    against the whole path. Found per request with one dict lookup (handler class → its
    rules, built once per application and again when rules are added); only a handler
    class listed under several rules has them matched again to tell which one it was.
Attributes
    the ones ``instrumentation.asgi`` records: ``http.request.method`` (+ ``_original``),
    ``url.scheme``, ``url.path``, ``url.query`` (signature-like values redacted),
    ``server.address``, ``server.port`` (``Host`` header), ``network.protocol.version``,
    ``user_agent.original``, ``client.address`` (first ``X-Forwarded-For`` entry, else the
    peer), ``http.response.status_code``, ``http.route``, ``error.type``, captured headers
    when configured.
When it ends
    The span starts when the request's headers have arrived (so receiving the body is part
    of it) and ends when the handler's ``finish()`` has handed the response to the
    connection (``auto_finish`` or the handler's own call; a response streamed with
    ``flush()`` ends at its ``finish()``). The handler (``prepare``, ``get``/``post``…,
    sync or coroutine, ``on_finish``) runs with the span current, so an HTTP call made
    there is its child.
Errors
    ``send_error(code)`` and a raised ``HTTPError(code)`` give their status: a 4xx is not the
    server's error, a 5xx is (``error.type`` the exception's fully-qualified class name,
    ``tornado.web.HTTPError``, or the code when no exception was raised). Any other
    exception, which tornado answers with a 500, is recorded (exception event, status ERROR,
    ``error.type`` its fully-qualified class name, a built-in's bare). One raised after a
    streamed response had started (``flush()``: tornado then ends the response as it is,
    its body cut short) is recorded too, with the status that went out (as under ASGI).
    ``raise Finish()`` is no error. A client that went away before the response started
    (mid-upload, or while the handler worked) gives ``error.type`` ``ClientDisconnect`` and
    no status code.
Not traced
    A ``WebSocketHandler`` gets no span of ours (it would last as long as the session), but
    its handler runs in the trace its handshake names (none without one). A request tornado
    cannot parse (answered 400 by tornado itself), and a handler that never calls
    ``finish()`` (its span is never ended, so never exported). A ``stream_request_body``
    handler's ``data_received`` runs outside the span (tornado calls it from the
    connection's reader).
Cost
    A request the sampler drops (sample rate 0, an unsampled ``traceparent``) builds no
    span attributes and starts no span (``_http_common.SamplerShortcut``): it keeps its
    duration point, and a non-recording span carrying the trace to what it calls.
How
    ``web._HandlerDelegate`` (one per request, made by the ``Application`` router for the
    handler class that matched): ``headers_received`` opens the request, ``execute`` (which
    builds the handler and starts its ``_execute`` task) runs with its context attached,
    so the task inherits it, ``on_connection_close`` (the connection closed before the
    request was read whole) ends it. ``RequestHandler.finish`` ends it;
    ``RequestHandler._handle_request_exception`` tells it which exception was answered.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import sys
from typing import Any

from .. import _diagnostics
from ..infrastructure.current_context import attach, reset
from ..middleware import _GETTER, TelemetryMiddleware, _ServerRequest
from ._error_type import CLIENT_DISCONNECT
from ._http_common import EMPTY_CONTEXT, suppressed
from .http_client import argument
from .wsgi import UnsampledRequest, unsampled_request, url_excluded

# On the HTTPServerRequest: its _ServerRequest, or the context a WebSocket session runs in.
_SERVED = "_telemetryflow_served"
_SESSION = "_telemetryflow_session"
# On the Application: (rule counts, {handler class: _Entry}) (see _Routes).
_ROUTES = "_telemetryflow_routes"
_VERSIONS = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2": "2", "HTTP/2.0": "2",
             "HTTP/0.9": "0.9"}
_MAX_DEPTH = 16  # routers nested in routers, looked through


def patch(module: Any, context: Any) -> None:
    """The ``tornado`` entry (``module``: ``tornado.web`` or ``tornado.httpclient``, whichever
    the program imported first): the server side when ``tornado.web`` is imported, the client
    side when ``tornado.simple_httpclient`` is (tornado imports it at the first
    ``AsyncHTTPClient()``), now for whichever already is."""
    from ._import_hooks import when_imported

    when_imported("tornado.web", _guarded(patch_server, context, "its server"))
    when_imported("tornado.simple_httpclient",
                  _guarded(_patch_client, context, "its HTTP client"))


def _patch_client(module: Any, context: Any) -> None:
    from ._tornado_client import patch_client

    patch_client(module, context)


def _guarded(patch_side: Any, context: Any, side: str) -> Any:
    """A post-import hook that raises would fail the program's import: report instead."""

    def hook(module: Any) -> None:
        try:
            patch_side(module, context)
        except Exception as exc:
            _diagnostics.warn(f"could not instrument tornado ({side}: {type(exc).__name__}: "
                              f"{exc}); it runs uninstrumented")

    return hook


def patch_server(module: Any, context: Any) -> None:
    """Wrap ``_HandlerDelegate.headers_received``/``execute``/``on_connection_close`` and
    ``RequestHandler.finish``/``_handle_request_exception`` (``module``: ``tornado.web``)."""
    from ._method_wrappers import wrap_once

    core = TelemetryMiddleware(context)
    routes = _Routes()
    finish_class = module.Finish

    def headers_received(wrapped: Any, instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        if not suppressed():
            try:
                _open(core, routes, instance)
            except Exception as exc:
                _diagnostics.warn_every_minute(
                    "tornado-open", f"tornado request served uninstrumented "
                    f"({type(exc).__name__}: {exc})")
        return wrapped(*args, **kwargs)

    def execute(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        state = instance.request.__dict__
        served = state.get(_SERVED)
        if served is None:
            session = state.get(_SESSION)
            if session is None:
                return wrapped(*args, **kwargs)
            token = attach(session)
            try:
                return wrapped(*args, **kwargs)
            finally:
                reset(token)
        # (the handler's _execute task, made in here, copies the context: it runs in ours)
        token = attach(served.context)
        try:
            return wrapped(*args, **kwargs)
        except BaseException as error:  # the handler could not even be built
            served.finish(error)
            raise
        finally:
            reset(token)

    def on_connection_close(wrapped: Any, instance: Any, args: tuple[Any, ...],
                            kwargs: dict[str, Any]) -> Any:
        # (called only while the request is being received: the client left mid-upload)
        served = instance.request.__dict__.get(_SERVED)
        if served is not None and not served.done:
            served.finish(error_type=CLIENT_DISCONNECT)
        return wrapped(*args, **kwargs)

    def finish(wrapped: Any, instance: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> Any:
        request = instance.request
        served = request.__dict__.get(_SERVED)
        if served is None or served.done:
            return wrapped(*args, **kwargs)
        gone = not instance._headers_written and _stream_closed(request)
        try:
            outcome = wrapped(*args, **kwargs)
        except BaseException:
            # (the response went out and on_finish raised: the request is over all the same;
            # before that, tornado answers the exception and finishes again)
            if getattr(instance, "_finished", False):
                _finished(core, served, instance, gone)
            raise
        _finished(core, served, instance, gone)
        return outcome

    def handle_request_exception(wrapped: Any, instance: Any, args: tuple[Any, ...],
                                 kwargs: dict[str, Any]) -> Any:
        served = instance.request.__dict__.get(_SERVED)
        if served is not None and not served.done:
            error = argument(args, kwargs, 0, "e")
            if isinstance(error, BaseException) and not isinstance(error, finish_class):
                if instance._headers_written and not instance._finished:
                    # a streamed response cut short (tornado ends it as it is): the status
                    # that went out, and the error that escaped, as under ASGI
                    _status_of(served, instance)
                    served.finish(error)
                elif served.error is None:
                    served.error = error  # answered: counts if the answer is a 5xx
        return wrapped(*args, **kwargs)

    delegate_class = module._HandlerDelegate
    handler_class = module.RequestHandler
    wrap_once(delegate_class, "headers_received", headers_received)
    wrap_once(delegate_class, "execute", execute)
    wrap_once(delegate_class, "on_connection_close", on_connection_close)
    wrap_once(handler_class, "finish", finish)
    wrap_once(handler_class, "_handle_request_exception", handle_request_exception)


def _finished(core: TelemetryMiddleware, served: _ServerRequest, handler: Any,
              gone: bool) -> None:
    """End the request with what its handler answered."""
    if gone:
        served.finish(error_type=CLIENT_DISCONNECT)
        return
    try:
        _status_of(served, handler)
        if core.captures_response_headers and type(served) is not UnsampledRequest:
            core.capture_response_headers(served, handler._headers.get_all())
    except Exception as exc:  # pragma: no cover - defensive: the response is sent
        _diagnostics.warn_every_minute(
            "tornado-finish", f"tornado request ended without its details "
            f"({type(exc).__name__}: {exc})")
    served.finish()


def _status_of(served: _ServerRequest, handler: Any) -> None:
    status = getattr(handler, "_status_code", None)
    if type(status) is int:
        served.status_code = status


def _stream_closed(request: Any) -> bool:
    """The client went away (tornado watches the connection while the handler works)."""
    stream = getattr(request.connection, "stream", None)
    return stream is not None and stream.closed()


def _open(core: TelemetryMiddleware, routes: _Routes, delegate: Any) -> None:
    """Open the request ``delegate`` is for (left unopened: an excluded URL); a request the
    sampler drops gets the cheap ``UnsampledRequest``, as in ``instrumentation.asgi``; a
    WebSocket handshake only the context its session runs in."""
    request = delegate.request
    websocket, candidates = routes.entry(delegate.application, delegate.handler_class)
    core.refresh_propagator()
    headers = request.headers
    # (HTTPHeaders' own dict of lines, by tornado's spelling of the names: its get() is two
    # Python calls per header, a sixth of what an unsampled request adds)
    lines = getattr(headers, "_as_list", None)
    if type(lines) is not dict:
        lines = None
    keys = core.environ_keys
    spelled = _spelled.get(keys)
    if spelled is None:
        spelled = _spelled[keys] = tuple((field, _spelling(field)) for _, field in keys)
    carrier: dict[str, str] | None = None
    if spelled:
        for field, name in spelled:
            if lines is not None:
                found = lines.get(name)
                value = (found[0] if len(found) == 1 else ",".join(found)) if found else None
            else:
                value = headers.get(name)
            if value is not None:
                if carrier is None:
                    carrier = {}
                carrier[field] = value
    else:  # a propagator that does not declare its fields: offer every header
        carrier = {name.lower(): value for name, value in headers.get_all()}
    if websocket:
        request.__dict__[_SESSION] = core._propagator.extract(
            carrier, context=EMPTY_CONTEXT, getter=_GETTER) if carrier else EMPTY_CONTEXT
        return
    method = request.method
    scheme = request.protocol
    trace_id = None
    verdict = core._shortcut.decide(carrier, core._propagator, _GETTER)
    served: _ServerRequest | None
    if verdict is not None:
        if not verdict.sampled:
            if core._excluding and url_excluded(
                    core, scheme, _header(headers, lines, "Host") or "", request.path,
                    request.query):
                return
            served = unsampled_request(core, core._shortcut, verdict, method, scheme)
            served.route = _route(candidates, request)
            request.__dict__[_SERVED] = served
            return
        trace_id = verdict.trace_id
    host = _header(headers, lines, "Host")
    forwarded = _header(headers, lines, "X-Forwarded-For")
    client = forwarded.split(",", 1)[0].strip() if forwarded else request.remote_ip
    served = core.open(
        method, scheme, request.path, request.query, host, None,
        _header(headers, lines, "User-Agent"),
        client, _VERSIONS.get(request.version), carrier,
        headers.get_all() if core.captures_request_headers else None, trace_id)
    if served is not None:
        served.route = _route(candidates, request)
        request.__dict__[_SERVED] = served


def _header(headers: Any, lines: dict[str, list[str]] | None, name: str) -> str | None:
    """``headers.get(name)`` (``name`` spelled as tornado keeps it), in one call."""
    if lines is None:
        return headers.get(name)  # type: ignore[no-any-return]
    found = lines.get(name)
    if not found:
        return None
    return found[0] if len(found) == 1 else ",".join(found)


def _spelling(field: str) -> str:
    """A header name as ``HTTPHeaders`` keeps it (``traceparent`` -> ``Traceparent``)."""
    return "-".join(word.capitalize() for word in field.split("-"))


# propagator fields (TelemetryMiddleware.environ_keys) -> (field, tornado's spelling) pairs
_spelled: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}


def _route(candidates: tuple[tuple[tuple[Any, ...], str | None], ...], request: Any
           ) -> str | None:
    """The route among the rules that name the handler class: the only one, else the first
    whose matchers all match (the one tornado's router took)."""
    if len(candidates) == 1:
        return candidates[0][1]
    for matchers, route in candidates:
        if all(matcher.match(request) is not None for matcher in matchers):
            return route
    return None


class _Routes:
    """Per application, per handler class: whether it is a WebSocket handler, and the rules
    (their matchers from the root router down, and the route) that target it. Built when a
    class is first served, again when the application's rule lists changed length
    (``add_handlers``, ``wildcard_router.add_rules``)."""

    _NONE: tuple[bool, tuple[Any, ...]] = (False, ())

    def entry(self, application: Any, handler_class: Any
              ) -> tuple[bool, tuple[tuple[tuple[Any, ...], str | None], ...]]:
        try:
            default = application.default_router
            key = (len(default.rules), len(application.wildcard_router.rules))
        except AttributeError:  # not a tornado.web.Application: no routes known
            return self._NONE
        state = application.__dict__.get(_ROUTES)
        if state is None or state[0] != key:
            state = application.__dict__[_ROUTES] = (key, {})
        entries = state[1]
        found = entries.get(handler_class)
        if found is None:
            found = entries[handler_class] = self._build(default, handler_class)
        return found

    def _build(self, root: Any, handler_class: Any
               ) -> tuple[bool, tuple[tuple[tuple[Any, ...], str | None], ...]]:
        websocket_module = sys.modules.get("tornado.websocket")
        websocket = websocket_module is not None and isinstance(handler_class, type) and \
            issubclass(handler_class, websocket_module.WebSocketHandler)
        routing = sys.modules["tornado.routing"]
        found: list[tuple[tuple[Any, ...], str | None]] = []
        _walk(routing, root, (), handler_class, found, 0)
        return websocket, tuple(found)


def _walk(routing: Any, router: Any, matchers: tuple[Any, ...], handler_class: Any,
          found: list[tuple[tuple[Any, ...], str | None]], depth: int) -> None:
    for rule in getattr(router, "rules", ()):
        path = (*matchers, rule.matcher)
        target = rule.target
        if target is handler_class:
            found.append((path, _pattern(routing, path)))
        elif isinstance(target, routing.RuleRouter) and depth < _MAX_DEPTH:
            _walk(routing, target, path, handler_class, found, depth + 1)


def _pattern(routing: Any, matchers: tuple[Any, ...]) -> str | None:
    """The innermost path pattern, as written (tornado's appended ``$`` left out)."""
    for matcher in reversed(matchers):
        if isinstance(matcher, routing.PathMatches):
            pattern = matcher.regex.pattern
            if isinstance(pattern, bytes):
                pattern = pattern.decode("latin-1")
            if pattern.endswith("$") and not pattern.endswith("\\$"):
                pattern = pattern[:-1]
            return pattern or None
    return None
