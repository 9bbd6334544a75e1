"""An item neither the exporter's encoder nor ours can encode (a float timestamp, a span kind
given as text, a span renamed to an object, an int severity text) costs only itself: a program
run under the installed ``telemetryflow-run`` against the real OTLP receiver makes a few among
normal spans and log records, all in one export batch; every other item arrives, one warning
per signal says what was left out and why (without any value), and the exit does not blame
the backend. A schema URL with a lone surrogate is sent escaped, its items kept."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_PROTOCOLS = ("grpc", "http/protobuf")
_ESCAPED_SCHEMA = "https://example.com/schemas/\\udcff"


def _run(receiver, protocol: str, mode: str, *args: str) -> list[str]:
    proc = run(python(app("unencodable_items_app.py"), mode, *args),
               receiver_env(receiver, protocol=protocol))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{mode} normal=20\n"), proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "backend down" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines()
            if line.startswith("telemetryflow: warning:")]


def _schema_urls(receiver, signal: str) -> set[str]:
    out = set()
    for request in receiver.requests(signal):
        groups = (request.message.resource_spans if signal == "traces"
                  else request.message.resource_logs)
        for group in groups:
            for scoped in (group.scope_spans if signal == "traces" else group.scope_logs):
                out.add(scoped.schema_url)
    return out


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_spans_no_encoder_can_encode_cost_only_themselves(otlp_receiver,
                                                          protocol: str) -> None:
    """Normal spans around a span started at ``time.time()``, one with kind "server", one
    with an event timestamped ``time.time()`` and one a SpanProcessor renamed to a path
    object: the normal ones (and the process span) arrive, those four do not; the span of
    a tracer with an undecodable schema URL arrives with it escaped; one warning names
    spans and a reason."""
    warnings = _run(otlp_receiver, protocol, "spans")
    otlp_receiver.wait_for_spans(21, timeout=20)
    names = [span.name for span in otlp_receiver.spans()]
    assert names.count("normal-before") == names.count("normal-after") == 10
    assert "odd-schema" in names
    assert not {"seconds-start", "string-kind", "seconds-event", "GET"} & set(names)
    assert _ESCAPED_SCHEMA in _schema_urls(otlp_receiver, "traces")
    said = [w for w in warnings if "spans left out" in w]
    assert len(said) == 1, warnings
    assert "float" in said[0] or "kind" in said[0], said


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_log_records_no_encoder_can_encode_cost_only_themselves(otlp_receiver,
                                                                protocol: str) -> None:
    """Normal records around one timestamped ``time.time()`` and one with an int severity
    text: the normal ones arrive, those two do not; the record of a logger with an
    undecodable schema URL arrives with it escaped; one warning names log records."""
    warnings = _run(otlp_receiver, protocol, "logs")
    otlp_receiver.wait_for_logs(21, timeout=20)
    bodies = [log.body for log in otlp_receiver.logs()]
    assert sorted(b for b in bodies if str(b).startswith("normal")) == sorted(
        [f"normal before {i}" for i in range(10)] + [f"normal after {i}" for i in range(10)])
    assert "odd-schema" in bodies
    assert not {"seconds-timestamp", "int-severity-text"} & set(bodies)
    assert _ESCAPED_SCHEMA in _schema_urls(otlp_receiver, "logs")
    said = [w for w in warnings if "log records left out" in w]
    assert len(said) == 1, warnings


@pytest.mark.parametrize(("mode", "lost"), [("spans", 4), ("logs", 2)])
def test_items_left_out_are_counted_as_dropped_not_exported(otlp_receiver, mode: str,
                                                             lost: int) -> None:
    """get_status() after a flush: the items left out are dropped, the rest exported, and
    the flush succeeded (no export failed)."""
    proc = run(python(app("unencodable_items_app.py"), mode, "--status"),
               receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.splitlines()[-1]
    counts = dict(part.split("=") for part in last.split())
    assert counts["flushed"] == "True", last
    assert int(counts["dropped"]) == lost, last
    assert int(counts["exported"]) >= 21, last
