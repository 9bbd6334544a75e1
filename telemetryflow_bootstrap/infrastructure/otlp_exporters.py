"""The OTLP span and log exporters (gRPC and HTTP) with our encoders in place of theirs.

Everything else — channels, sessions, TLS, headers, compression, retries, the exporter's
own metrics — stays the exporter's. If our encoder cannot encode a batch (see
``span_encoding``, ``log_encoding``) the exporter's encoder does it, so a batch is never
lost to us. A value OTLP cannot carry (an int past 64 bits, a lone surrogate) does not send a
batch there: our encoders leave out or escape just that value (``otlp_wire``), where the
exporter's encoder raises for some of them and the whole batch would be lost.

An item neither encoder can encode (a timestamp in float seconds, a span kind given as text,
a name that is not text: the SDK takes them all) must not cost the batch around it either:
then, and only then, each item is tried alone (``_split``). Those that encode are sent, the
rest left out, counted (``unencodable_items``; each exporter's own ``unencodable_items``)
and said once per signal, with the first one's reason and no value. The export succeeds:
nothing the backend did failed, and what is lost was said.

Over HTTP, a request past the exporter's limit (``max_request_size``, 64 MiB by default) is
not sent whole: the exporter's own ``export`` drops such a batch whole and fails it, and a
collector that was never asked got the blame. Its items are sent in as many requests as
fit (``_parts``); an item that does not fit in a request on its own is left out, counted
(``too_large_items``) and said once per signal, with its size. The export succeeds if
every request sent does.

A backend whose limit is lower than the exporter's answers 413 Payload Too Large, which
the exporter does not retry: the batch was lost and the backend blamed. Now the items are
sent again at once in requests within half the refused one (``HttpExporter._send``), that
limit kept for the exporter's later requests, and lowered again by each further 413 (not
below ``_MIN_LEARNED``); an item refused alone is left out, counted and said as one past
the backend's limit.

Over gRPC alike, past 4 MiB (``_GRPC_LIMIT``): a gRPC server's default limit, and an
OpenTelemetry Collector's (``max_recv_msg_size_mib: 4``), past which it refuses the request
whole with RESOURCE_EXHAUSTED; the exporter retried that same request until its deadline,
then the batch was lost and the backend blamed. A backend whose limit is lower refuses a
request as too large (``_size_refused``): that is not retried (the OTLP specification calls
RESOURCE_EXHAUSTED without RetryInfo not retryable), its items are sent again at once in
parts within the limit it states (or half the request), and that limit is kept for the
exporter's later requests; an item it refuses alone is left out, counted and said as one
past the limit. The exporter's retry loop is unchanged for everything else, and each retry
reuses the request made for the first attempt: encoded (and what it left out counted)
once.

Each class is made at first use, importing only its own exporter stack (grpc or
requests), on the export thread (see ``exporters.LazyExporter``); importing this module
imports neither.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import _diagnostics
from .log_encoding import LogEncoder
from .otlp_wire import tentatively, uncounted
from .span_encoding import SpanEncoder

_logger = logging.getLogger(__name__)

_TRACES, _LOGS = "traces", "logs"
_ENCODERS: dict[str, Callable[[], Any]] = {_TRACES: SpanEncoder, _LOGS: LogEncoder}
_NAMES = {_TRACES: "Span", _LOGS: "Log"}
_NOUNS = {_TRACES: "span", _LOGS: "log record"}  # (in the warning; "spans", "log records")
# A gRPC request's limit: a gRPC server's default, and so an OpenTelemetry Collector's
# (max_recv_msg_size_mib: 4), past which the request is refused whole. A backend that
# takes more gets more requests, none lost; one that takes less says so (see _send).
_GRPC_LIMIT = 4 << 20
_MAX_REFUSALS = 8  # refusals as too large, in a row, answered by smaller requests
_SIZE_WORDS = ("larger than max", "exceeds max", "too large")  # (see _size_refused)
# An HTTP backend answering 413 tells no limit: half the refused request is taken, not
# below this (a backend refusing a request this small has another trouble: not split).
_MIN_LEARNED = 1024
_PAYLOAD_TOO_LARGE = 413

# Items left out because no encoder could encode them, and because their request alone
# was past the exporter's limit, per signal, for get_status().
_left_out = {_TRACES: 0, _LOGS: 0}
_too_large = {_TRACES: 0, _LOGS: 0}
_left_out_lock = threading.Lock()


def grpc_span_exporter(**kwargs: Any) -> Any:
    return _grpc_class(_TRACES)(**kwargs)


def http_span_exporter(**kwargs: Any) -> Any:
    return _http_class(_TRACES)(**kwargs)


def grpc_log_exporter(**kwargs: Any) -> Any:
    return _grpc_class(_LOGS)(**kwargs)


def http_log_exporter(**kwargs: Any) -> Any:
    return _http_class(_LOGS)(**kwargs)


def exporter_class(signal: str, *, grpc: bool) -> type:
    """The exporter class for ``signal`` ("traces" or "logs"), made (and its stack imported)
    without building an exporter (see ``exporters.OTLPExporterFactory.warm_up``)."""
    if grpc:
        return _grpc_class(signal)
    import requests  # noqa: F401  (the HTTP exporters import it when built)

    return _http_class(signal)


def unencodable_items() -> dict[str, int]:
    """How many spans ("traces") and log records ("logs") were left out of their export
    because neither our encoder nor the exporter's could encode them."""
    with _left_out_lock:
        return dict(_left_out)


