"""What the NATS instrumentation shares between its producer side (``nats.py``) and its
consumer side (``_nats_consumers.py``): the attribute names, the telemetry handles fetched
once at patch time, the operations prepared once per subject (span name, span and metric
attributes), and the small argument helpers. See ``nats.py`` for what is recorded.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.trace import NoOpTracer, SpanKind, Status, StatusCode

from telemetryflow_bootstrap.instrumentation._error_type import error_type
from telemetryflow_bootstrap.instrumentation._http_common import DURATION_BUCKETS
from telemetryflow_bootstrap.instrumentation._messaging_common import with_context
from telemetryflow_bootstrap.instrumentation._messaging_counts import (
    counts_for,
    with_error,
)
from telemetryflow_bootstrap.instrumentation._nats_headers import headers_supported

SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
TEMPLATE = "messaging.destination.template"
TEMPORARY = "messaging.destination.temporary"
GROUP = "messaging.consumer.group.name"
OPERATION = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
BODY_SIZE = "messaging.message.body.size"
BATCH_COUNT = "messaging.batch.message_count"
ADDRESS = "server.address"
PORT = "server.port"
ERROR_TYPE = "error.type"
CLIENT_DURATION = "messaging.client.operation.duration"
PROCESS_DURATION = "messaging.process.duration"

# Set in the context of a call of ours whose inner nats-py calls must not trace themselves
# (a request's publish, an ack's publish): _INJECT, the inner publish still carries the
# current context; _QUIET, it sends nothing extra.
_INNER = "telemetryflow.nats.inner"
_INJECT = 1
_QUIET = 2
_TEMPORARY_PREFIXES = ("_INBOX.", "$JS.ACK.")
_MAX_OPS = 1024
_now = time.perf_counter
_PRODUCER, _CLIENT, _CONSUMER = SpanKind.PRODUCER, SpanKind.CLIENT, SpanKind.CONSUMER


class _Op:
    """One operation on one subject through one server: span name and attribute sets,
    built once and shared read-only."""

    __slots__ = ("attributes", "key", "metric", "name", "sends")

    def __init__(self, name: str, attributes: dict[str, Any], metric: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.metric = metric
        # (the message counts' key, made once; whether the operation sends a message)
        self.key = tuple(metric.items())
        self.sends = metric.get(OPERATION_TYPE) == "send"


class _Telemetry:
    """The tracer, histograms and message counts, fetched once at patch time, and the
    prepared operations."""

    def __init__(self, context: Any) -> None:
        from telemetryflow_bootstrap.infrastructure.fast_histogram import fast_histogram
        from telemetryflow_bootstrap.infrastructure.leaf_spans import LeafTracer

        self.tracer = context.tracer if context.tracer is not None else NoOpTracer()
        self.leaf = LeafTracer.for_tracer(self.tracer)
        meter = context.meter
        self.client_duration = self.process_duration = None
        if meter is not None:
            self.client_duration = fast_histogram(meter.create_histogram(
                CLIENT_DURATION, unit="s",
                description="Duration of messaging operation initiated by a producer or "
                            "consumer client.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
            self.process_duration = fast_histogram(meter.create_histogram(
                PROCESS_DURATION, unit="s", description="Duration of processing operation.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS))
        self.counts = counts_for(meter)
        self._ops: dict[tuple[Any, ...], _Op] = {}

    def op(self, kind: str, kind_type: str, client: Any, subject: str) -> _Op:
        uri = _uri(client)
        key = (kind, subject, uri)
        found = self._ops.get(key)
        if found is not None:
            return found
        attributes = _server(uri)
        attributes[OPERATION] = kind
        attributes[OPERATION_TYPE] = kind_type
        metric = dict(attributes)
        attributes[DESTINATION] = subject
        if _is_temporary(client, subject):
            attributes[TEMPORARY] = True
            return _Op(kind, attributes, metric)  # one-off subject: not cached
        template = subject_template(subject)
        if template is not None:  # a key's, an object's: not cached either
            attributes[TEMPLATE] = metric[TEMPLATE] = template
            return _Op(f"{kind} {template}", attributes, metric)
        metric[DESTINATION] = subject
        return self._keep(key, _Op(f"{kind} {subject}", attributes, metric))

    def process_op(self, client: Any, pattern: str, queue: str, subject: str) -> _Op:
        """A message on ``subject`` delivered to a subscription to ``pattern``."""
        uri = _uri(client)
        key = ("process", subject, uri, pattern, queue)
        found = self._ops.get(key)
        if found is not None:
            return found
        attributes = _server(uri)
        attributes[OPERATION] = "process"
        attributes[OPERATION_TYPE] = "process"
        if queue:
            attributes[GROUP] = queue
        metric = dict(attributes)
        attributes[DESTINATION] = subject
        if ("*" in pattern or ">" in pattern) and not _is_temporary(client, pattern):
            attributes[TEMPLATE] = metric[TEMPLATE] = pattern
            name = f"process {pattern}"
        elif _is_temporary(client, subject):
            attributes[TEMPORARY] = True
            return _Op("process", attributes, metric)
        elif (template := subject_template(subject)) is not None:
            attributes[TEMPLATE] = metric[TEMPLATE] = template
            return _Op(f"process {template}", attributes, metric)
        else:
            metric[DESTINATION] = subject
            name = f"process {subject}"
        return self._keep(key, _Op(name, attributes, metric))

    def _keep(self, key: tuple[Any, ...], op: _Op) -> _Op:
        if len(self._ops) >= _MAX_OPS:
            self._ops.clear()  # rare; cheaper than LRU bookkeeping
        self._ops[key] = op
        return op

    def start(self, op: _Op, kind: SpanKind, attributes: dict[str, Any] | None = None) -> Any:
        """A span for a call nothing of the program's runs inside (a leaf)."""
        leaf = self.leaf
        if leaf is not None:
            if attributes is None:
                return leaf.start(op.name, kind, op.attributes)
            return leaf.start(op.name, kind, attributes, shared=False)
        return self.tracer.start_span(op.name, kind=kind,
                                      attributes=op.attributes if attributes is None
                                      else attributes)

    def ended(self, op: _Op, span: Any, elapsed: float, process: bool = False) -> None:
        histogram = self.process_duration if process else self.client_duration
        try:
            if histogram is not None:
                histogram.record(elapsed, op.metric)
            if op.sends:
                self.counts.sent(op.key)
            span.end()
        except Exception:
            pass

    def failed(self, op: _Op, span: Any, exc: BaseException, elapsed: float,
               process: bool = False) -> None:
        # Runs inside the caller's ``except``: never raises, or the program would see our
        # error instead of its own.
        histogram = self.process_duration if process else self.client_duration
        try:
            kind = error_type(exc)
            span.set_attribute(ERROR_TYPE, kind)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, kind))
            span.end()
            if histogram is not None:
                histogram.record(elapsed, {**op.metric, ERROR_TYPE: kind})
            if op.sends:
                self.counts.sent(with_error(op.key, kind))
        except Exception:
            pass


