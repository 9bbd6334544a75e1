"""Values OTLP cannot carry (ints past 64 bits, lone surrogates) cost only themselves: a
program run under the installed ``telemetryflow-run`` against the real OTLP receiver makes
them among normal spans and log records, all in one export batch, and every item arrives —
the bad attribute left out, a bad name, body or description sent escaped — with one warning
per kind on stderr."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_PROTOCOLS = ("grpc", "http/protobuf")
_BIG = str(2**70)
_ESCAPED = "report-\\udcff.csv"  # the lone surrogate, as text a backend can show


def _run(receiver, protocol: str, mode: str) -> str:
    proc = run(python(app("bad_attribute_values_app.py"), mode),
               receiver_env(receiver, protocol=protocol))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{mode} normal=20\n"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetryflow: warning:")]


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_spans_with_values_otlp_cannot_carry_lose_only_those_values(otlp_receiver,
                                                                    protocol: str) -> None:
    """Normal spans around spans holding out-of-range ints (attributes, a sequence, an event,
    a link, the SDK client's span) and lone surrogates (a name, a status description) all
    arrive; only the bad attribute values are missing; one warning per kind, naming none of
    the values."""
    stderr = _run(otlp_receiver, protocol, "spans")
    spans = {span.name: span for span in otlp_receiver.wait_for_spans(26, timeout=20)}
    received = [s.name for s in otlp_receiver.spans()]
    assert received.count("normal-before") == received.count("normal-after") == 10
    big = spans["big-attributes"]
    assert big.attributes == {"ok": "kept"}
    assert big.events == [("big-event", {"ok": 1})]
    assert [link.attributes for link in spans["big-link"].links] == [{"ok": 2}]
    assert spans["client-big"].attributes == {"ok": "kept"}
    assert spans[f"open {_ESCAPED}"].attributes == {"ok": "kept"}
    assert spans["bad-status"].status_message == f"cannot read {_ESCAPED}"
    warnings = _warnings(stderr)
    assert len([w for w in warnings if "left out" in w]) == 1, stderr
    assert len([w for w in warnings if " sent as text " in w]) == 1, stderr
    assert "Failed to encode" not in stderr  # (the exporter's encoder never had to step in)
    assert _BIG not in stderr


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_log_records_with_values_otlp_cannot_carry_lose_only_those_values(otlp_receiver,
                                                                          protocol: str) -> None:
    """Normal records around records holding out-of-range ints (a logging ``extra=``, a
    structured body, an OpenTelemetry API body, a nested attribute) and a lone surrogate in a
    body all arrive: a bad attribute is left out, a body that cannot be carried as it is
    arrives as its text."""
    _run(otlp_receiver, protocol, "logs")
    logs = otlp_receiver.wait_for_logs(25, timeout=20)
    bodies = [log.body for log in logs]
    assert sorted(b for b in bodies if isinstance(b, str) and b.startswith("normal")) == sorted(
        [f"normal before {i}" for i in range(10)] + [f"normal after {i}" for i in range(10)])
    by_body = {str(log.body): log for log in logs}
    extra = by_body["big extra"].attributes
    assert extra["ok"] == "kept" and "big" not in extra
    assert {"order": {"id": 7, "total": _BIG}} in bodies
    assert _ESCAPED in bodies
    assert by_body[_BIG].attributes == {"ok": "kept"}
    assert by_body["nested big"].attributes == {"ok": "kept"}
