"""gRPC servers (grpcio): one SERVER span per call a ``grpc.server(...)`` or
``grpc.aio.server(...)`` hands to a handler, continuing the caller's trace.

Produces
    a SERVER span named after the method, ``{package.Service}/{Method}``, and a point on
    ``rpc.server.call.duration`` (seconds) per call of a method the server has a handler
    for (a call of an unknown method, which grpc answers UNIMPLEMENTED without any handler,
    has none). The handler runs with the span current, so its own spans are children; the
    span ends when the handler returns (a unary response) or when its response iterator is
    exhausted, fails or is dropped (a streaming response: a cancelled call included).
Attributes
    span and metric: ``rpc.system.name`` = ``grpc``, ``rpc.method``, ``server.address`` /
    ``server.port`` (the ``:authority`` the client called; sync servers only: grpc.aio does
    not show it), ``rpc.response.status_code`` (what the handler set with
    ``context.set_code``/``context.abort``, OK when nothing, UNKNOWN when it raised), and on
    the span only ``client.address``/``client.port`` (``context.peer()``). UNKNOWN,
    DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS are server errors
    (the gRPC conventions): status ERROR and ``error.type`` = the code's name; others
    (NOT_FOUND, INVALID_ARGUMENT...) are the caller's problem, not the server's. A handler
    that raises (other than through ``abort``) has ``error.type`` = the exception's
    fully-qualified class name, an exception event and status ERROR, as the HTTP servers
    here. Never metadata values (only the propagator's keys are read), messages or details.
How
    our server interceptor goes first in every server's list (``_Server.__init__`` of
    ``grpc._server``, ``Server.__init__`` of ``grpc.aio._server``), so the program's own
    interceptors run inside it; it wraps the handler they hand back, keeping its kind
    (coroutine, async generator, plain function or generator: grpc.aio runs the last two on
    its thread pool) and the attributes grpc reads on it (``experimental_*``). The trace is
    continued from the call's metadata onto an empty context, never the context the server
    was started in (a script's process span is no caller of its RPCs).
Environment
    none of its own.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from opentelemetry.trace import SpanKind, set_span_in_context

from ..infrastructure.current_context import attach, reset
from ._grpc_common import (
    CLIENT_ADDRESS,
    CLIENT_PORT,
    SERVER_DURATION,
    SERVER_ERRORS,
    RpcOp,
    RpcTelemetry,
    argument,
    code_name,
    metadata_carrier,
    now,
    op_for,
    remote_parent,
    replace_argument,
    split_peer,
    split_target,
)
from ._method_wrappers import wrap_once

_SERVER = SpanKind.SERVER
_INTERCEPTORS_INDEX = 2  # __init__(thread_pool, generic_handlers, interceptors, ...): both
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_FIELDS = ("request_streaming", "response_streaming", "request_deserializer",
           "response_serializer", *_KINDS)
_MAX_HANDLERS = 1024
_DESCRIPTION = "Measures the duration of an incoming Remote Procedure Call (RPC)."


def patch(module: Any, context: Any) -> None:
    """Put our interceptor first in every ``grpc._server._Server``."""
    base = module.grpc.ServerInterceptor
    telemetry = RpcTelemetry(context, "grpc server", SERVER_DURATION, _DESCRIPTION)
    handlers = _Handlers(telemetry)

    class TelemetryServerInterceptor(base):  # type: ignore[misc, valid-type]
        """Wraps the handler of each call (see the module)."""

        def intercept_service(self, continuation: Any, details: Any) -> Any:
            return handlers.traced(continuation(details), details.method)

    wrap_once(module._Server, "__init__", _first(TelemetryServerInterceptor()))


def patch_aio(module: Any, context: Any) -> None:
    """Put our interceptor first in every ``grpc.aio._server.Server``."""
    base = module.ServerInterceptor
    telemetry = RpcTelemetry(context, "grpc.aio server", SERVER_DURATION, _DESCRIPTION)
    handlers = _Handlers(telemetry)

    class TelemetryAioServerInterceptor(base):  # type: ignore[misc, valid-type]
        """Wraps the handler of each call (see the module)."""

        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return handlers.traced(await continuation(details), details.method)

    wrap_once(module.Server, "__init__", _first(TelemetryAioServerInterceptor()))


def _first(interceptor: Any) -> Any:
    def init(wrapped: Any, instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        try:
            theirs = argument(args, kwargs, _INTERCEPTORS_INDEX, "interceptors") or ()
            if not any(found is interceptor for found in theirs):
                args, kwargs = replace_argument(args, kwargs, _INTERCEPTORS_INDEX,
                                                "interceptors", (interceptor, *theirs))
        except Exception:  # interceptors we cannot read: the server as they built it
            pass
        return wrapped(*args, **kwargs)

    return init


class _Handler:
    """An ``RpcMethodHandler`` of any make (grpc reads these attributes only)."""

    __slots__ = _FIELDS

    def __init__(self, handler: Any, kind: str, behavior: Any) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(handler, name, None))
        setattr(self, kind, behavior)


class _Handlers:
    """The traced handler of each (handler, method), made once: a server hands the same
    handler object for every call of a method."""

    def __init__(self, telemetry: RpcTelemetry) -> None:
        self._telemetry = telemetry
        self._made: dict[tuple[int, str], tuple[Any, Any]] = {}

    def traced(self, handler: Any, method: str) -> Any:
        if handler is None:
            return None  # an unknown method: grpc answers UNIMPLEMENTED itself
        key = (id(handler), method)
        made = self._made.get(key)
        if made is not None and made[0] is handler:
            return made[1]
        try:
            traced = self._make(handler, method)
        except Exception as exc:
            self._telemetry.warn(exc)
            return handler
        if len(self._made) >= _MAX_HANDLERS:
            self._made.clear()
        self._made[key] = (handler, traced)  # (keeps the handler alive: ids stay unique)
        return traced

    def _make(self, handler: Any, method: str) -> Any:
        for kind in _KINDS:
            behavior = getattr(handler, kind, None)
            if behavior is not None:
                break
        else:
            return handler
        call = _Call(self._telemetry, method)
        if inspect.isasyncgenfunction(behavior):
            traced = _async_stream(call, behavior)
        elif inspect.iscoroutinefunction(behavior):
            traced = _async_unary(call, behavior)
        elif getattr(handler, "response_streaming", False):
            traced = _sync_stream(call, behavior)
        else:
            traced = _sync_unary(call, behavior)
        # (the behavior's attributes: grpc reads experimental_thread_pool and
        # experimental_non_blocking there)
        traced = functools.update_wrapper(traced, behavior)
        if hasattr(handler, "_replace"):  # grpc's own namedtuple
            return handler._replace(**{kind: traced})
        return _Handler(handler, kind, traced)


class _Call:
    """One method's telemetry: opens and closes its calls' spans."""

    __slots__ = ("_method", "_ops", "_telemetry")

    def __init__(self, telemetry: RpcTelemetry, method: str) -> None:
        self._telemetry = telemetry
        self._method = method
        self._ops: dict[Any, RpcOp] = {}

    def open(self, context: Any) -> list[Any] | None:
        """``[op, span, span's context, started]`` of a call; None when our code failed
        (the handler then runs untraced)."""
        telemetry = self._telemetry
        started = now()  # (before the span starts: its end is its start plus what this measures)
        try:
            authority = _authority(context)
            peer = context.peer()
            key = (authority, peer)
            op = self._ops.get(key)
            if op is None:
                op = self._op(key, authority, peer)
            parent = remote_parent(metadata_carrier(context.invocation_metadata()))
            span = telemetry.start(op, _SERVER, parent)
            return [op, span, set_span_in_context(span, parent), started]
        except Exception as exc:
            telemetry.warn(exc)
            return None

    def _op(self, key: tuple[Any, str], authority: bytes | None, peer: str) -> RpcOp:
        """The method's prepared op for one authority and one client address: the client's
        address and port are span attributes, not metric ones (unbounded), and a client
        keeps its connection (so its port) for many calls."""
        host, port = split_target(authority.decode("utf-8", "replace")) \
            if authority else (None, None)
        address, client_port = split_peer(peer) if type(peer) is str else (None, None)
        span_only: dict[str, Any] = {}
        if address:
            span_only[CLIENT_ADDRESS] = address
        if client_port is not None:
            span_only[CLIENT_PORT] = client_port
        return op_for(self._ops, key, self._method, host, port, span_only)

    def close(self, rpc: list[Any], context: Any, exc: BaseException | None) -> None:
        """End the call's span with the code the handler left, or with ``exc``."""
        op, span, _, started = rpc
        try:
            code = context.code()
        except Exception:
            code = None
        if exc is not None and code is None and not _cancelled(exc):
            self._telemetry.end(op, span, started, "UNKNOWN", True, exc)  # grpc sends it
            return
        # (cancelled, or the responses dropped: no answer went out)
        name = "CANCELLED" if code is None and exc is not None else code_name(code)
        self._telemetry.end(op, span, started, name, name in SERVER_ERRORS)


def _authority(context: Any) -> bytes | None:
    """The ``:authority`` of the call (sync servers; grpc.aio's context lacks it)."""
    try:
        host = context._rpc_event.call_details.host
    except AttributeError:
        return None
    return host if type(host) is bytes else None


def _cancelled(exc: BaseException) -> bool:
    """The handler's iterator closed (GeneratorExit) or its task cancelled: not a failure
    of the handler's."""
    return isinstance(exc, GeneratorExit) or type(exc).__name__ == "CancelledError"


def _sync_unary(call: _Call, behavior: Any) -> Any:
    def traced(request: Any, context: Any, *more: Any) -> Any:
        rpc = call.open(context)
        if rpc is None:
            return behavior(request, context, *more)
        token = attach(rpc[2])
        try:
            response = behavior(request, context, *more)
        except BaseException as exc:
            reset(token)
            call.close(rpc, context, exc)
            raise
        reset(token)
        call.close(rpc, context, None)
        return response

    return traced


def _sync_stream(call: _Call, behavior: Any) -> Any:
    def traced(request: Any, context: Any, *more: Any) -> Any:
        rpc = call.open(context)
        if rpc is None:
            return behavior(request, context, *more)
        token = attach(rpc[2])
        try:
            responses = behavior(request, context, *more)
        except BaseException as exc:
            reset(token)
            call.close(rpc, context, exc)
            raise
        reset(token)
        if more or responses is None:  # (experimental_non_blocking: it sent them itself)
            call.close(rpc, context, None)
            return responses
        return _responses(call, rpc, context, responses)

    return traced


def _responses(call: _Call, rpc: list[Any], context: Any, responses: Any) -> Any:
    """The handler's responses, each produced with the span current (set and unset around
    each ``next``: grpc may take them on different threads); the span ends with the last."""
    span_context = rpc[2]
    try:
        iterator = iter(responses)
        while True:
            token = attach(span_context)
            try:
                item = next(iterator)
            except StopIteration:
                break
            finally:
                reset(token)
            yield item
    except BaseException as exc:
        call.close(rpc, context, exc)
        raise
    call.close(rpc, context, None)


def _async_unary(call: _Call, behavior: Any) -> Any:
    async def traced(request: Any, context: Any) -> Any:
        rpc = call.open(context)
        if rpc is None:
            return await behavior(request, context)
        token = attach(rpc[2])
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            reset(token)
            call.close(rpc, context, exc)
            raise
        reset(token)
        call.close(rpc, context, None)
        return response

    return traced


def _async_stream(call: _Call, behavior: Any) -> Any:
    async def traced(request: Any, context: Any) -> Any:
        rpc = call.open(context)
        if rpc is None:
            async for item in behavior(request, context):
                yield item
            return
        span_context = rpc[2]
        try:
            token = attach(span_context)
            try:
                iterator = behavior(request, context).__aiter__()
            finally:
                reset(token)
            while True:
                token = attach(span_context)
                try:
                    item = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    reset(token)
                yield item
        except BaseException as exc:
            call.close(rpc, context, exc)
            raise
        call.close(rpc, context, None)

    return traced
