"""``requests``: one CLIENT span per request sent by ``Session.send()`` (so ``requests.get()``,
``Session`` methods and prepared requests alike): each redirect hop is a span of its own.

Produces
    a CLIENT span named after the method (``HTTP`` for unknown methods) and a point on
    ``http.client.request.duration`` (seconds), per request that goes out. A redirect
    ``Session.send()`` follows is a further request (requests sends it with ``Session.send``
    again): its own span, next to the first one (same parent), with
    ``http.request.resend_count`` = 1, 2, ..., its own ``url.full``, server and status, as the
    HTTP semantic conventions ask for every resend. So is the request a response hook sends
    again through the adapter (``response.connection.send``: ``HTTPDigestAuth`` answering a
    401, NTLM or Kerberos auth alike), whose span urllib3's instrumentation makes; the count
    runs on along the chain (challenge, authenticated request, its redirects: none, 1, 2).
    A span ends when the response headers have arrived (the adapter has answered); reading
    the body (at the end of ``send()`` unless ``stream=True``, or later by the caller) is
    not part of it.
Attributes
    span: ``http.request.method`` (``_OTHER`` + ``http.request.method_original`` for unknown
    methods), ``url.full`` (userinfo and signature query values REDACTED), ``server.address``,
    ``server.port``, ``network.protocol.version``, ``http.response.status_code``,
    ``error.type`` (status code for 4xx/5xx, else the exception's fully-qualified class name,
    ``requests.exceptions.ConnectTimeout``; status ERROR then, and an exception event),
    ``http.request.resend_count`` (redirect hops, auth retries), captured
    ``http.request.header.*``/``http.response.header.*``.
    metric: ``http.request.method``, ``http.response.status_code``, ``url.scheme``,
    ``server.address``, ``server.port``, ``network.protocol.version``, ``error.type`` — never
    the URL.
Layering
    The span is current while the adapter sends, and urllib3/http.client below stand aside,
    so a request is one span, not three.
The caller's code
    Response hooks, and everything ``send()`` does after them (redirects, cookies, the body),
    run in the caller's own context, not the request's: an HTTP call a hook makes is a
    request of its own, with its own span and trace headers. How: ``send()`` hands every
    response to ``requests.sessions.dispatch_hook`` right after the adapter answers; that
    name is replaced by a function that ends the request's span there and makes the
    caller's context current again (``_end_the_request_then``). When the request has
    response hooks, that context also says that what urllib3 sends while they run is a
    resend of this request: a hook's ``requests`` call is a request of its own, but what a
    hook sends through the adapter (or through urllib3 directly) is counted as a resend.
    A response whose ``request`` is not the one sent (an adapter that does not set it)
    leaves the span to end with ``send()``, as one span for everything ``send()`` did.
Headers
    The trace headers go into a copy of the ``PreparedRequest`` (its headers copied, its
    cookie jar shared): the caller's object is not changed; ``response.request`` is the copy,
    i.e. what was sent.
Environment
    ``TELEMETRYFLOW_EXCLUDED_URLS``, ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_*``,
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` (read at patch time).
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.context import Context

from ..infrastructure.current_context import attach, get_current
from ._http_common import http_suppressed
from ._method_wrappers import wrap_once
from .http_client import (
    CALL_KEY,
    RESENDS_KEY,
    Adapter,
    ClientCall,
    ClientTelemetry,
    argument,
    call_traced,
    finish,
    replace_argument,
)

# The context key under which the redirects one ``send()`` follows find the chain of resends
# they belong to (an ``http_client.Resends``: how many were sent before them). Not
# ``RESENDS_KEY``: a ``Session.send`` a response hook makes is a request of its own, only one
# through the adapter is sent again.
_REDIRECTS_KEY = "telemetryflow.requests.redirects"
# The statuses requests follows (requests.models.REDIRECT_STATI): only after one of these is
# a further request to be counted.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_OURS = "_telemetryflow_ends_the_request"


def patch(module: Any, context: Any) -> None:
    telemetry = ClientTelemetry(context, "requests")
    adapter = _RequestsAdapter(getattr(getattr(module, "models", None), "PreparedRequest", None),
                               getattr(getattr(module, "structures", None),
                                       "CaseInsensitiveDict", None))

    def send(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return call_traced(telemetry, adapter, wrapped, instance, args, kwargs)

    wrap_once(module.Session, "send", send, stand_aside=http_suppressed)
    sessions = getattr(module, "sessions", None)
    dispatch = getattr(sessions, "dispatch_hook", None)
    if callable(dispatch) and not getattr(dispatch, _OURS, False):
        sessions.dispatch_hook = _end_the_request_then(dispatch)


def _end_the_request_then(dispatch: Any) -> Any:
    """``requests.sessions.dispatch_hook``, which first ends the request in flight when it
    is handed that request's response (see the module). Anything else goes straight to
    ``dispatch``: other hooks, a response that is not ours, a ``send()`` that runs untraced
    under another layer's span (its response is not that layer's request)."""

    @functools.wraps(dispatch)
    def dispatch_hook(key: Any, hooks: Any, hook_data: Any, **kwargs: Any) -> Any:
        call = get_current().get(CALL_KEY)
        sent = None if call is None else call.sent
        if sent is None or call.ended or getattr(hook_data, "request", None) is not sent:
            return dispatch(key, hooks, hook_data, **kwargs)
        # The caller's context first, as for any call ended after it returns: the duration
        # point (and its exemplar, which keeps that context) is recorded in it. No token
        # kept: call_traced resets the context to the caller's when send() ends.
        parent = call.parent
        attach(parent)
        finish(call, _outcome, hook_data)
        if hooks and hooks.get(key):
            # A hook may send the request again through the adapter (HTTPDigestAuth after a
            # 401, NTLM and Kerberos auth alike): a resend, which urllib3 takes from here.
            attach(Context(parent, **{RESENDS_KEY: call.resends()}))
        hook_data = dispatch(key, hooks, hook_data, **kwargs)
        if getattr(hook_data, "status_code", None) in _REDIRECT_STATUSES:
            # (after the hooks: an HTTP call of theirs is no redirect; the chain counts on
            # from what they sent again)
            attach(Context(parent, **{_REDIRECTS_KEY: call.resends()}))
        return hook_data

    setattr(dispatch_hook, _OURS, True)
    return dispatch_hook


class _RequestsAdapter(Adapter):
    """``Session.send(request, **kwargs)`` with a ``PreparedRequest``."""

    __slots__ = ("_headers_type", "_request_type")

    def __init__(self, request_type: Any, headers_type: Any) -> None:
        self._request_type = request_type
        self._headers_type = headers_type

    def begin(self, telemetry: ClientTelemetry, instance: Any, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> ClientCall | None:
        request = argument(args, kwargs, 0, "request")
        url = request.url
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:  # requests itself reports the bad URL
            port = None
        chain = get_current().get(_REDIRECTS_KEY)
        if chain is None:
            return telemetry.begin(request.method, url, parts.scheme, parts.hostname, port,
                                   request.headers)
        call = telemetry.begin(request.method, url, parts.scheme, parts.hostname, port,
                               request.headers, chain.next(), chain.parent)
        if call is not None:
            call.chain = chain
        return call

    def with_headers(self, call: ClientCall, instance: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        sent = self._copy(argument(args, kwargs, 0, "request"))
        call.inject(sent.headers)
        call.sent = sent
        return replace_argument(args, kwargs, 0, "request", sent)

    def _copy(self, request: Any) -> Any:
        """``request.copy()`` but for the cookie jar, which the copy shares: 0.5 µs instead of
        1.9 (the jar copy takes a lock per cookie and builds a policy). Nothing on the send
        path changes a request's jar in place (redirects and auth retries copy the request
        first), so sharing it is safe; only the headers, which we add to, are copied."""
        headers = request.headers
        if type(request) is not self._request_type or type(headers) is not self._headers_type \
                or not isinstance(getattr(headers, "_store", None), dict):
            return request.copy()
        sent = object.__new__(type(request))
        sent.__dict__.update(request.__dict__)
        copied = object.__new__(type(headers))
        copied._store = headers._store.copy()
        sent.headers = copied
        return sent

    def outcome(self, response: Any) -> tuple[Any, Any, Any]:
        return _outcome(response)


def _outcome(response: Any) -> tuple[Any, Any, Any]:
    raw = getattr(response, "raw", None)  # absent with mocking adapters
    return response.status_code, getattr(raw, "version", None), response.headers