def too_large_items() -> dict[str, int]:
    """How many spans ("traces") and log records ("logs") were left out of their HTTP
    export because a request holding only that item is past the exporter's limit."""
    with _left_out_lock:
        return dict(_too_large)


def _encoded(encoder: Any, items: Sequence[Any]) -> bytes | None:
    try:
        return tentatively(encoder, items)
    except Exception as exc:  # the exporter's encoder takes this batch
        _logger.debug("%s fell back to the exporter's encoder: %r", type(encoder).__name__, exc)
        return None


def _split(encoder: Any, theirs: Callable[[Sequence[Any]], bytes], items: Sequence[Any],
           signal: str) -> tuple[bytes, int, list[Any]]:
    """The request for the items of ``items`` that encode, each tried alone (ours, then
    ``theirs``), how many did not, and the items it holds. Only for a batch both encoders
    refused: it encodes every item twice. Each item's trial with ours counts what it
    leaves out or escapes, if ours takes the item (``tentatively``); the encoding together
    counts nothing (``uncounted``). Requests concatenate (their one field is repeated), so
    what only the exporter's encoder takes is appended to ours."""
    ours_ok: list[Any] = []
    alone: list[bytes] = []
    theirs_ok: list[bytes] = []
    theirs_items: list[Any] = []
    lost, reason = 0, ""
    for item in items:
        try:
            alone.append(tentatively(encoder, (item,)))
            ours_ok.append(item)
            continue
        except Exception:
            pass
        try:
            theirs_ok.append(theirs((item,)))
            theirs_items.append(item)
        except Exception as exc:
            lost += 1
            reason = reason or _reason(signal, item, exc)
    try:
        with uncounted():
            encoded = encoder.encode(ours_ok) if ours_ok else b""
    except Exception:  # (each alone did: then sent one group each)
        encoded = b"".join(alone)
    if lost:
        _count_left_out(signal, lost, reason)
    return encoded + b"".join(theirs_ok), lost, ours_ok + theirs_items


def _quietly(encoder: Any, theirs: Callable[[Sequence[Any]], bytes],
             items: Sequence[Any]) -> bytes:
    """The request for ``items``, each of which encodes alone (ours, or ``theirs``): the
    request of a part of a batch whose whole request counted what it left out or escaped
    already (``_parts``), so nothing is counted again."""
    with uncounted():
        try:
            return encoder.encode(items)  # type: ignore[no-any-return]
        except Exception:
            pass
        try:
            return theirs(items)
        except Exception:
            pass
        out = []
        for item in items:  # (ours takes some, theirs the others)
            try:
                out.append(encoder.encode((item,)))
            except Exception:
                out.append(theirs((item,)))
        return b"".join(out)


