"""The client against the real OTLP receiver, over gRPC and over HTTP: what arrives, with which
headers and compression; a backend that is down; a backend that fails and then recovers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as logs_internal
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.version import __version__ as sdk_version

from telemetryflow_bootstrap import _diagnostics, _runtime
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from tests.otlp_receiver import OTLPReceiver, free_port

_KEY_ID, _SECRET, _COLLECTOR = "tfk_integration-key", "tfs_integration-secret", "col-42"
_PROTOCOLS = ["grpc", "http"]
_MARGIN = 0.75  # seconds a bounded call may overrun its timeout on a loaded machine


@pytest.fixture(autouse=True)
def _restore_otel_globals() -> Iterator[None]:
    """Clients here are global (built by the builder): put the globals back afterwards."""
    saved = [(trace, "_TRACER_PROVIDER", trace._TRACER_PROVIDER),
             (metrics_internal, "_METER_PROVIDER", metrics_internal._METER_PROVIDER),
             (logs_internal, "_LOGGER_PROVIDER", logs_internal._LOGGER_PROVIDER)]
    onces = [trace._TRACER_PROVIDER_SET_ONCE, metrics_internal._METER_PROVIDER_SET_ONCE,
             logs_internal._LOGGER_PROVIDER_SET_ONCE]
    done = [once._done for once in onces]
    textmap = propagate.get_global_textmap()
    _diagnostics.reset_for_tests()
    yield
    running = _runtime.current_client()
    if running is not None:
        running.shutdown(1.0)
        _runtime.clear_current(running)
    for module, name, value in saved:
        setattr(module, name, value)
    for once, was_done in zip(onces, done, strict=True):
        once._done = was_done
    propagate.set_global_textmap(textmap)
    _diagnostics.reset_for_tests()


def _builder(endpoint: str, protocol: str) -> TelemetryFlowBuilder:
    builder = (TelemetryFlowBuilder()
               .with_service("integration-svc", "1.2.3")
               .with_environment("staging")
               .with_api_key(_KEY_ID, _SECRET)
               .with_collector_id(_COLLECTOR)
               .with_endpoint(endpoint)
               .with_insecure()
               .with_timeout(5)
               .with_batch_settings(timeout_ms=50)
               .with_custom_attribute("team", "observability"))
    return builder.with_grpc() if protocol == "grpc" else builder.with_http()


@pytest.fixture
def connect(otlp_receiver: OTLPReceiver) -> Iterator[Callable[..., TelemetryFlowClient]]:
    """Builds and initialises a client exporting to the test's receiver over ``protocol``."""
    made: list[TelemetryFlowClient] = []

    def connect(protocol: str, configure: Callable[[TelemetryFlowBuilder], Any] | None = None,
                ) -> TelemetryFlowClient:
        endpoint = (otlp_receiver.grpc_endpoint if protocol == "grpc"
                    else otlp_receiver.http_endpoint)
        builder = _builder(endpoint, protocol)
        if configure is not None:
            configure(builder)
        client = builder.build().initialize()
        made.append(client)
        return client

    yield connect
    for client in made:
        client.shutdown(2.0)


def _transport(protocol: str) -> str:
    return "grpc" if protocol == "grpc" else "http"


