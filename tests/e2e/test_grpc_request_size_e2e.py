"""Batches whose OTLP/gRPC request is past what the backend's gRPC server takes, under the
installed ``telemetryflow-run``, against the real loopback receiver made to refuse what an
OpenTelemetry Collector refuses (a gRPC server's ``max_receive_message_length``; the
collector's ``max_recv_msg_size_mib``, 4 MiB by default): RESOURCE_EXHAUSTED, "received
message larger than max". Before, the whole batch was refused, retried until the export's
deadline, dropped, and the exit blamed the backend.

Now what a request can hold arrives, in requests within the limit (4 MiB: ours by
default; or the backend's, lower, learnt from its refusal); what is past the limit on its
own is left out, said once with its size, and never blamed on the backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.otlp_receiver import OTLPReceiver

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e

_APP = app("grpc_big_batch_app.py")
_MIB4 = 4 << 20


def _telemetryflow_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("telemetryflow:")]


def _check_what_arrived(receiver: OTLPReceiver, limit: int) -> None:
    spans = receiver.wait_for_spans(12, timeout=30)
    names = sorted(span.name for span in spans)
    assert names.count("big") == 6 and names.count("normal-before") == 3, names
    assert "too-big" not in names, names
    assert {len(s.attributes["payload"]) for s in spans if s.name == "big"} == {limit // 4}
    logs = receiver.wait_for_logs(9, timeout=30)
    bodies = [str(log.body) for log in logs]
    assert sum(len(b) == limit // 4 for b in bodies) == 6, [len(b) for b in bodies]
    assert {"first", "odd", "last"} <= set(bodies), bodies
    assert max(len(b) for b in bodies) < limit, [len(b) for b in bodies]
    [odd] = [log for log in logs if log.body == "odd"]
    assert odd.attributes.get("kept") == 1 and "huge" not in odd.attributes
    for signal in ("traces", "logs"):
        sizes = [len(r.message.SerializeToString()) for r in receiver.requests(signal)]
        assert len(sizes) >= 2 and max(sizes) <= limit, (signal, sizes)


@pytest.fixture
def collector_like_receiver() -> Iterator[OTLPReceiver]:
    """The receiver refusing a gRPC request past 4 MiB, as a collector does by default."""
    receiver = OTLPReceiver(grpc_max_receive_bytes=_MIB4).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def test_a_batch_past_4_mib_arrives_in_requests_a_collector_takes(
        collector_like_receiver: OTLPReceiver) -> None:
    """Six big spans and six big log records (together past 4 MiB), one of each past 4 MiB
    alone, among normal ones: every one but those two arrives, in requests of at most
    4 MiB; the two are said once each with their size; no export failed, nothing blames
    the backend."""
    proc = run(python(_APP), receiver_env(collector_like_receiver, "grpc"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "spans normal=6 big=6; logs normal=3 big=6\n"
    _check_what_arrived(collector_like_receiver, _MIB4)
    lines = _telemetryflow_lines(proc.stderr)
    assert any(line.startswith("telemetryflow: warning: spans left out of the export")
               and f"limit of {_MIB4}" in line for line in lines), proc.stderr
    assert any("log records left out of the export" in line and f"limit of {_MIB4}" in line
               for line in lines), proc.stderr
    assert "RESOURCE_EXHAUSTED" not in proc.stderr, proc.stderr
    assert "backend" not in proc.stderr and "not all telemetry" not in proc.stderr


def test_a_backend_with_a_lower_limit_gets_requests_within_it(
        otlp_receiver: OTLPReceiver) -> None:
    """The backend's limit is 1 MiB, below ours: it refuses the first request of each
    signal (RESOURCE_EXHAUSTED, naming its limit), which is sent again in requests within
    its limit, at once (the exporter's retries would send the same request until the
    deadline); what is past that limit alone is left out and said."""
    limit = 1 << 20
    receiver = OTLPReceiver(grpc_max_receive_bytes=limit).start()
    try:
        proc = run(python(_APP, str(limit)), receiver_env(receiver, "grpc"))
        assert proc.returncode == 0, proc.stderr
        _check_what_arrived(receiver, limit)
    finally:
        receiver.stop()
    lines = _telemetryflow_lines(proc.stderr)
    assert any("spans left out of the export" in line and f"backend's limit of {limit}"
               in line for line in lines), proc.stderr
    assert "RESOURCE_EXHAUSTED" not in proc.stderr, proc.stderr
    assert "not all telemetry" not in proc.stderr, proc.stderr