# JetStream API verbs of two tokens, before the stream's name
_TWO_TOKEN_VERBS = frozenset({"MSG", "DURABLE", "LEADER"})


def subject_template(subject: str) -> str | None:
    """A low-cardinality template (NATS wildcards) of a subject that names something a
    program makes without bound: a key-value key, an object store object or chunk, a
    JetStream consumer (ephemeral ones are named by the server), a direct-get subject;
    None for any other subject (a stream's or bucket's name is the program's own, bounded
    choice, and is kept).

    ``$KV.{bucket}.{key}`` -> ``$KV.{bucket}.>``; ``$O.{bucket}.C|M.{id}`` ->
    ``$O.{bucket}.C|M.*``; ``$JS.API.CONSUMER.{verb}.{stream}.{consumer}...`` ->
    ``$JS.API.CONSUMER.{verb}.{stream}.>``; ``$JS.API.DIRECT.GET.{stream}.{subject}`` ->
    ``$JS.API.DIRECT.GET.{stream}.>``."""
    if subject[:1] != "$":
        return None
    parts = subject.split(".")
    head = parts[0]
    if head == "$KV":
        return f"$KV.{parts[1]}.>" if len(parts) > 2 else None
    if head == "$O":
        if len(parts) > 3 and parts[2] in ("C", "M"):
            return f"$O.{parts[1]}.{parts[2]}.*"
        return None
    if head != "$JS" or len(parts) < 5 or parts[1] != "API":
        return None
    if parts[2] == "CONSUMER":
        stream = 4 + (parts[3] in _TWO_TOKEN_VERBS)
    elif parts[2] == "DIRECT" and parts[3] == "GET":
        stream = 4
    else:
        return None
    if len(parts) <= stream + 1:
        return None  # (no consumer or subject after the stream: bounded as it is)
    return ".".join(parts[:stream + 1]) + ".>"


def _uri(client: Any) -> Any:
    server = getattr(client, "_current_server", None)
    return getattr(server, "uri", None)


def _server(uri: Any) -> dict[str, Any]:
    """``messaging.system`` and the server's host and port: never the URL's userinfo."""
    attributes: dict[str, Any] = {SYSTEM: "nats"}
    try:
        host, port = uri.hostname, uri.port
    except Exception:  # no server yet, or not a ParseResult
        return attributes
    if host:
        attributes[ADDRESS] = host
    if type(port) is int:
        attributes[PORT] = port
    return attributes


def _is_temporary(client: Any, subject: str) -> bool:
    if subject.startswith(_TEMPORARY_PREFIXES):
        return True
    prefix = getattr(client, "_inbox_prefix", None)
    try:
        return bool(prefix) and subject.startswith(bytes(prefix).decode() + ".")
    except Exception:
        return False


def _suppressed(current: Context) -> bool:
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation"))


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
              default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _replace(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
             value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with argument ``index``/``name`` set to ``value``."""
    if len(args) > index:
        return (*args[:index], value, *args[index + 1:]), kwargs
    return args, {**kwargs, name: value}


def _with_trace_headers(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        index: int, context: Context, span: Any = None
                        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``publish`` arguments whose headers (argument ``index``) carry ``span`` (default:
    ``context``'s) and ``context``'s baggage; unchanged when the server takes no headers."""
    if not headers_supported(client):
        return args, kwargs
    headers = with_context(_argument(args, kwargs, index, "headers"), context, span)
    return _replace(args, kwargs, index, "headers", headers)
