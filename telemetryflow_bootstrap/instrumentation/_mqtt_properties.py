"""The trace context in MQTT 5 user properties (see ``paho_mqtt``): read back from a
message's properties (``creation_context``), and written into a copy of the PUBLISH
properties a program gave, or new ones (``TraceProperties``), never into the program's own
object; plus a quicker ``pack`` for properties that hold user properties only.

Why a module of its own: ``paho_mqtt`` keeps to the spans and metrics; this is the part
that touches what goes on the wire. The global propagator is used (``_messaging_common``'s
``Injector``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import get_current_span

from ._messaging_common import Injector

TRACE_KEYS = frozenset({"traceparent", "tracestate"})
_EMPTY = Context()


class _PairsGetter(Getter[Any]):
    """MQTT 5 user properties: a list of (name, value) pairs, a name possibly repeated (the
    first one counts)."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        for pair in carrier:
            if pair[0] == key:
                value = pair[1]
                return [value] if isinstance(value, str) else None
        return None

    def keys(self, carrier: Any) -> Iterable[str]:
        return [pair[0] for pair in carrier]


_GETTER = _PairsGetter()


def _user_properties(properties: Any) -> Any:
    """The user property pairs of an MQTT 5 ``Properties`` (it keeps them in its instance
    dict, under their property name), or None."""
    found = getattr(properties, "__dict__", None)
    return None if found is None else found.get("UserProperty")


def creation_context(properties: Any) -> tuple[Context, Any] | None:
    """The context a message's user properties carry, and its span context; None when
    they carry none (MQTT 3: no properties at all)."""
    pairs = _user_properties(properties)
    if not pairs or not isinstance(pairs, list):
        return None
    if not any(type(pair) is tuple and len(pair) == 2 and pair[0] in TRACE_KEYS
               for pair in pairs):
        return None  # (a propagator set by the program may read other keys: not those)
    extracted = propagate.extract(pairs, context=_EMPTY, getter=_GETTER)
    found = get_current_span(extracted).get_span_context()
    return (extracted, found) if found.is_valid else None


class TraceProperties:
    """Writes a span's context into the user properties of a copy of the PUBLISH
    properties a program gave (or of new ones), for one paho's ``Properties`` class."""

    __slots__ = ("_empty", "_injector", "_properties_class", "_publish_packet",
                 "_sent_class")

    def __init__(self, properties_class: Any, publish_packet: int) -> None:
        self._injector = Injector()
        self._properties_class = properties_class
        self._sent_class = _sent_properties_class(properties_class)
        self._publish_packet = publish_packet
        # new PUBLISH properties are copies of this one: paho's constructor builds its
        # tables of names anew each time (~10 µs); they are only ever read
        self._empty = properties_class(publish_packet)

    def with_context(self, given: Any, span: Any, current: Context) -> Any:
        """A copy of ``given`` (or new PUBLISH properties) whose user properties carry
        ``span``'s context; None when ``given`` is not something this understands."""
        properties_class = self._properties_class
        if given is None:
            source = self._empty
        elif type(given) is properties_class and given.packetType == self._publish_packet:
            source = given
        else:
            return None
        carrier: dict[str, Any] = {}
        self._injector.inject(carrier, span, current)
        if not carrier:
            return None
        # (not copy.copy: Properties' __setattr__ would append to the user properties)
        properties = object.__new__(self._sent_class)
        properties.__dict__.update(source.__dict__)
        kept = [pair for pair in _user_properties(source) or ()
                if not (type(pair) is tuple and (pair[0] in TRACE_KEYS or pair[0] in carrier))]
        kept.extend(carrier.items())
        properties.__dict__["UserProperty"] = kept
        return properties


def _sent_properties_class(properties_class: Any) -> Any:
    """paho's ``Properties`` with a quicker ``pack`` for properties that are user
    properties only (a publish the program gave no properties, the common case).

    Why: paho's ``pack`` walks its table of 27 property names (two string replacements,
    an attribute test and a second walk per name): with one ``traceparent`` pair, ~160k
    instructions a publish, twice what the publish span and its metric point cost. This
    writes the same bytes (identifier 0x26, then name and value each as a 2-byte length and
    UTF-8) and leaves anything else to paho's."""
    import struct

    from paho.mqtt.properties import VariableByteIntegers

    length = struct.Struct("!H").pack
    fields = frozenset({"packetType", "types", "names", "properties", "UserProperty"})

    def utf8(text: Any) -> bytes:
        data = text if isinstance(text, bytes) else bytes(text, "utf-8")
        return length(len(data)) + data

    class SentProperties(properties_class):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def pack(self) -> bytes:
            found = self.__dict__
            if not found.keys() <= fields:
                return super().pack()  # type: ignore[no-any-return]
            buffer = b"".join(b"\x26" + utf8(name) + utf8(value)
                              for name, value in found.get("UserProperty", ()))
            return VariableByteIntegers.encode(len(buffer)) + buffer  # type: ignore[no-any-return]

    SentProperties.__name__ = SentProperties.__qualname__ = properties_class.__name__
    SentProperties.__module__ = properties_class.__module__
    return SentProperties
