"""``end_span(span_id, error=exc)`` and ``with client.span(...)`` name a failure the way every
instrumentation does: ``error.type`` is the exception's fully-qualified class name (a
built-in's bare name), so an application's ``PaymentFailed`` cannot be mistaken for a
library's class of the same name."""

from __future__ import annotations

import pytest

from .test_client import Sinks, make_client, sinks

__all__ = ["make_client", "sinks"]


class PaymentFailed(Exception):
    """An application's own exception (``myapp.errors.PaymentFailed`` in a real project)."""


def test_end_span_error_is_named_in_full(make_client, sinks: Sinks) -> None:
    """end_span(id, error=PaymentFailed()) and a ``span()`` block it escapes: full name."""
    client = make_client().initialize()
    client.end_span(client.start_span("charge"), error=PaymentFailed("card declined"))
    with pytest.raises(PaymentFailed), client.span("refund"):
        raise PaymentFailed("no funds")
    client.end_span(client.start_span("builtin"), error=TimeoutError("slow"))
    assert client.flush(2.0)
    spans = {s.name: s for s in sinks.spans.get_finished_spans()}
    assert spans["charge"].attributes["error.type"] == f"{__name__}.PaymentFailed"
    assert spans["refund"].attributes["error.type"] == f"{__name__}.PaymentFailed"
    assert spans["builtin"].attributes["error.type"] == "TimeoutError"