def _parts(items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes],
           limit: int) -> Iterator[tuple[Sequence[Any], bytes | None, int]]:
    """``items`` (whose request is past ``limit`` bytes) in requests of at most ``limit``
    bytes, in order: (the part's items, its request, its size); the request is None for an
    item whose request alone is past ``limit`` (left out). Each item's request alone gives
    its size; consecutive items are packed while those sizes fit, then encoded together
    (smaller: one resource and scope for all), a lone item's request used as it is. Only
    for a batch past the limit: each item is encoded about twice more. One request at a
    time is held, so a batch of many big items does not need them all in memory."""
    part: list[Any] = []
    first = b""  # (the part's request while it holds one item)
    size = 0
    for item in items:
        alone = encode((item,))
        if len(alone) > limit:
            yield (item,), None, len(alone)
            continue
        if part and size + len(alone) > limit:
            yield from _packed(part, first, encode, limit)
            part, size = [], 0
        part.append(item)
        size += len(alone)
        first = alone if len(part) == 1 else b""
    if part:
        yield from _packed(part, first, encode, limit)


def _packed(part: list[Any], first: bytes, encode: Callable[[Sequence[Any]], bytes],
            limit: int) -> Iterator[tuple[Sequence[Any], bytes | None, int]]:
    if len(part) == 1:
        yield part, first, len(first)
        return
    data = encode(part)
    if len(data) <= limit:
        yield part, data, len(data)
        return
    # (the sum of the requests alone fit, the request together did not: a few bytes of
    # longer length prefixes. Halves, then.)
    middle = len(part) // 2
    for half in (part[:middle], part[middle:]):
        yield from _packed(half, encode(half) if len(half) == 1 else b"", encode, limit)


def _count_too_large(signal: str, lost: int, size: int, whose: str) -> None:
    """``whose``: the limit, and whose it is ("the exporter's limit of N (…)")."""
    with _left_out_lock:
        first = not _too_large[signal]
        _too_large[signal] += lost
    if first:
        noun = _NOUNS[signal]
        _diagnostics.warn(
            f"{noun}s left out of the export (the rest of their batch is sent): a request "
            f"holding only one {noun} is {size} bytes, past {whose}; further ones are "
            "counted, not said")


def _count_left_out(signal: str, lost: int, reason: str) -> None:
    with _left_out_lock:
        first = not _left_out[signal]
        _left_out[signal] += lost
    if first:
        noun = _NOUNS[signal]
        _diagnostics.warn(
            f"{noun}s left out of the export (the rest of their batch is sent): neither "
            f"encoder can encode a {noun} whose {reason}; further ones are counted, not said")


def _reason(signal: str, item: Any, exc: Exception) -> str:
    """Why ``item`` cannot be encoded, naming the field and its type, never its value (a
    name or a body may hold what must not be shown)."""
    try:
        found = _odd_span_field(item) if signal == _TRACES else _odd_log_field(item)
    except Exception:  # (an item whose very fields raise)
        found = None
    return found or f"encoding raised {type(exc).__name__}"


def _odd_span_field(span: Any) -> str | None:
    from opentelemetry.trace import SpanKind, StatusCode

    for what, value in (("start_time", span.start_time), ("end_time", span.end_time)):
        if value is not None and not _is_time(value):
            return f"{what} {_time_problem(value)}"
    if not isinstance(span.kind, SpanKind):
        return f"kind is {_a(span.kind)}, not a SpanKind"
    if span.name is not None and not isinstance(span.name, str):
        return f"name is {_a(span.name)}, not text"
    status = span.status
    if status is not None and not isinstance(status.status_code, StatusCode):
        return f"status code is {_a(status.status_code)}, not a StatusCode"
    for event in span.events:
        if event.timestamp is not None and not _is_time(event.timestamp):
            return f"event timestamp {_time_problem(event.timestamp)}"
        if event.name is not None and not isinstance(event.name, str):
            return f"event name is {_a(event.name)}, not text"
    return _odd_ids(span.context, "trace") or _odd_schema(span)


