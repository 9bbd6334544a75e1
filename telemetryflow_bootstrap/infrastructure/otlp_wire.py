"""The OTLP protobuf wire pieces our span and log encoders share: varints, length-delimited
fields, ``AnyValue``/``KeyValue`` bodies, and the resource, scope and attribute encodings
that repeat from one export to the next (so they are cached).

Every function here writes exactly what protobuf's own serializer writes for the message the
OTLP exporter's encoder would build from the same value, and raises where that encoder (or
protobuf) would raise or behave in a way we do not copy. Field tags are passed in already
encoded (one byte each in OTLP), which keeps the hot paths to a few concatenations.

Values OTLP cannot carry (an int past 64 bits, text with a lone surrogate — what
``os.fsdecode`` makes of an undecodable byte — an object of another type) cost only
themselves, never the batch around them (where the exporter's encoder raises, a batch of
hundreds of spans was lost to one such value): an attribute holding one is left out, as the
exporter's encoder leaves it out (so the bytes stay the same), and a field that is not an
attribute (a name, a log body, a status description) is sent as text OTLP can carry
(``escaped``, ``carriable``). Each is counted (``unencodable_counts``), and the first of
each kind is said on stderr. The good path pays nothing for this: the checks run once an
encoding has raised.

A count is for a value the request sent left out or changed: an encoding whose bytes are
not sent counts nothing (``uncounted``), and one that raises part way counts nothing either
(``tentatively``: its counts are kept only if it returns, and what it cached is dropped, or
a later encoding would reuse it without counting).
"""

from __future__ import annotations

import contextlib
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes

from .. import _diagnostics

__all__ = ["CACHED_MAX_BYTES", "CACHE_BUDGET_BYTES", "CACHE_LIMIT", "DOUBLE", "FIXED64",
           "CommonEncoder", "any_value", "carriable", "escaped", "field", "key_value",
           "schema_url", "tentatively", "text", "uncounted", "unencodable_counts", "varint"]

_SMALL = [bytes((i,)) for i in range(128)]
FIXED64 = struct.Struct("<Q").pack
DOUBLE = struct.Struct("<d").pack
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
CACHE_LIMIT = 4096  # entries per value cache; a full cache is cleared, not evicted piecemeal
# What the value caches keep of big values. A big value (a captured body, a payload) is
# rarely sent twice, and cached it held its text and its encoding until 4096 other values
# came (a 36 MiB payload held 72 MiB). So a value whose encoding is past CACHED_MAX_BYTES
# is encoded each time, and a text cache (str attribute values, span names) is cleared
# once the encodings past _SMALL_ENTRY it holds pass CACHE_BUDGET_BYTES: at most ~10 MiB
# with their texts and the small ones, where SQL statements of a few KiB, sent on every
# span, stay cached. The common path pays nothing: sizes are looked at on a cache miss.
CACHED_MAX_BYTES = 16 * 1024
CACHE_BUDGET_BYTES = 4 << 20
_SMALL_ENTRY = 256  # (an encoding up to this size is cached without counting its size)
_MAX_DEPTH = 16  # (carriable: deeper nesting, or a list holding itself, becomes text)

# What was left out or changed to fit OTLP, for get_status(); by the export threads.
_LEFT_OUT, _AS_TEXT = "attributes_left_out", "values_sent_as_text"
_counts = {_LEFT_OUT: 0, _AS_TEXT: 0}
_said: set[str] = set()
_counts_lock = threading.Lock()
# Per thread: .mode None (count), _UNCOUNTED (an encoding whose bytes are not sent) or
# _PENDING (``tentatively``: .pending holds kind -> [count, first message] until it returns).
_trial = threading.local()
_UNCOUNTED, _PENDING = "uncounted", "pending"


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


def schema_url(tag: bytes, value: str) -> bytes:
    """A scope's or resource's schema URL, escaped (``escaped``) if it holds a lone
    surrogate: the exporter's encoder raises there, and every item of the scope (or the
    resource: the whole process) was lost to it. Once per group and batch."""
    try:
        return text(tag, value)
    except UnicodeEncodeError:
        return text(tag, escaped(value, "a schema URL"))


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


