"""What the gRPC client and server instrumentations share: the RPC semantic-convention names,
the prepared attribute sets of one method (``RpcOp``), status codes, the trace context in
call metadata, and the tracer and duration histograms fetched once at patch time.

Conventions: the RPC ones of the installed ``opentelemetry-semantic-conventions`` (0.66b2:
``rpc.system.name``, a fully-qualified ``rpc.method``, ``rpc.response.status_code`` as the
status code's name, ``rpc.client.call.duration``/``rpc.server.call.duration`` in seconds),
not the attributes that package marks deprecated (``rpc.system``, ``rpc.service``,
``rpc.grpc.status_code``), as the HTTP instrumentations here emit the current HTTP ones.
The names are spelled here rather than imported from the package's ``_incubating`` modules:
a patch can run inside the program's ``import grpc`` (on our export thread, when the OTLP
exporter is the first to import it), and should import as little as possible there; a test
checks they match the package's.

Hazards: nothing here imports grpc. The patches run from post-import hooks of grpc's own
modules (possibly while another thread waits for that import); they take what they need
from the module they are given, and status-code names are read from the codes themselves.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    NoOpTracer,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .. import _diagnostics
from ._error_type import error_type
from ._http_common import DURATION_BUCKETS, EMPTY_CONTEXT, SPAN_KEY
from ._messaging_common import with_context

RPC_SYSTEM_NAME = "rpc.system.name"
RPC_METHOD = "rpc.method"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
CLIENT_ADDRESS = "client.address"
CLIENT_PORT = "client.port"
ERROR_TYPE = "error.type"
CLIENT_DURATION = "rpc.client.call.duration"
SERVER_DURATION = "rpc.server.call.duration"
GRPC = "grpc"
OK = "OK"
# The codes a server span counts as errors (the gRPC conventions); a client counts every
# code but OK.
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL",
                           "UNAVAILABLE", "DATA_LOSS"})
_MAX_OPS = 1024  # prepared methods kept per telemetry (cleared past it: methods are code's)
now = time.perf_counter


class RpcOp:
    """One method through one target (client), or one authority and peer (server): the span
    name, the span's attributes (shared, read-only, by every span of it) and its metric
    attribute sets, one per outcome, made once.

    The span's attributes say ``rpc.response.status_code`` = OK from the start, and only a
    call that ends otherwise sets it again. Why: a shared attribute set is validated once,
    while setting an attribute on a running span copies the whole set for that span (most
    of what a call costs, on every call); the code is only known at the end, and it is OK
    for nearly every call. (A sampler other than the SDK's own sees OK at the start.)"""

    __slots__ = ("_metric_base", "_metrics", "attributes", "name")

    def __init__(self, name: str, attributes: dict[str, Any],
                 span_only: dict[str, Any] | None = None) -> None:
        self.name = name
        self._metric_base = attributes
        self.attributes = {**attributes, **(span_only or {}), RPC_RESPONSE_STATUS_CODE: OK}
        self._metrics: dict[tuple[str | None, str | None], dict[str, Any]] = {}

    def metric(self, code: str | None, error: str | None) -> dict[str, Any]:
        key = (code, error)
        found = self._metrics.get(key)
        if found is None:
            found = dict(self._metric_base)
            if code is not None:
                found[RPC_RESPONSE_STATUS_CODE] = code
            if error is not None:
                found[ERROR_TYPE] = error
            if len(self._metrics) < 64:  # (error.type: exception class names, few)
                self._metrics[key] = found
        return found


def op_for(cache: dict[Any, RpcOp], key: Any, method: str, host: str | None,
           port: int | None, span_only: dict[str, Any] | None = None) -> RpcOp:
    """The prepared ``RpcOp`` of ``method`` (``/pkg.Service/Method``) at ``host:port``
    (``span_only``: attributes for the span, not the metric: the client's address)."""
    found = cache.get(key)
    if found is not None:
        return found
    name = method[1:] if method.startswith("/") else method
    attributes: dict[str, Any] = {RPC_SYSTEM_NAME: GRPC, RPC_METHOD: name or "_OTHER"}
    if host:
        attributes[SERVER_ADDRESS] = host
    if port is not None:
        attributes[SERVER_PORT] = port
    op = RpcOp(name or "grpc", attributes, span_only)
    if len(cache) >= _MAX_OPS:
        cache.clear()  # rare; cheaper than LRU bookkeeping
    cache[key] = op
    return op


def split_target(target: str) -> tuple[str | None, int | None]:
    """``server.address``/``server.port`` of a channel target or an ``:authority``:
    ``host:port``, ``dns:///host:port``, ``ipv4:10.0.0.1:50051``, ``[::1]:50051``,
    ``unix:/run/app.sock`` (the path, no port). Never userinfo; never raises."""
    try:
        if target.startswith(("unix:", "unix-abstract:")):
            path = target.partition(":")[2]
            return (path[2:] if path.startswith("//") else path) or None, None
        if "://" in target:  # dns://[authority]/host:port
            target = target.split("://", 1)[1].partition("/")[2] or target
        elif target.startswith(("dns:", "ipv4:", "ipv6:")):
            target = target.partition(":")[2]
        target = target.split(",", 1)[0].rpartition("@")[2]
        if target.startswith("["):  # [v6]:port
            host, _, rest = target[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif target.count(":") == 1:
            host, _, port = target.partition(":")
        else:
            host, port = target, ""
        return host or None, int(port) if port.isdigit() else None
    except Exception:
        return None, None


def split_peer(peer: str) -> tuple[str | None, int | None]:
    """``client.address``/``client.port`` of ``context.peer()``: ``ipv4:127.0.0.1:5555``,
    ``ipv6:[::1]:5555``, ``unix:/path``."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return split_target(rest)
    return (rest or None), None


def code_name(code: Any) -> str:
    """``rpc.response.status_code`` of a ``grpc.StatusCode`` (its name), of the int a cython
    layer reports, or of None (nothing set: OK)."""
    if code is None:
        return OK
    name = getattr(code, "name", None)
    if type(name) is str:
        return name
    if type(code) is int:
        return _names_by_value().get(code, "UNKNOWN")
    return "UNKNOWN"


_by_value: dict[int, str] = {}


def _names_by_value() -> dict[int, str]:
    if not _by_value:
        grpc = sys.modules.get("grpc")  # (loaded: a code came from it)
        for member in getattr(grpc, "StatusCode", ()):
            _by_value[member.value[0]] = member.name
    return _by_value


# ----- the trace context in metadata --------------------------------------------------------

_known_fields: list[tuple[Any, frozenset[str]]] = []


def propagated_keys() -> frozenset[str]:
    """The metadata keys the global propagator writes, lower-case (gRPC's keys are),
    recomputed only when the global propagator is replaced."""
    propagator = get_global_textmap()
    if _known_fields and _known_fields[0][0] is propagator:
        return _known_fields[0][1]
    try:
        fields = frozenset(name.lower() for name in propagator.fields)
    except Exception:
        fields = frozenset({"traceparent", "tracestate", "baggage"})
    _known_fields[:] = [(propagator, fields)]
    return fields


def with_trace_metadata(metadata: Any, parent: Context, span: Any) -> tuple[Any, ...]:
    """A new metadata tuple: the caller's pairs (a sequence of pairs or a
    ``grpc.aio.Metadata``; never changed) without any trace key of theirs, then ``span``'s
    trace headers and ``parent``'s baggage."""
    carrier = with_context(None, parent, span)
    if not metadata:
        return tuple(carrier.items())
    keys = propagated_keys()
    kept = [pair for pair in metadata if pair[0] not in keys]
    kept.extend(carrier.items())
    return tuple(kept)


def metadata_carrier(metadata: Iterable[Any] | None) -> dict[str, Any] | None:
    """The incoming metadata's trace keys as a carrier for the propagator, or None when it
    has none (a new trace). Other keys are never read, let alone recorded (credentials
    travel there: ``authorization``)."""
    if not metadata:
        return None
    keys = propagated_keys()
    carrier = None
    for pair in metadata:
        key = pair[0]
        if key in keys:
            if carrier is None:
                carrier = {}
            carrier[key] = pair[1]
    return carrier


def remote_parent(carrier: dict[str, Any] | None) -> Context:
    """The context to continue an incoming call in: the caller's trace from ``carrier``
    (``metadata_carrier``), else an empty context (a new trace; never the context the
    server happens to run in).

    Hot path: a lone ``traceparent`` of version 00 under the default propagator (W3C trace
    context, with or without W3C baggage) is read here, as that propagator reads it, without
    its generic path (~3 us of a server call); anything else (``tracestate``, ``baggage``,
    another propagator, a malformed value) goes through ``propagate.extract``."""
    if carrier is None:
        return EMPTY_CONTEXT
    value = carrier.get("traceparent")
    if len(carrier) == 1 and type(value) is str and _TRACEPARENT_00.fullmatch(value) \
            and _w3c_propagator():
        trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
        if trace_id and span_id:
            return Context({SPAN_KEY: NonRecordingSpan(SpanContext(
                trace_id, span_id, is_remote=True, trace_flags=TraceFlags(
                    int(value[53:55], 16))))})
    return extract(carrier, context=EMPTY_CONTEXT)


_known_w3c: list[tuple[Any, bool]] = []
_TRACEPARENT_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def _w3c_propagator() -> bool:
    """Whether the global propagator reads a lone ``traceparent`` exactly as
    ``remote_parent`` does (asked again only when it is replaced)."""
    propagator = get_global_textmap()
    if _known_w3c and _known_w3c[0][0] is propagator:
        return _known_w3c[0][1]
    members = getattr(propagator, "_propagators", None) \
        if type(propagator) is CompositePropagator else (propagator,)
    try:
        kinds = [type(member) for member in members]
        from opentelemetry.baggage.propagation import W3CBaggagePropagator

        known = TraceContextTextMapPropagator in kinds and all(
            kind in (TraceContextTextMapPropagator, W3CBaggagePropagator) for kind in kinds)
    except TypeError:
        known = False
    _known_w3c[:] = [(propagator, known)]
    return known


# ----- tracer and histograms ------------------------------------------------------------------

class RpcTelemetry:
    """One side's tracer (the cheap leaf tracer when the SDK's) and duration histogram."""

    __slots__ = ("duration", "leaf", "library", "ops", "tracer")

    def __init__(self, context: Any, library: str, histogram: str, description: str) -> None:
        from ..infrastructure.fast_histogram import fast_histogram
        from ..infrastructure.leaf_spans import LeafTracer

        self.library = library
        self.tracer = context.tracer if context.tracer is not None else NoOpTracer()
        self.leaf = LeafTracer.for_tracer(self.tracer)
        meter = context.meter
        self.duration = None if meter is None else fast_histogram(meter.create_histogram(
            histogram, unit="s", description=description,
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
        self.ops: dict[Any, RpcOp] = {}

    def start(self, op: RpcOp, kind: SpanKind, context: Context | None = None) -> Any:
        leaf = self.leaf
        if leaf is not None:
            return leaf.start(op.name, kind, op.attributes, context=context)
        return self.tracer.start_span(op.name, context=context, kind=kind,
                                      attributes=op.attributes)

    def end(self, op: RpcOp, span: Any, started: float, code: str | None, failed: bool,
            exception: BaseException | None = None) -> None:
        """End ``span`` with ``code`` (``failed``: an error for this side; None: no status
        known, reported as UNKNOWN, gRPC's code for errors that tell nothing more) and the
        exception that ended the call, if any (its class is then the ``error.type``);
        record the duration. Never
        raises: it runs after the library call, whose outcome reaches the caller as is."""
        elapsed = now() - started
        if code is None:
            code = "UNKNOWN"
        try:
            error = None
            if exception is not None:
                error = error_type(exception)
            elif failed:
                error = code
            if span.is_recording():
                if code != OK:  # (OK: said from the start, see RpcOp)
                    span.set_attribute(RPC_RESPONSE_STATUS_CODE, code)
                if error is not None:
                    span.set_attribute(ERROR_TYPE, error)
                    if exception is not None:
                        span.record_exception(exception)
                    # (never the status details: a server's message may quote values)
                    span.set_status(Status(StatusCode.ERROR, error))
            begun = getattr(span, "start_time", None)
            span.end(begun + int(elapsed * 1e9) if type(begun) is int else None)
            duration = self.duration
            if duration is not None:
                duration.record(elapsed, op.metric(code, error))
        except Exception as exc:
            self.warn(exc)

    def warn(self, exc: BaseException) -> None:
        _diagnostics.warn_every_minute(
            f"grpc:{self.library}",
            f"{self.library} instrumentation failed ({type(exc).__name__}: {exc}); "
            "calls run untraced while this lasts")


def argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def replace_argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
                     value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if len(args) > index:
        return (*args[:index], value, *args[index + 1:]), kwargs
    return args, {**kwargs, name: value}