def _odd_log_field(record: Any) -> str | None:
    log = record.log_record
    for what, value in (("timestamp", log.timestamp),
                        ("observed_timestamp", log.observed_timestamp)):
        if value is not None and not _is_time(value):
            return f"{what} {_time_problem(value)}"
    for what, value in (("severity_text", log.severity_text), ("event_name", log.event_name)):
        if value is not None and not isinstance(value, str):
            return f"{what} is {_a(value)}, not text"
    return _odd_ids(log, "log") or _odd_schema(record)


def _odd_ids(holder: Any, what: str) -> str | None:
    for name, bits in (("trace_id", 128), ("span_id", 64)):
        value = getattr(holder, name, None)
        if value is None:
            continue
        if not isinstance(value, int) or not 0 <= value < 1 << bits:
            return f"{what} {name} is not a {bits}-bit int"
    return None


def _odd_schema(item: Any) -> str | None:
    for what, owner in (("resource", item.resource), ("scope", item.instrumentation_scope)):
        url = getattr(owner, "schema_url", None)
        if url is not None and not isinstance(url, str):
            return f"{what}'s schema URL is {_a(url)}, not text"
    return None


def _a(value: Any) -> str:
    """'a float', 'an int': the type of a value, never the value."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _is_time(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


def _time_problem(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return "is out of range (OTLP takes nanoseconds since the epoch, in 64 bits)"
    return f"is {_a(value)}, where OTLP takes int nanoseconds since the epoch"


def _grpc_parts(signal: str) -> tuple[type, type, type, str]:
    """The exporter class, request and response messages, and Export method path."""
    if signal == _TRACES:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        return (OTLPSpanExporter, ExportTraceServiceRequest, ExportTraceServiceResponse,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    return (OTLPLogExporter, ExportLogsServiceRequest, ExportLogsServiceResponse,
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export")


@functools.cache
def _grpc_class(signal: str) -> type:
    import grpc

    from . import watched_exporters

    base, request_type, response_type, method = _grpc_parts(signal)
    make_encoder = _ENCODERS[signal]

    class RawStub:
        """The service's Export method taking the request already serialized. A refusal
        of the request as too large (``_size_refused``) is noted in ``refusal`` and raised
        as an error the exporter does not retry: the same request would be refused again
        until the export's deadline."""

        def __init__(self, channel: Any, refusal: _Refusal | None = None) -> None:
            self._call = channel.unary_unary(
                method,
                request_serializer=None,  # bytes pass through
                response_deserializer=response_type.FromString)  # type: ignore[attr-defined]
            self._refusal = refusal

        def Export(self, *args: Any, **kwargs: Any) -> Any:  # (the stub's method name)
            try:
                return self._call(*args, **kwargs)
            except grpc.RpcError as error:
                refusal = self._refusal
                limit = None if refusal is None else _size_refused(error)
                if refusal is None or limit is None:
                    raise
                refusal.limit = limit
                raise watched_exporters.not_retried(error, quiet=refusal.quiet) from error

    class GrpcExporter(base):  # type: ignore[valid-type, misc]
        """Our bytes go to the channel as they are; the exporter's retries, reconnects
        (which build the stub anew: ours) and metadata are unchanged. A request past the
        limit (``_GRPC_LIMIT``, or the backend's, lower, once it refused a request as too
        large) is sent in parts (``_parts``). An exporter without the stub attributes this
        relies on gets a request message parsed from our bytes, whole."""

        unencodable_items = 0  # (items left out of this exporter's exports: see _split)
        too_large_items = 0  # (items left out, their request alone past the limit)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = make_encoder()
            # (items, their request) while sent: each retry of the export asks for the
            # request again, and gets it without encoding (nor counting) anew.
            self._request: tuple[Any, Any] | None = None
            self._limit = _GRPC_LIMIT  # (the backend's, once it refused a larger request)
            self._limit_is_backends = False
            self._refusal = _Refusal()
            self._raw = all(hasattr(self, n) for n in ("_stub", "_channel", "_client"))
            if self._raw:
                self._stub = functools.partial(RawStub, refusal=self._refusal)
                self._client = self._stub(self._channel)

        def export(self, batch: Sequence[Any]) -> Any:
            return self._export(batch)  # (the log exporter's calls the mixin's, past ours)

        def _export(self, data: Sequence[Any]) -> Any:
            try:
                if not self._raw or self._shutdown:
                    return super()._export(data)
                encoded, items = self._encode(data)
                if len(encoded) > self._limit:
                    return self._send_in_parts(items, 0)
                return self._send(items, encoded, 0)
            finally:
                self._request = None  # (the batch is not kept alive past its export)

        def _translate_data(self, data: Sequence[Any]) -> Any:
            known = self._request
            if known is not None and known[0] is data:
                return known[1]
            encoded, _ = self._encode(data)
            request = encoded if self._raw else request_type.FromString(  # type: ignore[attr-defined]
                encoded)
            self._request = (data, request)
            return request

        def _theirs(self) -> Callable[[Sequence[Any]], bytes]:
            return functools.partial(_serialized, super()._translate_data)

        def _encode(self, data: Sequence[Any]) -> tuple[bytes, Sequence[Any]]:
            """The request for ``data``, and the items it holds: ours, else the exporter's
            encoder's, else split (``_split``: the items no encoder takes left out)."""
            encoded = _encoded(self._encoder, data)
            if encoded is not None:
                return encoded, data
            theirs = self._theirs()
            try:
                return theirs(data), data
            except Exception:
                encoded, lost, kept = _split(self._encoder, theirs, data, signal)
                self.unencodable_items += lost
                return encoded, kept

        def _send(self, items: Sequence[Any], encoded: bytes, depth: int) -> Any:
            """``items`` in their request ``encoded``, through the exporter's retry loop.
            Refused as too large (the backend's limit is lower than ours), the items are
            sent again in parts within the limit it gave, or half the request (at most
            ``_MAX_REFUSALS`` times in a row); an item refused alone is left out."""
            if len(encoded) > self._limit:  # (lowered since this part was made)
                return self._send_in_parts(items, depth)
            refusal = self._refusal
            refusal.limit = None
            refusal.quiet = depth < _MAX_REFUSALS or len(items) == 1
            self._request = (items, encoded)
            result = super()._export(items)
            stated = refusal.limit
            if stated is None or result is self._result.SUCCESS:
                return result
            size = len(encoded)
            limit = stated if 0 < stated < size else size // 2
            if limit < self._limit:
                self._limit, self._limit_is_backends = limit, True
                _diagnostics.debug(f"the backend refused a {size}-byte gRPC {signal} request "
                                   f"as too large: requests are now kept within {limit}")
            if len(items) == 1:
                self._count_too_large(1, size)
                return self._result.SUCCESS
            if depth >= _MAX_REFUSALS:
                return result
            return self._send_in_parts(items, depth + 1)

        def _send_in_parts(self, items: Sequence[Any], depth: int) -> Any:
            """(See the module doc.) A part the backend fails ends the export."""
            limit = self._limit
            encode = functools.partial(_quietly, self._encoder, self._theirs())
            lost = size = 0
            result = self._result.SUCCESS
            for part, data, part_size in _parts(items, encode, limit):
                if data is None:
                    lost, size = lost + 1, size or part_size
                elif self._send(part, data, depth) is not self._result.SUCCESS:
                    result = self._result.FAILURE
                    break
            if lost:
                self._count_too_large(lost, size)
            return result

        def _count_too_large(self, lost: int, size: int) -> None:
            self.too_large_items += lost
            whose = (f"the backend's limit of {self._limit} (it refused a larger request as "
                     "too large)" if self._limit_is_backends else
                     f"the limit of {self._limit} on a gRPC request (an OpenTelemetry "
                     "Collector's by default: max_recv_msg_size_mib 4)")
            _count_too_large(signal, lost, size, whose)

    GrpcExporter.__name__ = GrpcExporter.__qualname__ = f"Grpc{_NAMES[signal]}Exporter"
    return GrpcExporter


