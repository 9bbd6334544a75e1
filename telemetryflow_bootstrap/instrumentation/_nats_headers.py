"""The trace context in NATS message headers (NATS 2.2+): whether the server takes headers,
and the context read back, letter case ignored, on the way in. (Writing it, into a copy of
the caller's headers on the way out, is ``_messaging_common.with_context``, which gRPC's
call metadata uses too.)

Why a module of its own: ``nats.py`` keeps to the spans and metrics; this is the part that
touches what goes on the wire. The global propagator is used (W3C ``traceparent`` /
``tracestate`` and ``baggage`` by default, or whatever ``OTEL_PROPAGATORS`` chose).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagate import extract
from opentelemetry.propagators.textmap import Getter

_EMPTY = Context()


def headers_supported(client: Any) -> bool:
    """Whether the server the client is connected to takes message headers (its INFO said
    so); a server without them would refuse an HPUB, so nothing is injected then."""
    info = getattr(client, "_server_info", None)
    return bool(info and info.get("headers"))


def creation_context(headers: Mapping[str, Any] | None) -> Context:
    """The context a message was created in, from its headers; an empty context (so a span
    started in it is a root) when it carries none."""
    if not headers:
        return _EMPTY
    return extract(headers, context=_EMPTY, getter=_GETTER)


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads a header by its exact name, else in any letter case: a Go or Java producer
    writes ``Traceparent`` (its header type's canonical form)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            for name, found in carrier.items():
                if type(name) is str and name.lower() == key:
                    value = found
                    break
            else:
                return None
        if isinstance(value, (list, tuple)):
            return [str(item) for item in value]
        return [str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()
