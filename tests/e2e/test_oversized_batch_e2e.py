"""A batch past the OTLP/HTTP exporter's request limit, split item by item too (one span
cannot be encoded), under the installed ``telemetryflow-run`` against the real loopback
receiver: what a request can hold arrives, in requests within the limit; what cannot be
sent is left out, said once with its reason, and never blamed on the backend (the
exporter's own ``export`` dropped the whole batch, and the exit said the exports failed:
"backend down or rejecting"). And the exit's one line, when it has something to say, names
the encoding losses apart from what the backend lost, only those that are not zero.

The app lowers the exporter's limit (64 MiB) to 1 MiB the way a program can (its module's
default), so that the test moves a few MiB, not hundreds."""

from __future__ import annotations

import pytest

from tests.otlp_receiver import free_port

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_LIMIT = 1 << 20
_APP = app("oversized_batch_app.py")


def _telemetryflow_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetryflow:")]


def test_what_fits_arrives_and_the_rest_is_said_not_blamed_on_the_backend(
        otlp_receiver) -> None:
    """Ten normal spans, two big ones (fit a request each, not together), one with a float
    start time and one past the limit on its own, in one batch: the normal and big ones
    arrive (with the process span), in requests within the limit; the two others are left
    out, each said once with its reason; no export failed, no exit line."""
    proc = run(python(_APP, str(_LIMIT)), receiver_env(otlp_receiver, "http/protobuf"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "spans normal=10 big=2\n"
    spans = otlp_receiver.wait_for_spans(13, timeout=20)
    names = sorted(span.name for span in spans)
    assert names.count("big") == 2 and names.count("normal-before") == 5, names
    assert not {"seconds-start", "too-big"} & set(names), names
    assert {len(s.attributes["payload"]) for s in spans if s.name == "big"} == {
        _LIMIT * 9 // 16}
    sizes = [len(r.message.SerializeToString()) for r in otlp_receiver.requests("traces")]
    assert max(sizes) <= _LIMIT, sizes
    lines = _telemetryflow_lines(proc.stderr)
    assert len(lines) == 2, proc.stderr
    assert "neither encoder can encode a span whose start_time is a float" in lines[0]
    assert f"past the exporter's limit of {_LIMIT} (max_request_size)" in lines[1]
    assert "backend" not in proc.stderr and "not all telemetry" not in proc.stderr


def test_the_exit_line_names_encoding_losses_apart_from_the_backends(otlp_receiver) -> None:
    """The same batch, plus an attribute and a counter value past 64 bits and a span name
    with a lone surrogate, and one log record sent where nothing listens: the exit's line
    blames that backend for the log record only, and names the two spans left out (one
    unencodable, one past the limit) and the values left out or changed, tersely (the
    counter's value twice: its point and its exemplar, recorded in the process span)."""
    port = free_port()
    # (the log record is exported at exit only: its one attempt there finds nobody, and the
    # exit says so; exported while the program ran, its failure would be said then, alone)
    env = receiver_env(otlp_receiver, "http/protobuf", TELEMETRYFLOW_RUNTIME_METRICS="false",
                       OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{port}/v1/logs",
                       OTEL_BLRP_SCHEDULE_DELAY="60000", TELEMETRYFLOW_SHUTDOWN_TIMEOUT="30")
    proc = run(python(_APP, str(_LIMIT), "--more"), env)
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in _telemetryflow_lines(proc.stderr) if "not all telemetry" in x]
    assert line == (
        "telemetryflow: warning: not all telemetry was exported at exit because the backend "
        f"at http://127.0.0.1:{port} refused the connection; dropped: spans=2 logs=1 "
        "metric points=0 (of these, unencodable: spans=1; past the request size limit: "
        "spans=1); attributes left out=1, values sent as text=1, metric values sent as "
        "double=2")
    names = {span.name for span in otlp_receiver.wait_for_spans(15, timeout=20)}
    assert {"odd-values", "odd-name-\\udcff", "big"} <= names