class _Refusal:
    """What the backend said of the request just sent (``limit``: None, or refused as too
    large, with the limit it stated, 0 if none), and whether the exporter's log line
    about such a refusal is to be left unsaid (``quiet``: what follows says it)."""

    __slots__ = ("limit", "quiet")

    def __init__(self) -> None:
        self.limit: int | None = None
        self.quiet = False


def _size_refused(error: Any) -> int | None:
    """The limit a gRPC error refusing a request as too large states (0 if it states
    none); None for any other error. Such a refusal is RESOURCE_EXHAUSTED without
    RetryInfo (with it, the server asks to be retried: throttling) in gRPC's words
    ("received message larger than max (N vs. LIMIT)"; grpc-java: "exceeds maximum size
    LIMIT: N"): the smallest number it holds is the limit."""
    import grpc

    try:
        if error.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            return None
        if any(key == "google.rpc.retryinfo-bin" for key, _ in error.trailing_metadata() or ()):
            return None
        details = str(error.details() or "")
    except Exception:  # (an error that does not tell)
        return None
    if not any(words in details.lower() for words in _SIZE_WORDS):
        return None
    numbers = [int(n) for n in re.findall(r"\d+", details)]
    return min(numbers) if numbers else 0


def note_payload_too_large(client: Any, refusal: _Refusal) -> None:
    """Have the exporter's HTTP ``client`` note a 413 answer in ``refusal.limit`` (0: the
    answer states no limit), its "Failed to export" line left unsaid when
    ``refusal.quiet`` (the caller sends the items again, or says what was left out). A
    client laid out otherwise is left as it is (413 then fails the export, as before)."""
    transport = getattr(client, "_transport", None)
    if transport is not None and hasattr(transport, "request"):
        client._transport = _RefusalNoted(transport, refusal)