# ----- what arrives ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_spans_arrive_with_parent_child_links(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Nested spans arrive as one trace with parent links, kinds, attributes, events, errors."""
    client = connect(protocol)
    with client.span("request", kind="server", attributes={"http.route": "/orders"}) as root_id:
        with client.span("db.query", kind="client") as child_id:
            client.add_span_event(child_id, "rows", {"count": 3})
        with pytest.raises(ValueError), client.span("validate"):
            raise ValueError("bad order")
    assert client.flush(5.0)
    spans = {s.name: s for s in otlp_receiver.wait_for_spans(3)}
    root, child, failed = spans["request"], spans["db.query"], spans["validate"]
    assert root.span_id == root_id and root.parent_span_id == ""
    assert child.span_id == child_id and child.parent_span_id == root_id
    assert failed.parent_span_id == root_id
    assert {root.trace_id, child.trace_id, failed.trace_id} == {root.trace_id}
    assert (root.kind, child.kind) == ("SERVER", "CLIENT")
    assert root.attributes == {"http.route": "/orders"}
    assert child.events == [("rows", {"count": 3})]
    assert failed.status_code == "ERROR"
    assert failed.events[0][0] == "exception"
    assert {r.transport for r in otlp_receiver.requests("traces")} == {_transport(protocol)}


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_metric_points_arrive(protocol: str, connect: Callable[..., TelemetryFlowClient],
                              otlp_receiver: OTLPReceiver) -> None:
    """Counter sums, the gauge's last value and histogram count/sum arrive with attributes."""
    client = connect(protocol)
    client.increment_counter("orders", 2, {"region": "eu"}, unit="{order}")
    client.increment_counter("orders", 3, {"region": "eu"}, unit="{order}")
    client.record_gauge("queue.depth", 9)
    client.record_gauge("queue.depth", 4)
    for value in (12.0, 30.0):
        client.record_histogram("latency", value, {"op": "read"}, unit="ms")
    assert client.flush(5.0)
    [orders] = otlp_receiver.wait_for_metric("orders")
    assert (orders.kind, orders.value, orders.is_monotonic) == ("sum", 5, True)
    assert (orders.attributes, orders.unit) == ({"region": "eu"}, "{order}")
    [depth] = otlp_receiver.wait_for_metric("queue.depth")
    assert (depth.kind, depth.value) == ("gauge", 4)
    [latency] = otlp_receiver.wait_for_metric("latency")
    assert (latency.kind, latency.count, latency.sum) == ("histogram", 2, 42.0)
    assert (latency.attributes, latency.unit) == ({"op": "read"}, "ms")
    assert client.get_status()["metric_points_exported"] >= 3


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_logs_arrive_correlated_with_their_span(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """A log inside a span carries its trace and span ids; one outside carries none."""
    client = connect(protocol)
    with client.span("work") as span_id:
        client.log_warn("inside", {"attempt": 2})
    client.log_info("outside")
    assert client.flush(5.0)
    logs = {log.body: log for log in otlp_receiver.wait_for_logs(2)}
    [span] = otlp_receiver.wait_for_spans(1)
    inside, outside = logs["inside"], logs["outside"]
    assert (inside.trace_id, inside.span_id) == (span.trace_id, span_id)
    assert (inside.severity_text, inside.attributes) == ("WARN", {"attempt": 2})
    assert (outside.trace_id, outside.span_id) == ("", "")
    assert outside.severity_text == "INFO"
    assert span.events == []


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_every_export_request_carries_the_credentials(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Each request of each signal has the Bearer token and the X-TelemetryFlow-* headers."""
    client = connect(protocol)
    with client.span("op"):
        client.log_info("hello")
    client.increment_counter("hits")
    assert client.flush(5.0)
    requests = otlp_receiver.requests()
    assert {r.signal for r in requests} == {"traces", "metrics", "logs"}
    for request in requests:
        headers = request.headers
        assert headers["authorization"] == f"Bearer {_KEY_ID}:{_SECRET}"
        assert headers["x-telemetryflow-key-id"] == _KEY_ID
        assert headers["x-telemetryflow-key-secret"] == _SECRET
        assert headers["x-telemetryflow-collector-id"] == _COLLECTOR


@pytest.mark.parametrize("protocol", _PROTOCOLS)
@pytest.mark.parametrize("compression", [True, False])
def test_compression_setting_is_honoured(
        protocol: str, compression: bool, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Requests are gzip-compressed when compression is on and plain when it is off."""
    client = connect(protocol, lambda b: b.with_compression(compression))
    with client.span("op"):
        client.log_info("hello")
    client.increment_counter("hits")
    assert client.flush(5.0)
    requests = otlp_receiver.requests()
    assert {r.signal for r in requests} == {"traces", "metrics", "logs"}
    assert {r.compressed for r in requests} == {compression}
    if compression:
        assert {r.encoding for r in requests} == {"gzip"}


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_flush_delivers_everything_ended_before_it(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """When flush() returns True the receiver already holds every span and log ended before."""
    client = connect(protocol, lambda b: b.with_batch_settings(timeout_ms=60_000, max_size=16))
    for n in range(40):
        with client.span(f"span-{n}"):
            client.log_info(f"log-{n}")
    assert client.flush(5.0) is True
    assert len(otlp_receiver.spans()) == 40
    assert len(otlp_receiver.logs()) == 40
    status = client.get_status()
    assert (status["spans_exported"], status["logs_exported"]) == (40, 40)


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_shutdown_delivers_everything_ended_before_it(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """When shutdown() returns True the receiver holds every span, log and metric point."""
    client = connect(protocol, lambda b: b.with_batch_settings(timeout_ms=60_000))
    for n in range(25):
        with client.span(f"span-{n}"):
            client.log_info(f"log-{n}")
    client.increment_counter("final", 7)
    assert client.shutdown(5.0) is True
    assert len(otlp_receiver.spans()) == 25
    assert len(otlp_receiver.logs()) == 25
    assert [p.value for p in otlp_receiver.metrics() if p.name == "final"] == [7]


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_resource_describes_the_service_and_process(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Every signal's resource has service, environment, SDK, process and custom attributes."""
    client = connect(protocol)
    with client.span("op"):
        client.log_info("hello")
    client.increment_counter("hits")
    assert client.flush(5.0)
    [span] = otlp_receiver.wait_for_spans(1)
    [log] = otlp_receiver.wait_for_logs(1)
    [point] = otlp_receiver.wait_for_metric("hits")
    for resource in (span.resource, log.resource, point.resource):
        assert resource["service.name"] == "integration-svc"
        assert resource["service.version"] == "1.2.3"
        assert resource["deployment.environment"] == "staging"
        assert resource["telemetry.sdk.language"] == "python"
        assert resource["telemetry.sdk.name"] == "opentelemetry"
        assert resource["telemetry.sdk.version"] == sdk_version
        assert resource["process.pid"] == os.getpid()
        assert resource["host.name"] == socket.gethostname()
        assert resource["team"] == "observability"


# ----- a backend that is down ------------------------------------------------------------------

@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_backend_down_keeps_the_program_fast_and_shutdown_bounded(protocol: str) -> None:
    """With nothing listening, span() stays fast, flush(1)/shutdown(1) return False within
    about a second, and get_status() counts everything as dropped."""
    port = free_port()
    endpoint = f"127.0.0.1:{port}" if protocol == "grpc" else f"http://127.0.0.1:{port}"
    client = _builder(endpoint, protocol).with_timeout(10).build().initialize()
    try:
        started = time.monotonic()
        for n in range(500):
            with client.span("hot-path"):
                if n % 10 == 0:
                    client.log_info("in the hot path")
        client.increment_counter("hits")
        assert time.monotonic() - started < 1.0, "the program's own work was slowed down"

        started = time.monotonic()
        assert client.flush(1.0) is False
        assert time.monotonic() - started < 1.0 + _MARGIN

        started = time.monotonic()
        assert client.shutdown(timeout=1.0) is False
        assert time.monotonic() - started < 1.0 + _MARGIN
    finally:
        client.shutdown(0.1)

    deadline = time.monotonic() + 5.0  # the export in retry is interrupted by the shutdown
    status = client.get_status()
    while ((status["spans_dropped"], status["logs_dropped"]) != (500, 50)
           and time.monotonic() < deadline):
        time.sleep(0.05)
        status = client.get_status()
    assert (status["spans_exported"], status["spans_dropped"]) == (0, 500)
    assert (status["logs_exported"], status["logs_dropped"]) == (0, 50)
    assert status["metric_points_exported"] == 0


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_temporary_unavailability_loses_nothing(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Two UNAVAILABLE answers followed by recovery: every span and log below the queue
    limit still arrives, and nothing is counted as dropped."""
    otlp_receiver.set_failure("UNAVAILABLE", count=2, retry_after=0.1)
    client = connect(protocol)
    for n in range(60):
        with client.span(f"span-{n}"):
            client.log_info(f"log-{n}")
    assert client.flush(10.0) is True
    assert len(otlp_receiver.rejected()) == 2
    assert sorted(s.name for s in otlp_receiver.spans()) == sorted(f"span-{n}" for n in range(60))
    assert sorted(log.body for log in otlp_receiver.logs()) == sorted(
        f"log-{n}" for n in range(60))
    status = client.get_status()
    assert (status["spans_exported"], status["spans_dropped"]) == (60, 0)
    assert (status["logs_exported"], status["logs_dropped"]) == (60, 0)


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_a_batch_our_encoder_refuses_still_arrives(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """An int past 64 bits makes our span encoder give up on the batch: the exporter's own
    encoder sends it instead (dropping just that attribute, as it always does)."""
    client = connect(protocol)
    with client.span("fine", attributes={"n": 1, "s": "x"}):
        pass
    with client.span("huge", attributes={"n": 1 << 70, "s": "y"}):
        pass
    assert client.flush(5.0)
    spans = {s.name: s for s in otlp_receiver.wait_for_spans(2)}
    assert spans["fine"].attributes == {"n": 1, "s": "x"}
    assert spans["huge"].attributes == {"s": "y"}


@pytest.mark.parametrize("protocol", _PROTOCOLS)
def test_a_log_batch_our_encoder_refuses_still_arrives(
        protocol: str, connect: Callable[..., TelemetryFlowClient],
        otlp_receiver: OTLPReceiver) -> None:
    """Likewise for logs: the exporter's own encoder sends a batch ours gives up on."""
    client = connect(protocol)
    client.log_info("fine", {"n": 1, "s": "x"})
    client.log_info("huge", {"n": 1 << 70, "s": "y"})
    assert client.flush(5.0)
    logs = {log.body: log for log in otlp_receiver.wait_for_logs(2)}
    assert logs["fine"].attributes == {"n": 1, "s": "x"}
    assert logs["huge"].attributes == {"s": "y"}
