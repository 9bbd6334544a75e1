"""Finished spans → the bytes of an OTLP ``ExportTraceServiceRequest``, written directly.

Why not the exporter's own encoder: it builds a protobuf object per span, per attribute and
per value, and hashes each span's Resource (a JSON dump of all its attributes) to group
them. On a 2-core machine that is ~30 µs of the export thread per span, and the thread
competes for the GIL with the program it observes: for a service making thousands of
database calls a second it was the largest single cost we added. Here the wire format is
written by hand (a handful of varints and length prefixes), resources and scopes are
encoded once per object, and each ``(key, string value)`` attribute — the same few dozen
over and over in a service — is encoded once and reused.

The output is byte for byte what ``encode_spans(spans).SerializeToString()`` gives (tests
hold us to that, with generated spans). Anything unexpected (a value of a type OTLP cannot
carry, an int past 64 bits, a lone surrogate) raises, and the caller falls back to the
exporter's own encoder for that batch.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from .leaf_spans import LeafSpan

_SMALL = [bytes((i,)) for i in range(128)]
_KIND = {SpanKind.INTERNAL: b"\x30\x01", SpanKind.SERVER: b"\x30\x02",
         SpanKind.CLIENT: b"\x30\x03", SpanKind.PRODUCER: b"\x30\x04",
         SpanKind.CONSUMER: b"\x30\x05"}
_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_TIMES = struct.Struct("<BQBQ").pack  # span fields 7 and 8, both fixed64
_FLAGS_LOCAL = b"\x85\x01\x00\x01\x00\x00"  # field 16: CONTEXT_HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01\x00\x03\x00\x00"  # ... and CONTEXT_IS_REMOTE
_LINK_FLAGS_LOCAL = b"\x35\x00\x01\x00\x00"  # Link field 6
_LINK_FLAGS_REMOTE = b"\x35\x00\x03\x00\x00"
_PLAIN = (ReadableSpan, LeafSpan)  # exact types whose fields are read directly
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_CACHE_LIMIT = 4096


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _text(tag: bytes, value: str) -> bytes:
    data = value.encode("utf-8")  # a lone surrogate raises: the caller falls back
    return tag + _varint(len(data)) + data


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body (checks in the order the exporter's encoder does)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"int attribute value out of int64 range: {value}")
        return b"\x18" + _varint(value if value >= 0 else value + (1 << 64))
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _field(b"\x32", b"".join(
            [_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"cannot encode a {type(value).__name__} attribute value")


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


class SpanEncoder:
    """Encodes batches of ReadableSpans; keeps small caches, so one per export thread."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, str], bytes] = {}
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}
        self._blocks: dict[int, tuple[Any, bytes]] = {}
        self._names: dict[str, bytes] = {}
        self._int_attributes: dict[tuple[str, int], bytes] = {}  # (ints apart: 1 == True)
        self._statuses: dict[tuple[int, str | None], bytes] = {}

    def encode(self, spans: Sequence[Any]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` for ``spans``."""
        # resource → scope → encoded spans, in first-seen order (as the exporter groups).
        groups: dict[tuple[bytes, str], dict[tuple[Any, ...], list[bytes]]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            rkey = (self._resource(resource), resource.schema_url or "")
            # No scope and an empty one encode alike but are separate groups upstream.
            skey = (self._scope(scope), (scope.schema_url or "") if scope else "",
                    scope is None)
            scopes = groups.get(rkey)
            if scopes is None:
                scopes = groups[rkey] = {}
            encoded = scopes.get(skey)
            if encoded is None:
                encoded = scopes[skey] = []
            encoded.append(self._span(span))
        out = []
        for (resource, rschema), scopes in groups.items():
            body = [resource]
            for (scope, sschema, _), encoded in scopes.items():
                scope_spans = [scope]
                scope_spans.extend([_field(b"\x12", s) for s in encoded])
                if sschema:
                    scope_spans.append(_text(b"\x1a", sschema))
                body.append(_field(b"\x12", b"".join(scope_spans)))
            if rschema:
                body.append(_text(b"\x1a", rschema))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)

    # ----- the parts -----------------------------------------------------------------

    def _attrs(self, tag: bytes, attributes: Any) -> list[bytes]:
        """Each attribute as a ``KeyValue`` field with ``tag``; str and int pairs cached."""
        if not attributes:
            return []
        # An ended span's BoundedAttributes no longer changes: its dict's own items() (C)
        # instead of the Mapping protocol's, a Python call per key.
        items = (attributes._dict if type(attributes) is BoundedAttributes
                 else attributes).items()
        cache = self._attributes
        ints = self._int_attributes
        out = []
        for key, value in items:
            kind = type(value)
            if kind is str or kind is int:  # (a bool is not an int here: type, not isinstance)
                pair = (key, value)
                store = cache if kind is str else ints
                encoded = store.get(pair)
                if encoded is None:
                    body = _key_value(key, value)
                    encoded = _varint(len(body)) + body
                    if len(store) >= _CACHE_LIMIT:
                        store.clear()
                    store[pair] = encoded
                out.append(tag + encoded)
            else:
                out.append(_field(tag, _key_value(key, value)))
        return out

    def _resource(self, resource: Any) -> bytes:
        """ResourceSpans field 1 (always present), encoded once per Resource object."""
        known = self._resources.get(id(resource))
        if known is not None and known[0] is resource:
            return known[1]
        encoded = _field(b"\x0a", b"".join(self._attrs(b"\x0a", resource.attributes)))
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def _scope(self, scope: Any) -> bytes:
        """ScopeSpans field 1 (always present, empty for no scope), once per scope object."""
        known = self._scopes.get(id(scope))
        if known is not None and known[0] is scope:
            return known[1]
        body = []
        if scope is not None:
            if scope.name:
                body.append(_text(b"\x0a", scope.name))
            if scope.version:
                body.append(_text(b"\x12", scope.version))
            body.extend(self._attrs(b"\x1a", scope.attributes))
        encoded = _field(b"\x0a", b"".join(body))
        if len(self._scopes) >= 256:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    def _span(self, span: Any) -> bytes:
        if type(span) in _PLAIN:
            # What the SDK ends spans into, and ours: their fields, without a property call
            # and a tuple copy per field. A renamed field raises: the caller falls back.
            context, parent, name = span._context, span._parent, span._name
            attributes, events, links = span._attributes, span._events, span._links
            kind, start, end, status = span._kind, span._start_time, span._end_time, span._status
            dropped_attributes = getattr(attributes, "dropped", 0)
            dropped_events = getattr(events, "dropped", 0)
            dropped_links = getattr(links, "dropped", 0)
        else:
            context, parent, name = span.context, span.parent, span.name
            attributes, events, links = span.attributes, span.events, span.links
            kind, start, end, status = span.kind, span.start_time, span.end_time, span.status
            dropped_attributes = span.dropped_attributes
            dropped_events = span.dropped_events
            dropped_links = span.dropped_links
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"),
                 b"\x12\x08", context.span_id.to_bytes(8, "big")]
        state = context.trace_state
        if state:
            parts.append(_text(b"\x1a", ",".join([f"{k}={v}" for k, v in state.items()])))
        if parent:
            parts.append(b"\x22\x08")
            parts.append(parent.span_id.to_bytes(8, "big"))
        if name:
            parts.append(self._cached_text(self._names, b"\x2a", name))
        parts.append(_KIND[kind])
        if start and end:
            parts.append(_TIMES(0x39, start, 0x41, end))
        else:
            if start:
                parts.append(b"\x39" + _FIXED64(start))
            if end:
                parts.append(b"\x41" + _FIXED64(end))
        if attributes:
            parts.append(self._attribute_block(attributes))
        if dropped_attributes:
            parts.append(b"\x50" + _varint(dropped_attributes))
        if events:
            for event in events:
                parts.append(_field(b"\x5a", self._event(event)))
        if dropped_events:
            parts.append(b"\x60" + _varint(dropped_events))
        if links:
            for link in links:
                parts.append(_field(b"\x6a", self._link(link)))
        if dropped_links:
            parts.append(b"\x70" + _varint(dropped_links))
        if status is not None:
            parts.append(self._status(status))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote
                     else _FLAGS_LOCAL)
        return b"".join(parts)

    def _status(self, status: Any) -> bytes:
        key = (status.status_code.value, status.description)
        encoded = self._statuses.get(key)
        if encoded is None:
            body = _text(b"\x12", status.description) if status.description else b""
            if key[0]:
                body += b"\x18" + _varint(key[0])
            encoded = _field(b"\x7a", body)
            if len(self._statuses) >= 256:
                self._statuses.clear()
            self._statuses[key] = encoded
        return encoded

    @staticmethod
    def _cached_text(cache: dict[str, bytes], tag: bytes, value: str) -> bytes:
        encoded = cache.get(value)
        if encoded is None:
            encoded = _text(tag, value)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[value] = encoded
        return encoded

    def _attribute_block(self, attributes: Any) -> bytes:
        """All of a span's attributes; encoded once for an immutable set shared by many
        spans (what leaf spans carry), keyed by identity and kept alive while cached."""
        if getattr(attributes, "_immutable", False) is not True:
            return b"".join(self._attrs(b"\x4a", attributes))
        known = self._blocks.get(id(attributes))
        if known is not None and known[0] is attributes:
            return known[1]
        block = b"".join(self._attrs(b"\x4a", attributes))
        if len(self._blocks) >= 2048:
            self._blocks.clear()
        self._blocks[id(attributes)] = (attributes, block)
        return block

    def _event(self, event: Any) -> bytes:
        parts = []
        if event.timestamp:
            parts.append(b"\x09" + _FIXED64(event.timestamp))
        if event.name:
            parts.append(_text(b"\x12", event.name))
        parts.extend(self._attrs(b"\x1a", event.attributes))
        if event.dropped_attributes:
            parts.append(b"\x20" + _varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"),
                 b"\x12\x08", context.span_id.to_bytes(8, "big")]
        parts.extend(self._attrs(b"\x22", link.attributes))
        if link.dropped_attributes:
            parts.append(b"\x28" + _varint(link.dropped_attributes))
        parts.append(_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL)
        return b"".join(parts)