class _RefusalNoted:
    """The HTTP exporter's transport, a 413 answer noted (see ``note_payload_too_large``);
    anything else is the transport's (its session, which the exporter factory pins)."""

    def __init__(self, inner: Any, refusal: _Refusal) -> None:
        self._inner = inner
        self._refusal = refusal

    def __getattr__(self, name: str) -> Any:
        if name in ("_inner", "_refusal"):  # (not set yet: a copy being made)
            raise AttributeError(name)
        return getattr(self._inner, name)

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        result = self._inner.request(method, url, **kwargs)
        if getattr(result, "status_code", None) == _PAYLOAD_TOO_LARGE:
            refusal = self._refusal
            refusal.limit = 0
            if refusal.quiet:
                from . import watched_exporters

                watched_exporters.quiet_this_attempt()
        return result

    def is_connection_error(self, exception: Exception | None) -> bool:
        return bool(self._inner.is_connection_error(exception))

    def close(self) -> None:
        self._inner.close()


def _serialized(translate: Callable[[Sequence[Any]], Any], items: Sequence[Any]) -> bytes:
    return translate(items).SerializeToString()  # type: ignore[no-any-return]


def _http_parts(signal: str) -> tuple[type, Any, Callable[[Sequence[Any]], Any]]:
    """The exporter class, its export result enum, and the encoder it uses."""
    if signal == _TRACES:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult

        return OTLPSpanExporter, SpanExportResult, encode_spans
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    return OTLPLogExporter, LogRecordExportResult, encode_logs


