"""gRPC clients (grpcio): one CLIENT span per call a channel makes, sync (``grpc.insecure_channel``,
``grpc.secure_channel``, ``grpc.intercept_channel`` around them) and asyncio (``grpc.aio``).

Produces
    a CLIENT span named after the method, ``{package.Service}/{Method}``, and a point on
    ``rpc.client.call.duration`` (seconds) per call: unary-unary, unary-stream,
    stream-unary and stream-stream, ``__call__``, ``with_call`` and ``future`` alike. A
    blocking call's span ends when it returns or raises; a ``future()``'s, a streaming
    response's and an asyncio call's when the call finishes (its status arrives: the last
    response read, the call cancelled or its deadline passed), not when the call object is
    handed back.
Attributes
    span and metric: ``rpc.system.name`` = ``grpc``, ``rpc.method`` (``pkg.Service/Method``),
    ``server.address``/``server.port`` (from the channel's target: ``host:port``,
    ``dns:///host:port``, ``ipv4:``/``ipv6:`` addresses, a ``unix:`` path), and
    ``rpc.response.status_code`` (``OK``, ``NOT_FOUND``...). Every code but OK is an
    error for a client (the gRPC conventions): status ERROR and ``error.type`` = the code's
    name. A call that fails before any status (our own code never does; a serializer
    raising, KeyboardInterrupt) has ``error.type`` = the exception's fully-qualified class
    name and status code UNKNOWN. Never metadata values, request or response messages, or the
    server's status details (they may quote values).
Metadata
    The trace context (global propagator: W3C ``traceparent``/``tracestate``, ``baggage``)
    goes into a new metadata tuple: the caller's pairs (a list, a tuple or a
    ``grpc.aio.Metadata``, never changed), minus any trace key of theirs, plus ours. With
    client interceptors, they run outside the span and see the metadata before ours is
    added (sync), or with it (asyncio, where interceptors are applied below ``__call__``).
Not traced
    anything while instrumentation is suppressed: our own OTLP/gRPC exporter's calls (its
    export thread runs suppressed) are never spans.
Environment
    none of its own.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from opentelemetry.trace import SpanKind

from ..infrastructure.current_context import get_current
from ._grpc_common import (
    CLIENT_DURATION,
    OK,
    RpcOp,
    RpcTelemetry,
    argument,
    code_name,
    now,
    op_for,
    replace_argument,
    split_target,
    with_trace_metadata,
)
from ._http_common import suppressed
from ._method_wrappers import wrap_once

_CLIENT = SpanKind.CLIENT
_METADATA_INDEX = 2  # (request or request_iterator, timeout, metadata, ...): every kind
_DESCRIPTION = "Measures the duration of an outgoing Remote Procedure Call (RPC)."

# grpc._channel's multicallables: which method of which class, and how its outcome arrives
_BLOCKING, _DEFERRED = "blocking", "deferred"
_SYNC_METHODS = (
    ("_UnaryUnaryMultiCallable", "__call__", _BLOCKING),
    ("_UnaryUnaryMultiCallable", "with_call", _BLOCKING),
    ("_UnaryUnaryMultiCallable", "future", _DEFERRED),
    ("_UnaryStreamMultiCallable", "__call__", _DEFERRED),
    ("_SingleThreadedUnaryStreamMultiCallable", "__call__", _DEFERRED),
    ("_StreamUnaryMultiCallable", "__call__", _BLOCKING),
    ("_StreamUnaryMultiCallable", "with_call", _BLOCKING),
    ("_StreamUnaryMultiCallable", "future", _DEFERRED),
    ("_StreamStreamMultiCallable", "__call__", _DEFERRED),
)
_AIO_CLASSES = ("UnaryUnaryMultiCallable", "UnaryStreamMultiCallable",
                "StreamUnaryMultiCallable", "StreamStreamMultiCallable")


def patch(module: Any, context: Any) -> None:
    """Wrap the multicallables of ``grpc._channel`` (every sync channel makes its calls
    through them, intercepted channels included)."""
    telemetry = RpcTelemetry(context, "grpc", CLIENT_DURATION, _DESCRIPTION)
    wrappers = {_BLOCKING: _blocking(telemetry, _sync_op),
                _DEFERRED: _deferred(telemetry, _sync_op)}
    _wrap_all(module, [(cls, name, wrappers[how]) for cls, name, how in _SYNC_METHODS])


def patch_aio(module: Any, context: Any) -> None:
    """Wrap ``__call__`` of ``grpc.aio._channel``'s four multicallables."""
    telemetry = RpcTelemetry(context, "grpc.aio", CLIENT_DURATION, _DESCRIPTION)
    wrapper = _aio(telemetry)
    _wrap_all(module, [(cls, "__call__", wrapper) for cls in _AIO_CLASSES])