def unencodable_counts() -> dict[str, int]:
    """How many attribute values were left out of the exports, and how many other values
    (names, bodies, descriptions) were sent as text, because OTLP cannot carry them."""
    with _counts_lock:
        return dict(_counts)


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Meanwhile, on this thread, what is left out or escaped is neither counted nor said:
    for an encoding of items whose own encoding counted already (``otlp_exporters`` tries
    each item of a batch alone, counted, then encodes those that encode together)."""
    previous = getattr(_trial, "mode", None)
    _trial.mode = _UNCOUNTED
    try:
        yield
    finally:
        _trial.mode = previous


def tentatively(encoder: CommonEncoder, items: Any) -> bytes:
    """``encoder.encode(items)``, what it left out or escaped counted only if it returns:
    one that raises (an item no encoder takes, further on) counts nothing, and forgets
    what it cached (``CommonEncoder.forget``), so that the encoding that is sent counts it.
    Inside ``uncounted`` (or another of these) it is a plain ``encode``."""
    if getattr(_trial, "mode", None) is not None:
        return encoder.encode(items)  # type: ignore[attr-defined, no-any-return]
    _trial.mode, _trial.pending = _PENDING, {}
    try:
        encoded = encoder.encode(items)  # type: ignore[attr-defined]
    except BaseException:
        encoder.forget()
        raise
    finally:
        pending, _trial.mode, _trial.pending = _trial.pending, None, None
    for kind, (count, message) in pending.items():
        _commit(kind, count, message)
    return encoded  # type: ignore[no-any-return]


def _count(kind: str, message: str) -> None:
    """Count one value of ``kind``; the first of each kind in the process is said."""
    mode = getattr(_trial, "mode", None)
    if mode is None:
        _commit(kind, 1, message)
    elif mode is _PENDING:
        known = _trial.pending.get(kind)
        if known is None:
            _trial.pending[kind] = [1, message]
        else:
            known[0] += 1


def _commit(kind: str, count: int, message: str) -> None:
    with _counts_lock:
        _counts[kind] += count
        first = kind not in _said
        _said.add(kind)
    if first:
        _diagnostics.warn(f"{message}; further ones are counted, not said")


def _why(value: Any) -> str:
    """What makes ``value`` impossible to carry, without showing it (it may be personal)."""
    if isinstance(value, str):
        return "text with a lone surrogate, which is not UTF-8"
    if isinstance(value, int) and not isinstance(value, bool):
        return "an int past 64 bits"
    if isinstance(value, (Sequence, Mapping)) and not isinstance(value, bytes):
        return f"a {type(value).__name__} holding a value OTLP cannot carry"
    return f"a value of type {type(value).__name__}"


def _left_out(signal: str, key: Any, value: Any) -> None:
    name = repr(key[:100]) if isinstance(key, str) else f"of type {type(key).__name__}"
    why = _why(value) if isinstance(key, str) and _fits(key) else _why(key) + " (its key)"
    _count(_LEFT_OUT, f"{signal} attribute {name} left out of the export: {why}, which "
                      "OTLP cannot carry (the rest is sent)")


def _fits(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(value: Any, what: str) -> Any:
    """``value`` (a name, a description) as text OTLP can carry: a lone surrogate becomes
    ``\\udcff``, which shows what was there. Anything else is returned as it is."""
    if type(value) is not str or _fits(value):
        return value
    _count(_AS_TEXT, f"{what} sent as text with its lone surrogates escaped (\\udXXX): "
                     "OTLP carries only UTF-8")
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def carriable(value: Any, what: str) -> Any:
    """``value`` (a log body) as ``any_value`` can encode it: each part OTLP cannot carry (an
    int past 64 bits, an object of another type) becomes its text, lone surrogates escaped.
    Text, not left out: a body is the record's message, and the logging bridge already
    sends an object logged as its ``str()``."""
    try:
        any_value(value)
    except Exception as exc:  # (RecursionError too: a list holding itself)
        why = _why(value) if not isinstance(exc, RecursionError) else "nesting too deep"
        _count(_AS_TEXT, f"{what} sent with the parts OTLP cannot carry as text: {why}")
        return _as_carriable(value, 0)
    return value


def _as_carriable(value: Any, depth: int) -> Any:
    """``carriable``'s work, in ``any_value``'s order of checks (a bool before an int, a str
    and bytes before a Sequence)."""
    if value is None or isinstance(value, (bool, float, bytes)):
        return value
    if isinstance(value, str):
        return value if _fits(value) else value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else str(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, Sequence):
            return [_as_carriable(v, depth + 1) for v in value]
        if isinstance(value, Mapping):
            return {_as_carriable(_text_of(k), depth + 1): _as_carriable(v, depth + 1)
                    for k, v in value.items()}
    return _as_carriable(_text_of(value), depth)


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # (a __str__ that raises)
        return f"<unprintable {type(value).__qualname__}>"


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

    _SIGNAL = "telemetry"  # (what a left-out attribute belonged to, in the warning)
    # What is cached per object, encoded once and reused without encoding (or counting)
    # again: a subclass names its own such caches here too (see ``forget``).
    _COUNTED_CACHES: tuple[str, ...] = ("_resources", "_scopes", "_blocks")

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, str], bytes] = {}
        self._int_attributes: dict[tuple[str, int], bytes] = {}  # (ints apart: 1 == True)
        # (the size of the big encodings _attributes holds, and _cached_text's cache:
        # CACHE_BUDGET_BYTES)
        self._cached_bytes = self._text_bytes = 0
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    def forget(self) -> None:
        """Drop the per-object caches (``_COUNTED_CACHES``) after an encoding whose counts
        were not kept (``tentatively``). Only then: the next encodings build them again."""
        for name in self._COUNTED_CACHES:
            cache = getattr(self, name, None)
            if isinstance(cache, dict):
                cache.clear()

    def _attrs(self, tag: bytes, attributes: Any) -> list[bytes]:
        """Each attribute as a ``KeyValue`` field with ``tag``; str and int pairs cached.
        One OTLP cannot carry is left out (see the module doc)."""
        if not attributes:
            return []
        # A finished item's BoundedAttributes no longer changes: its dict's own items() (C)
        # instead of the Mapping protocol's, a Python call per key.
        items = (attributes._dict if type(attributes) is BoundedAttributes
                 else attributes).items()
        cache = self._attributes
        ints = self._int_attributes
        out = []
        try:  # (free in 3.11+; about a bytecode in 3.10)
            for key, value in items:
                kind = type(value)
                if kind is str:
                    pair = (key, value)
                    encoded = cache.get(pair)
                    if encoded is None:
                        body = key_value(key, value)
                        encoded = varint(len(body)) + body
                        if len(encoded) <= _SMALL_ENTRY:  # (most: counted, not sized)
                            if len(cache) >= CACHE_LIMIT:
                                cache.clear()
                            cache[pair] = encoded
                        elif len(encoded) <= CACHED_MAX_BYTES:  # (else encoded each time)
                            self._remember(cache, pair, encoded)
                    out.append(tag + encoded)
                elif kind is int:  # (a bool is not an int here: type, not isinstance)
                    pair = (key, value)
                    encoded = ints.get(pair)
                    if encoded is None:
                        body = key_value(key, value)
                        encoded = varint(len(body)) + body
                        if len(ints) >= CACHE_LIMIT:
                            ints.clear()
                        ints[pair] = encoded
                    out.append(tag + encoded)
                else:
                    out.append(field(tag, key_value(key, value)))
        except Exception:  # (the exporter's encoder, too, leaves one out on any exception)
            return self._carriable_attrs(tag, items)
        return out

    def _remember(self, store: dict[Any, bytes], pair: Any, encoded: bytes) -> None:
        """Cache a value bigger than most (``_SMALL_ENTRY``), within the budget: the
        cache is cleared when the encodings of such values pass ``CACHE_BUDGET_BYTES``.
        (Small values, and ints, are not counted: 4096 of them take at most ~2 MiB.)"""
        used = self._cached_bytes + len(encoded)
        if used > CACHE_BUDGET_BYTES or len(store) >= CACHE_LIMIT:
            store.clear()
            used = len(encoded)
        self._cached_bytes = used
        store[pair] = encoded

    def _carriable_attrs(self, tag: bytes, items: Any) -> list[bytes]:
        """The attributes one by one, each that cannot be encoded left out and counted."""
        out = []
        for key, value in items:
            try:
                out.append(field(tag, key_value(key, value)))
            except Exception:
                _left_out(self._SIGNAL, key, value)
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
            name = escaped(scope.name, "an instrumentation scope name")
            version = escaped(scope.version, "an instrumentation scope version")
            if name:
                body.append(text(b"\x0a", name))
            if version:
                body.append(text(b"\x12", version))
            body.extend(self._attrs(b"\x1a", scope.attributes))
        encoded = field(b"\x0a", b"".join(body))
        if len(self._scopes) >= 2048:  # (the logging bridge makes a scope per logger)
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    def _cached_text(self, cache: dict[str, bytes], tag: bytes, value: str) -> bytes:
        """``text(tag, value)``, cached in ``cache`` (one per encoder: its size is kept in
        ``_text_bytes``)."""
        encoded = cache.get(value)
        if encoded is None:
            encoded = text(tag, value)
            if len(encoded) <= _SMALL_ENTRY:
                if len(cache) >= CACHE_LIMIT:
                    cache.clear()
                cache[value] = encoded
            elif len(encoded) <= CACHED_MAX_BYTES:
                used = self._text_bytes + len(encoded)
                if used > CACHE_BUDGET_BYTES or len(cache) >= CACHE_LIMIT:
                    cache.clear()
                    used = len(encoded)
                self._text_bytes = used
                cache[value] = encoded
        return encoded