@functools.cache
def _http_class(signal: str) -> type:
    base, result_type, encode_theirs = _http_parts(signal)
    make_encoder = _ENCODERS[signal]
    theirs = functools.partial(_serialized, encode_theirs)

    class HttpExporter(base):  # type: ignore[valid-type, misc]
        """The exporter encodes inside ``export``, so ``export`` is ours: the same steps
        (shut-down check, transport, the exporter's metrics) around our bytes. An installed
        exporter lacking what those steps use goes through its own ``export``; a batch our
        encoder refuses is encoded by the exporter's (the same function its ``export``
        calls), or split (``_split``); a request past the limit is sent in parts
        (``_parts``), and so is one the backend refuses with 413 (``_send``)."""

        unencodable_items = 0  # (items left out of this exporter's exports: see _split)
        too_large_items = 0  # (items left out, their request alone past the limit)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._encoder = make_encoder()
            self._fast = all(hasattr(self, name) for name in
                             ("_client", "_metrics", "_shutdown", "_max_request_size"))
            self._refusal = _Refusal()
            self._learned = 0  # (the backend's limit, as far as its 413s tell; 0: none)
            if self._fast:
                note_payload_too_large(self._client, self._refusal)

        def export(self, items: Sequence[Any]) -> Any:
            if not self._fast or self._shutdown:
                return super().export(items)
            data = _encoded(self._encoder, items)
            if data is None:
                data, items = self._theirs_or_split(items)
            return self._send(items, data, 0)

        def _limit(self) -> int:
            """The request limit in force: the exporter's (0: none), or the backend's,
            lower, once it refused a larger request."""
            mine, learned = self._max_request_size, self._learned
            if learned and (mine <= 0 or learned < mine):
                return learned
            return mine if mine > 0 else 0

        def _send(self, items: Sequence[Any], data: bytes, depth: int) -> Any:
            """``items`` in their request ``data``, or in parts if it is past the limit.
            Refused with 413 Payload Too Large (the backend's limit is lower), the items
            are sent again at once in parts within half the refused request (the limit kept
            for later requests, not below ``_MIN_LEARNED``; at most ``_MAX_REFUSALS``
            times in a row); an item refused alone is left out and counted."""
            limit = self._limit()
            if 0 < limit < len(data):
                return self._export_in_parts(items, depth)
            refusal = self._refusal
            refusal.limit = None
            refusal.quiet = (depth < _MAX_REFUSALS and len(data) > _MIN_LEARNED) or len(
                items) == 1
            result = self._post(data, len(items))
            if refusal.limit is None or result is result_type.SUCCESS:
                return result
            if refusal.quiet:
                from . import watched_exporters

                watched_exporters.quiet_this_attempt(False)
            size = len(data)
            if len(items) == 1:
                self._learn(size // 2)
                self._count(1, size, refused=True)
                return result_type.SUCCESS
            if depth >= _MAX_REFUSALS or size <= _MIN_LEARNED:
                return result  # (a backend refusing even that has another trouble)
            self._learn(max(size // 2, _MIN_LEARNED))
            return self._export_in_parts(items, depth + 1)

        def _learn(self, limit: int) -> None:
            if limit >= _MIN_LEARNED and (not self._learned or limit < self._learned):
                self._learned = limit
                _diagnostics.debug(f"the backend refused an HTTP {signal} request with 413 "
                                   f"Payload Too Large: requests are now kept within {limit}")

        def _post(self, data: bytes, count: int) -> Any:
            with self._metrics.export_operation(count) as result:
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    status = getattr(sent, "status_code", None)
                    result.error_attrs = ({"http.response.status_code": status}
                                          if status is not None else None)
                    return result_type.FAILURE
            return result_type.SUCCESS

        def _theirs_or_split(self, items: Sequence[Any]) -> tuple[bytes, Sequence[Any]]:
            try:
                return theirs(items), items
            except Exception:
                encoded, lost, kept = _split(self._encoder, theirs, items, signal)
                self.unencodable_items += lost
                return encoded, kept

        def _export_in_parts(self, items: Sequence[Any], depth: int) -> Any:
            """(See the module doc.) A part the backend fails ends the export: the
            exporter has retried it already, and the rest would wait for the same."""
            encode = functools.partial(_quietly, self._encoder, theirs)
            lost = size = 0
            result = result_type.SUCCESS
            for part, data, part_size in _parts(items, encode, self._limit()):
                if data is None:
                    lost, size = lost + 1, size or part_size
                elif self._send(part, data, depth) is not result_type.SUCCESS:
                    result = result_type.FAILURE
                    break
            if lost:
                self._count(lost, size, refused=self._learned == self._limit())
            return result

        def _count(self, lost: int, size: int, *, refused: bool) -> None:
            self.too_large_items += lost
            limit = self._limit()
            whose = ("the backend's limit (it answered 413 Payload Too Large)" if refused else
                     f"the exporter's limit of {limit} (max_request_size)")
            _count_too_large(signal, lost, size, whose)

    HttpExporter.__name__ = HttpExporter.__qualname__ = f"Http{_NAMES[signal]}Exporter"
    return HttpExporter