def _wrap_all(module: Any, plan: list[tuple[str, str, Any]]) -> None:
    """Wrap every method of ``plan`` this grpcio has (another version may lack one: the
    rest is traced). Nothing at all found: say so, through the registry."""
    wrapped = 0
    for class_name, name, wrapper in plan:
        owner = getattr(module, class_name, None)
        if isinstance(owner, type) and name in vars(owner):
            wrap_once(owner, name, wrapper, stand_aside=suppressed)
            wrapped += 1
    if not wrapped:
        raise AttributeError(f"{module.__name__} has none of the multicallables we wrap")


def _sync_op(telemetry: RpcTelemetry, instance: Any) -> RpcOp:
    method, target = instance._method, instance._target
    key = (method, target)
    found = telemetry.ops.get(key)
    if found is not None:
        return found
    host, port = split_target(_text(target))
    return op_for(telemetry.ops, key, _text(method), host, port)


def _aio_op(telemetry: RpcTelemetry, instance: Any) -> RpcOp:
    method, target = instance._method, instance._channel.target  # (bytes, a property)
    key = (method, target)
    found = telemetry.ops.get(key)
    if found is not None:
        return found
    host, port = split_target(_text(target))
    return op_for(telemetry.ops, key, _text(method), host, port)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _begin(telemetry: RpcTelemetry, op_of: Any, instance: Any, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``(op, span, started, args, kwargs)``: the span started in the current context and
    the call's arguments with the trace context in a new metadata tuple."""
    op = op_of(telemetry, instance)
    parent = get_current()
    started = now()  # (before the span starts: its end is its start plus what this measures)
    span = telemetry.start(op, _CLIENT, parent)
    try:
        metadata = with_trace_metadata(argument(args, kwargs, _METADATA_INDEX, "metadata"),
                                       parent, span)
        args, kwargs = replace_argument(args, kwargs, _METADATA_INDEX, "metadata", metadata)
    except BaseException:
        span.end()
        raise
    return op, span, started, args, kwargs


def _failed(telemetry: RpcTelemetry, op: RpcOp, span: Any, started: float,
            exc: BaseException) -> None:
    """The call raised: an ``RpcError`` carries the call's status (a blocking call that
    ended with a non-OK code); anything else ended it before a status."""
    code = None
    try:
        found = getattr(exc, "code", None)
        code = found() if callable(found) else None
    except Exception:
        code = None
    if code is None:
        telemetry.end(op, span, started, None, True, exc)
    else:
        name = code_name(code)
        telemetry.end(op, span, started, name, name != OK)


def _finished(telemetry: RpcTelemetry, op: RpcOp, span: Any, started: float,
              call: Any) -> None:
    """A done-callback: the call has its status (on grpc's channel thread, or at once when
    it was done already)."""
    try:
        name = code_name(call.code())
    except Exception as exc:
        telemetry.warn(exc)
        name = "UNKNOWN"
    telemetry.end(op, span, started, name, name != OK)


def _blocking(telemetry: RpcTelemetry, op_of: Any) -> Any:
    def call(wrapped: Any, instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        try:
            op, span, started, new_args, new_kwargs = _begin(telemetry, op_of, instance,
                                                             args, kwargs)
        except Exception as exc:
            telemetry.warn(exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*new_args, **new_kwargs)
        except BaseException as exc:
            _failed(telemetry, op, span, started, exc)
            raise
        telemetry.end(op, span, started, OK, False)
        return result

    return call


def _deferred(telemetry: RpcTelemetry, op_of: Any, finished: Any = None) -> Any:
    """``future()`` and streaming responses: the span ends in the call's done-callback
    (``finished``, ``_finished`` unless given)."""
    finished = finished or _finished

    def call(wrapped: Any, instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        try:
            op, span, started, new_args, new_kwargs = _begin(telemetry, op_of, instance,
                                                             args, kwargs)
        except Exception as exc:
            telemetry.warn(exc)
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*new_args, **new_kwargs)
        except BaseException as exc:
            _failed(telemetry, op, span, started, exc)
            raise
        try:
            result.add_done_callback(partial(finished, telemetry, op, span, started))
        except Exception as exc:  # a call object of an unknown kind: end here
            telemetry.warn(exc)
            telemetry.end(op, span, started, None, False)
        return result

    return call


def _aio(telemetry: RpcTelemetry) -> Any:
    """``grpc.aio`` multicallables: ``__call__`` hands back the call object at once (the
    RPC runs in the event loop); its done-callback ends the span."""
    return _deferred(telemetry, _aio_op, _aio_finished)


def _aio_finished(telemetry: RpcTelemetry, op: RpcOp, span: Any, started: float,
                  call: Any) -> None:
    """An asyncio call is done: its status is there (``code()`` is a coroutine, so it is
    read where the call keeps it; a call of another shape ends without a code)."""
    code: Any = None
    try:
        inner = getattr(call, "_interceptors_task", None)  # (a channel with interceptors)
        if inner is not None and inner.done() and not inner.cancelled() \
                and inner.exception() is None:
            call = inner.result()
        status = call._cython_call._status
        code = status.code() if status is not None else None
    except Exception:
        code = None
    if code is None:
        telemetry.end(op, span, started, None, False)
        return
    name = code_name(code)
    telemetry.end(op, span, started, name, name != OK)
