"""Log records → the bytes of an OTLP ``ExportLogsServiceRequest``, written directly.

Why not the exporter's own encoder: it builds a protobuf object per record, per attribute
and per value, and it groups records in dicts keyed by the ``Resource`` itself, whose hash
is a JSON dump of all its attributes — for every record. That was 28 to 39 µs of the
export thread per record (by machine), against ~4 µs here; and the thread competes for the
GIL with the program: a program that logs fast lost most of its records to a full queue.
As for spans (``span_encoding``), the wire format is written by hand, resources and scopes
are encoded once per object, and the ``(key, str/int value)`` attributes a logging call
site repeats (file, function, line, thread) are encoded once and reused.

Grouping is the exporter's: each distinct resource and scope object of a batch is looked
up once with the objects' own hash and equality, so equal but distinct resources (or
scopes) share a group, encoded from the first one seen, exactly as there; but a resource
is hashed once per batch instead of once per record.

The output is byte for byte what ``encode_logs(batch).SerializeToString()`` gives (tests
hold us to that, with generated records). A value OTLP cannot carry costs only itself (see
``otlp_wire``): an attribute holding an int past 64 bits, text with a lone surrogate or an
object of another type is left out, as the exporter's encoder leaves it out; a body holding
one (a structured body logged through ``logging``, any body through the OpenTelemetry API),
or a lone surrogate in the severity text, event name or a schema URL, where the exporter's
encoder raises and its whole batch was lost, is sent with those parts as text. Anything
else the exporter's encoder would reject, or would encode in a way not copied here (a field
of an unexpected type), raises, and the caller falls back to the exporter's own encoder for
that batch (and, should that raise too, to each record alone: ``otlp_exporters``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry._logs import SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord

from .otlp_wire import (
    FIXED64,
    CommonEncoder,
    any_value,
    carriable,
    escaped,
    field,
    schema_url,
    text,
    varint,
)

_FLAGS = struct.Struct("<BI").pack  # LogRecord field 8, fixed32
_UINT32_MAX = (1 << 32) - 1
_INT32_MAX = (1 << 31) - 1


def _time(tag: bytes, value: Any) -> bytes:
    """A fixed64 timestamp field; None and 0 are absent (protobuf refuses a bool)."""
    if value is None:
        return b""
    if type(value) is not int:
        raise TypeError(f"timestamp of type {type(value).__name__}")
    return tag + FIXED64(value) if value else b""


def _optional_text(tag: bytes, value: Any) -> bytes:
    if value is None:
        return b""
    if type(value) is not str:
        raise TypeError(f"text field of type {type(value).__name__}")
    return text(tag, value) if value else b""


def _severity(number: Any, name: Any) -> bytes:
    """LogRecord fields 2 and 3. The exporter sends ``severity_number.value``, and nothing
    for a severity without one (a plain int included)."""
    value = getattr(number, "value", None)
    out = b""
    if value is not None:
        if type(value) is not int or not 0 <= value <= _INT32_MAX:
            raise ValueError(f"severity number {value!r}")
        if value:
            out = b"\x10" + varint(value)
    return out + _optional_text(b"\x1a", name)


class LogEncoder(CommonEncoder):
    """Encodes batches of ReadableLogRecords; keeps small caches, so one per export thread."""

    _SIGNAL = "log record"

    def __init__(self) -> None:
        super().__init__()
        self._severities: dict[tuple[int, Any], tuple[Any, bytes]] = {}

    def encode(self, batch: Sequence[Any]) -> bytes:
        """The serialized ``ExportLogsServiceRequest`` for ``batch``."""
        # resource → scope → encoded records, in first-seen order, keyed by the objects
        # (hash and equality) as the exporter keys them. By id, the groups of the objects
        # already met in this batch: a Resource's hash (its JSON dump) is computed once per
        # object and batch, not per record. (The batch holds the objects: ids stay unique.)
        groups: dict[Any, dict[Any, list[bytes]]] = {}
        resources: dict[int, dict[Any, list[bytes]]] = {}
        seen: dict[tuple[int, int], list[bytes]] = {}
        for record in batch:
            resource = record.resource
            scope = record.instrumentation_scope or None
            pair = (id(resource), id(scope))
            encoded = seen.get(pair)
            if encoded is None:
                scopes = resources.get(pair[0])
                if scopes is None:
                    scopes = resources[pair[0]] = groups.setdefault(resource, {})
                encoded = seen[pair] = scopes.setdefault(scope, [])
            try:
                encoded.append(self._record(record))
            except (ValueError, TypeError, RecursionError):  # (UnicodeEncodeError included)
                # A body or text OTLP cannot carry as it is (attributes leave themselves out);
                # anything else raises again, and the exporter's encoder takes the batch.
                encoded.append(self._record(_CarriableRecord(record)))
        out = []
        for resource, scopes in groups.items():
            body = [self._resource(resource)]
            for scope, records in scopes.items():
                scope_logs = [self._scope(scope)]
                scope_logs.extend(records)
                if scope and scope.schema_url:
                    scope_logs.append(schema_url(b"\x1a", scope.schema_url))
                body.append(field(b"\x12", b"".join(scope_logs)))
            if resource.schema_url:
                body.append(schema_url(b"\x1a", resource.schema_url))
            out.append(field(b"\x0a", b"".join(body)))
        return b"".join(out)

    # ----- the parts -----------------------------------------------------------------

    def _record(self, record: Any) -> bytes:
        """ScopeLogs field 2: one LogRecord, tag and length included."""
        log = record.log_record
        attributes = log.attributes
        if type(attributes) is BoundedAttributes:
            # An emitted record's attributes no longer change: read its dict, without the
            # Mapping protocol's Python calls (nor the dropped_attributes property's, for a
            # plain ReadableLogRecord).
            dropped = (attributes.dropped if type(record) is ReadableLogRecord
                       else record.dropped_attributes)
            attributes = attributes._dict
        else:
            dropped = record.dropped_attributes
        timestamp = log.timestamp
        parts = [b"\x09" + FIXED64(timestamp) if timestamp and type(timestamp) is int
                 else _time(b"\x09", timestamp),
                 self._severity(log.severity_number, log.severity_text)]
        body = log.body
        if type(body) is str:
            data = body.encode("utf-8")
            size = varint(len(data))
            parts.append(b"\x2a" + varint(1 + len(size) + len(data)) + b"\x0a" + size + data)
        else:
            parts.append(field(b"\x2a", any_value(body)))  # present even for None
        if attributes:
            parts.extend(self._attrs(b"\x32", attributes))
        if dropped:
            if type(dropped) is not int or not 0 < dropped <= _UINT32_MAX:
                raise ValueError(f"dropped attributes count {dropped!r}")
            parts.append(b"\x38" + varint(dropped))
        elif type(dropped) is not int:  # (protobuf refuses 0.0 or False)
            raise TypeError(f"dropped attributes count {dropped!r}")
        flags = int(log.trace_flags)
        if flags:
            parts.append(_FLAGS(0x45, flags))  # (out of uint32 range: struct.error)
        trace_id, span_id = log.trace_id, log.span_id
        if trace_id != 0:
            parts.append(b"\x4a\x10" + trace_id.to_bytes(16, "big"))
        if span_id != 0:
            parts.append(b"\x52\x08" + span_id.to_bytes(8, "big"))
        observed = log.observed_timestamp
        parts.append(b"\x59" + FIXED64(observed) if observed and type(observed) is int
                     else _time(b"\x59", observed))
        event_name = log.event_name
        if event_name is not None:
            parts.append(_optional_text(b"\x62", event_name))
        encoded = b"".join(parts)
        return b"\x12" + varint(len(encoded)) + encoded

    def _severity(self, number: Any, name: Any) -> bytes:
        """Fields 2 and 3, cached for the few (SeverityNumber, text) pairs in use."""
        if number is not None and type(number) is not SeverityNumber:
            return _severity(number, name)  # (any object: not cached by identity)
        key = (id(number), name)
        known = self._severities.get(key)
        if known is not None and known[0] is number:
            return known[1]
        encoded = _severity(number, name)
        if len(self._severities) >= 256:
            self._severities.clear()
        self._severities[key] = (number, encoded)
        return encoded


class _CarriableRecord:
    """A record's fields as ``LogEncoder._record`` reads them from a record of another
    type, its body, severity text and event name made into what OTLP can carry."""

    __slots__ = ("dropped_attributes", "log_record")

    def __init__(self, record: Any) -> None:
        self.dropped_attributes = record.dropped_attributes
        self.log_record = _LogFields(record.log_record)


class _LogFields:
    __slots__ = ("attributes", "body", "event_name", "observed_timestamp", "severity_number",
                 "severity_text", "span_id", "timestamp", "trace_flags", "trace_id")

    def __init__(self, log: Any) -> None:
        self.attributes, self.timestamp = log.attributes, log.timestamp
        self.observed_timestamp = log.observed_timestamp
        self.trace_id, self.span_id, self.trace_flags = log.trace_id, log.span_id, log.trace_flags
        self.severity_number = log.severity_number
        self.severity_text = escaped(log.severity_text, "a log severity text")
        self.event_name = escaped(log.event_name, "a log event name")
        self.body = carriable(log.body, "a log record body")
