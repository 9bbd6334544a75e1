"""Finished spans → the bytes of an OTLP ``ExportTraceServiceRequest``, written directly.

Why not the exporter's own encoder: it builds a protobuf object per span, per attribute and
per value, and hashes each span's Resource (a JSON dump of all its attributes) to group
them. On a 2-core machine that is ~30 µs of the export thread per span, and the thread
competes for the GIL with the program it observes: for a service making thousands of
database calls a second it was the largest single cost we added. Here the wire format is
written by hand (a handful of varints and length prefixes), resources and scopes are
encoded once per object, and each ``(key, string value)`` attribute — the same few dozen
over and over in a service — is encoded once and reused (those parts, shared with the log
encoder, are in ``otlp_wire``).

The output is byte for byte what ``encode_spans(spans).SerializeToString()`` gives (tests
hold us to that, with generated spans). A value OTLP cannot carry costs only itself (see
``otlp_wire``): an attribute (of a span, event, link, scope or resource) holding an int past
64 bits, text with a lone surrogate or an object of another type is left out, as the
exporter's encoder leaves it out; a lone surrogate in a span or event name or a status
description or a schema URL, where the exporter's encoder raises and its whole batch was
lost, is sent escaped. Anything else unexpected raises, and the caller falls back to the
exporter's own encoder for that batch (and, should that raise too, to each span alone:
``otlp_exporters``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from .leaf_spans import LeafSpan
from .otlp_wire import (
    CACHED_MAX_BYTES,
    FIXED64,
    CommonEncoder,
    escaped,
    field,
    schema_url,
    text,
    varint,
)

_KIND = {SpanKind.INTERNAL: b"\x30\x01", SpanKind.SERVER: b"\x30\x02",
         SpanKind.CLIENT: b"\x30\x03", SpanKind.PRODUCER: b"\x30\x04",
         SpanKind.CONSUMER: b"\x30\x05"}
_TIMES = struct.Struct("<BQBQ").pack  # span fields 7 and 8, both fixed64
_FLAGS_LOCAL = b"\x85\x01\x00\x01\x00\x00"  # field 16: CONTEXT_HAS_IS_REMOTE
_FLAGS_REMOTE = b"\x85\x01\x00\x03\x00\x00"  # ... and CONTEXT_IS_REMOTE
_LINK_FLAGS_LOCAL = b"\x35\x00\x01\x00\x00"  # Link field 6
_LINK_FLAGS_REMOTE = b"\x35\x00\x03\x00\x00"
_PLAIN = (ReadableSpan, LeafSpan)  # exact types whose fields are read directly
# The status cache: entries; encodings up to _SMALL_STATUS bytes counted, not sized (256
# of them: 64 KiB); bigger ones, up to CACHED_MAX_BYTES, held within a budget (with their
# texts, about as much again), so it holds a few MiB at most, not 256 descriptions of any
# size.
_STATUS_LIMIT = 256
_SMALL_STATUS = 256
_STATUS_BUDGET_BYTES = 1 << 20


class SpanEncoder(CommonEncoder):
    """Encodes batches of ReadableSpans; keeps small caches, so one per export thread."""

    _SIGNAL = "span"
    # (the size of the big encodings _statuses holds; set on the instance once one is)
    _status_bytes = 0

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, tuple[Any, bytes]] = {}
        self._names: dict[str, bytes] = {}
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
            try:
                encoded.append(self._span(span))
            except UnicodeEncodeError:  # (a lone surrogate: attributes leave themselves out)
                encoded.append(self._span(_EscapedSpan(span)))
        out = []
        for (resource, rschema), scopes in groups.items():
            body = [resource]
            for (scope, sschema, _), encoded in scopes.items():
                scope_spans = [scope]
                scope_spans.extend([field(b"\x12", s) for s in encoded])
                if sschema:
                    scope_spans.append(schema_url(b"\x1a", sschema))
                body.append(field(b"\x12", b"".join(scope_spans)))
            if rschema:
                body.append(schema_url(b"\x1a", rschema))
            out.append(field(b"\x0a", b"".join(body)))
        return b"".join(out)

    # ----- the parts -----------------------------------------------------------------

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
            parts.append(text(b"\x1a", ",".join([f"{k}={v}" for k, v in state.items()])))
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
                parts.append(b"\x39" + FIXED64(start))
            if end:
                parts.append(b"\x41" + FIXED64(end))
        if attributes:
            parts.append(self._attribute_block(attributes))
        if dropped_attributes:
            parts.append(b"\x50" + varint(dropped_attributes))
        if events:
            for event in events:
                parts.append(field(b"\x5a", self._event(event)))
        if dropped_events:
            parts.append(b"\x60" + varint(dropped_events))
        if links:
            for link in links:
                parts.append(field(b"\x6a", self._link(link)))
        if dropped_links:
            parts.append(b"\x70" + varint(dropped_links))
        if status is not None:
            parts.append(self._status(status))
        parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote
                     else _FLAGS_LOCAL)
        return b"".join(parts)

    def _status(self, status: Any) -> bytes:
        key = (status.status_code.value, status.description)
        encoded = self._statuses.get(key)
        if encoded is None:
            encoded = self._new_status(key)
        return encoded

    def _new_status(self, key: tuple[int, str | None]) -> bytes:
        """Cached like the other texts (``otlp_wire``): a description is often an exception's
        message, and one holding a payload or a response body (megabytes) was kept with its
        encoding until 256 others came. Big ones count against a budget, and one past
        ``CACHED_MAX_BYTES`` is encoded each time."""
        code, description = key
        body = text(b"\x12", description) if description else b""
        if code:
            body += b"\x18" + varint(code)
        encoded = field(b"\x7a", body)
        size = len(encoded)
        statuses = self._statuses
        if size <= _SMALL_STATUS:
            if len(statuses) >= _STATUS_LIMIT:
                statuses.clear()
                self._status_bytes = 0
            statuses[key] = encoded
        elif size <= CACHED_MAX_BYTES:
            used = self._status_bytes + size
            if used > _STATUS_BUDGET_BYTES or len(statuses) >= _STATUS_LIMIT:
                statuses.clear()
                used = size
            self._status_bytes = used
            statuses[key] = encoded
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
            parts.append(b"\x09" + FIXED64(event.timestamp))
        if event.name:
            parts.append(text(b"\x12", event.name))
        parts.extend(self._attrs(b"\x1a", event.attributes))
        if event.dropped_attributes:
            parts.append(b"\x20" + varint(event.dropped_attributes))
        return b"".join(parts)

    def _link(self, link: Any) -> bytes:
        context = link.context
        parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"),
                 b"\x12\x08", context.span_id.to_bytes(8, "big")]
        parts.extend(self._attrs(b"\x22", link.attributes))
        if link.dropped_attributes:
            parts.append(b"\x28" + varint(link.dropped_attributes))
        parts.append(_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL)
        return b"".join(parts)


class _Status(NamedTuple):
    status_code: Any
    description: str | None


class _Event(NamedTuple):
    name: str
    attributes: Any
    timestamp: int | None
    dropped_attributes: int


class _EscapedSpan:
    """A span's fields as ``SpanEncoder._span`` reads them from a span of another type, its
    texts (name, status description, event names) with lone surrogates escaped: what is
    sent for a span whose texts OTLP cannot carry as they are."""

    __slots__ = ("attributes", "context", "dropped_attributes", "dropped_events",
                 "dropped_links", "end_time", "events", "kind", "links", "name", "parent",
                 "start_time", "status")

    def __init__(self, span: Any) -> None:
        self.context, self.parent, self.kind = span.context, span.parent, span.kind
        self.attributes, self.links = span.attributes, span.links
        self.start_time, self.end_time = span.start_time, span.end_time
        self.dropped_attributes = span.dropped_attributes
        self.dropped_events, self.dropped_links = span.dropped_events, span.dropped_links
        self.name = escaped(span.name, "a span name")
        status = span.status
        self.status = status if status is None else _Status(
            status.status_code, escaped(status.description, "a span status description"))
        self.events = [_Event(escaped(event.name, "a span event name"), event.attributes,
                              event.timestamp, event.dropped_attributes)
                       for event in span.events]
