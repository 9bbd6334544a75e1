"""The OTLP protobuf wire pieces our span and log encoders share: varints, length-delimited
fields, ``AnyValue``/``KeyValue`` bodies, and the resource, scope and attribute encodings
that repeat from one export to the next (so they are cached).

Every function here writes exactly what protobuf's own serializer writes for the message the
OTLP exporter's encoder would build from the same value, and raises where that encoder (or
protobuf) would raise or behave in a way we do not copy: the callers catch it and hand the
batch to the exporter's encoder. Field tags are passed in already encoded (one byte each in
OTLP), which keeps the hot paths to a few concatenations.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes

__all__ = ["CACHE_LIMIT", "DOUBLE", "FIXED64", "CommonEncoder", "any_value", "field",
           "key_value", "text", "varint"]

_SMALL = [bytes((i,)) for i in range(128)]
FIXED64 = struct.Struct("<Q").pack
DOUBLE = struct.Struct("<d").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
CACHE_LIMIT = 4096  # entries per value cache; a full cache is cleared, not evicted piecemeal


def varint(n: int) -> bytes:
    """A non-negative int as a base-128 varint (negative ints are the caller's business)."""
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + varint(len(payload)) + payload


def text(tag: bytes, value: str) -> bytes:
    data = value.encode("utf-8")  # a lone surrogate raises: the caller falls back
    return tag + varint(len(data)) + data


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body (checks in the order the exporter's encoder does, so a
    bool is a bool, a str a string and a bytes bytes, before the Sequence test)."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return text(b"\x0a", value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"int value out of int64 range: {value}")
        return b"\x18" + varint(value if value >= 0 else value + (1 << 64))
    if isinstance(value, float):
        return b"\x21" + DOUBLE(value)
    if isinstance(value, bytes):
        return field(b"\x3a", value)
    if isinstance(value, Sequence):
        return field(b"\x2a", b"".join([field(b"\x0a", any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return field(b"\x32", b"".join(
            [field(b"\x0a", key_value(str(k), v)) for k, v in value.items()]))
    raise TypeError(f"cannot encode a {type(value).__name__} value")


def key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message body. An empty key is absent (proto3), but the value field is
    written even for an empty AnyValue (the exporter sets it)."""
    if type(key) is not str:  # protobuf would take None as no key, and refuse the rest
        raise TypeError(f"attribute key of type {type(key).__name__}")
    return (text(b"\x0a", key) if key else b"") + field(b"\x12", any_value(value))


class CommonEncoder:
    """Attribute, resource and scope encodings, cached across batches.

    The caches belong to one encoder, used by one export thread at a time; each is bounded.
    Resources and scopes are cached by identity (a ``Resource`` is immutable, and the SDK
    keeps one per provider and one scope per logger/tracer), holding the object so its id
    cannot be reused while cached.
    """

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, str], bytes] = {}
        self._int_attributes: dict[tuple[str, int], bytes] = {}  # (ints apart: 1 == True)
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    def _attrs(self, tag: bytes, attributes: Any) -> list[bytes]:
        """Each attribute as a ``KeyValue`` field with ``tag``; str and int pairs cached."""
        if not attributes:
            return []
        # A finished item's BoundedAttributes no longer changes: its dict's own items() (C)
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
                    body = key_value(key, value)
                    encoded = varint(len(body)) + body
                    if len(store) >= CACHE_LIMIT:
                        store.clear()
                    store[pair] = encoded
                out.append(tag + encoded)
            else:
                out.append(field(tag, key_value(key, value)))
        return out

    def _resource(self, resource: Any) -> bytes:
        """Resource{Spans,Logs} field 1 (always present), encoded once per Resource object."""
        known = self._resources.get(id(resource))
        if known is not None and known[0] is resource:
            return known[1]
        encoded = field(b"\x0a", b"".join(self._attrs(b"\x0a", resource.attributes)))
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def _scope(self, scope: Any) -> bytes:
        """Scope{Spans,Logs} field 1 (always present, empty for no scope), once per scope
        object."""
        known = self._scopes.get(id(scope))
        if known is not None and known[0] is scope:
            return known[1]
        body = []
        if scope is not None:
            if scope.name:
                body.append(text(b"\x0a", scope.name))
            if scope.version:
                body.append(text(b"\x12", scope.version))
            body.extend(self._attrs(b"\x1a", scope.attributes))
        encoded = field(b"\x0a", b"".join(body))
        if len(self._scopes) >= 2048:  # (the logging bridge makes a scope per logger)
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    @staticmethod
    def _cached_text(cache: dict[str, bytes], tag: bytes, value: str) -> bytes:
        encoded = cache.get(value)
        if encoded is None:
            encoded = text(tag, value)
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[value] = encoded
        return encoded
