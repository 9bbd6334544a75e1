"""Tests for tests/otlp_receiver.py, driven by the real OpenTelemetry SDK OTLP exporters."""

from __future__ import annotations

import gzip
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode, format_span_id, format_trace_id

from tests.otlp_fixtures import otlp_receiver  # noqa: F401  (fixture, used by name)
from tests.otlp_receiver import (
    OTLPReceiver,
    ReceivedRequest,
    free_port,
    make_self_signed_cert,
)

TRANSPORTS = ("grpc", "http")
RESOURCE = Resource.create({"service.name": "recv-test", "deployment.environment": "unit"})


@pytest.fixture
def recv(otlp_receiver: OTLPReceiver) -> OTLPReceiver:  # noqa: F811
    return otlp_receiver


@pytest.fixture(scope="module")
def cert() -> tuple[bytes, bytes]:
    return make_self_signed_cert()


# ----------------------------------------------------------------- helpers


def span_exporter(
    transport: str,
    recv: OTLPReceiver,
    *,
    compression: str | None = None,
    timeout: float = 5,
    **kwargs: Any,
) -> Any:
    """An SDK OTLP span exporter for ``transport`` aimed at ``recv``."""
    if transport == "grpc":
        if compression:
            kwargs["compression"] = getattr(grpc.Compression, compression.capitalize())
        kwargs.setdefault("insecure", True)
        return GrpcSpanExporter(endpoint=recv.grpc_endpoint, timeout=timeout, **kwargs)
    if compression:
        kwargs["compression"] = getattr(HttpCompression, compression.capitalize())
    return HttpSpanExporter(endpoint=f"{recv.http_endpoint}/v1/traces", timeout=timeout, **kwargs)


def tracer_provider(exporter: Any) -> TracerProvider:
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def finished_spans(n: int = 1) -> tuple[ReadableSpan, ...]:
    """Make ``n`` finished SDK spans without exporting them anywhere."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test.direct")
    for i in range(n):
        with tracer.start_as_current_span(f"direct-{i}"):
            pass
    provider.shutdown()
    return memory.get_finished_spans()


def emit_parent_child(provider: TracerProvider) -> tuple[Any, Any]:
    tracer = provider.get_tracer("test.scope", "1.2.3")
    with (
        tracer.start_as_current_span(
            "parent",
            kind=SpanKind.SERVER,
            attributes={"http.route": "/x", "n": 7, "ratio": 0.5, "ok": True, "tags": ["a", "b"]},
        ) as parent,
        tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child,
    ):
        child.add_event("retrying", {"attempt": 2})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    return parent.get_span_context(), child.get_span_context()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


# ----------------------------------------------------------------- spans


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_parent_child_spans_arrive_with_ids_attributes_and_resource(
    recv: OTLPReceiver, transport: str
) -> None:
    """Spans exported by the SDK arrive with correct ids, parentage, kinds, attrs and resource."""
    provider = tracer_provider(span_exporter(transport, recv))
    parent_ctx, child_ctx = emit_parent_child(provider)
    provider.shutdown()

    spans = {s.name: s for s in recv.wait_for_spans(2, timeout=5)}
    parent, child = spans["parent"], spans["child"]
    assert parent.trace_id == child.trace_id == format_trace_id(parent_ctx.trace_id)
    assert parent.span_id == format_span_id(parent_ctx.span_id)
    assert child.span_id == format_span_id(child_ctx.span_id)
    assert parent.parent_span_id == ""
    assert child.parent_span_id == parent.span_id
    assert (parent.kind, child.kind) == ("SERVER", "CLIENT")
    assert parent.attributes == {
        "http.route": "/x",
        "n": 7,
        "ratio": 0.5,
        "ok": True,
        "tags": ["a", "b"],
    }
    assert child.events == [("retrying", {"attempt": 2})]
    assert (child.status_code, child.status_message) == ("ERROR", "boom")
    assert parent.status_code == "UNSET"
    assert parent.resource["service.name"] == "recv-test"
    assert parent.resource["deployment.environment"] == "unit"
    assert (parent.scope_name, parent.scope_version) == ("test.scope", "1.2.3")
    assert 0 < parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns
    assert parent.request is not None and parent.request.transport == transport
    assert recv.requests("traces")[0].signal == "traces"
    assert recv.rejected() == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding", ["gzip", None, "deflate"])
def test_compression_is_flagged(recv: OTLPReceiver, transport: str, encoding: str | None) -> None:
    """Requests are flagged compressed exactly when the exporter compresses, and still decode."""
    compressed = encoding is not None
    provider = tracer_provider(span_exporter(transport, recv, compression=encoding))
    with provider.get_tracer("t").start_as_current_span("zipped"):
        pass
    provider.shutdown()

    (span,) = recv.wait_for_spans(1, timeout=5)
    assert span.name == "zipped"
    request = recv.requests("traces")[0]
    assert request.compressed is compressed
    assert request.encoding == encoding
    key = "grpc-encoding" if transport == "grpc" else "content-encoding"
    assert request.headers.get(key) == encoding


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_custom_headers_are_recorded(recv: OTLPReceiver, transport: str) -> None:
    """Exporter headers (e.g. authorization) are recorded with lower-case keys."""
    headers = {"Authorization": "Bearer s3cret", "X-Tenant": "acme"}
    if transport == "grpc":  # gRPC metadata keys must be lower case
        headers = {k.lower(): v for k, v in headers.items()}
    exporter = span_exporter(transport, recv, headers=headers)
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()

    request = recv.requests("traces")[0]
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["x-tenant"] == "acme"
    assert "user-agent" in request.headers
    if transport == "http":
        assert request.path == "/v1/traces"
        assert request.content_type == "application/x-protobuf"
    else:
        assert request.path == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_http_path_with_prefix_is_accepted_and_recorded(recv: OTLPReceiver) -> None:
    """Any HTTP path ending in /v1/<signal> is accepted and its path recorded."""
    exporter = HttpSpanExporter(endpoint=f"{recv.http_endpoint}/custom/v1/traces", timeout=5)
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert recv.requests()[0].path == "/custom/v1/traces"
    status, _, _ = post(f"{recv.http_endpoint}/v1/nothing", b"", {})
    assert status == 404


def test_http_json_with_hex_ids_and_gzip(recv: OTLPReceiver) -> None:
    """OTLP/JSON bodies (hex ids, optionally gzipped) are decoded like protobuf ones."""
    payload = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "json-scope"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "k", "value": {"intValue": "3"}}],
                                "unknownFieldIsIgnored": 1,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = json.dumps(payload).encode()
    status, reply, headers = post(
        f"{recv.http_endpoint}/v1/traces", body, {"Content-Type": "application/json"}
    )
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(reply) == {}
    status, _, _ = post(
        f"{recv.http_endpoint}/v1/traces",
        gzip.compress(body),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert status == 200

    first, second = recv.wait_for_spans(2, timeout=5)
    assert first == second
    assert first.trace_id == "5b8efff798038103d269b633813fc60c"
    assert first.span_id == "eee19b7ec3c1b174"
    assert first.parent_span_id == "eee19b7ec3c1b173"
    assert (first.kind, first.attributes, first.resource) == (
        "SERVER",
        {"k": 3},
        {"service.name": "json-svc"},
    )
    assert first.start_ns == 1544712660000000000
    assert [r.compressed for r in recv.requests()] == [False, True]


def test_http_rejects_bad_content_type_and_garbage(recv: OTLPReceiver) -> None:
    """Unsupported content types get 415 and undecodable bodies 400; both land in rejected()."""
    url = f"{recv.http_endpoint}/v1/logs"
    assert post(url, b"x", {"Content-Type": "text/plain"})[0] == 415
    assert post(url, b"\xff\xff\xff", {"Content-Type": "application/x-protobuf"})[0] == 400
    assert (
        post(url, b"nope", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})[
            0
        ]
        == 400
    )
    assert [r.status for r in recv.rejected("logs")] == ["INVALID_ARGUMENT"] * 3
    assert recv.requests() == [] and recv.logs() == []


# ----------------------------------------------------------------- metrics


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_counter_histogram_and_gauge_arrive(recv: OTLPReceiver, transport: str) -> None:
    """Counter sums, histograms and synchronous gauges arrive as flattened data points."""
    if transport == "grpc":
        exporter: Any = GrpcMetricExporter(endpoint=recv.grpc_endpoint, insecure=True, timeout=5)
    else:
        exporter = HttpMetricExporter(endpoint=f"{recv.http_endpoint}/v1/metrics", timeout=5)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    meter = provider.get_meter("test.meter")
    counter = meter.create_counter("requests", unit="1", description="handled requests")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/a"})
    histogram = meter.create_histogram("latency", unit="ms")
    histogram.record(5, {"route": "/a"})
    histogram.record(50, {"route": "/a"})
    meter.create_gauge("temperature").set(7.5, {"room": "lab"})
    provider.shutdown()  # collects and exports once

    (req_point,) = recv.wait_for_metric("requests", timeout=5)
    assert (req_point.kind, req_point.value, req_point.attributes) == ("sum", 7, {"route": "/a"})
    assert req_point.is_monotonic is True
    assert req_point.temporality == "CUMULATIVE"
    assert (req_point.unit, req_point.description) == ("1", "handled requests")
    assert req_point.resource["service.name"] == "recv-test"
    assert req_point.scope_name == "test.meter"
    assert req_point.time_ns > 0

    (lat,) = recv.wait_for_metric("latency", timeout=5)
    assert (lat.kind, lat.value, lat.count, lat.sum) == ("histogram", None, 2, 55)
    assert sum(lat.bucket_counts) == 2
    assert len(lat.bucket_counts) == len(lat.explicit_bounds) + 1
    assert (lat.min, lat.max) == (5, 50)

    (temp,) = recv.wait_for_metric("temperature", timeout=5)
    assert (temp.kind, temp.value, temp.attributes) == ("gauge", 7.5, {"room": "lab"})
    assert temp.temporality is None and temp.is_monotonic is None


# ----------------------------------------------------------------- logs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_arrive_with_trace_correlation(recv: OTLPReceiver, transport: str) -> None:
    """Log records arrive with body, severity, attributes and the active span's ids."""
    if transport == "grpc":
        exporter: Any = GrpcLogExporter(endpoint=recv.grpc_endpoint, insecure=True, timeout=5)
    else:
        exporter = HttpLogExporter(endpoint=f"{recv.http_endpoint}/v1/logs", timeout=5)
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logger_provider.get_logger("test.logger")
    tracer_prov = TracerProvider(resource=RESOURCE)
    with tracer_prov.get_tracer("t").start_as_current_span("work") as span:
        logger.emit(
            body="disk almost full",
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"disk": "/dev/sda", "pct": 93},
            event_name="disk.usage",
        )
    logger.emit(body={"structured": [1, 2]}, severity_number=SeverityNumber.INFO)
    logger_provider.shutdown()
    tracer_prov.shutdown()

    logs = recv.wait_for_logs(2, timeout=5)
    correlated = next(lg for lg in logs if lg.body == "disk almost full")
    ctx = span.get_span_context()
    assert correlated.trace_id == format_trace_id(ctx.trace_id)
    assert correlated.span_id == format_span_id(ctx.span_id)
    assert (correlated.severity_number, correlated.severity_text) == (13, "WARN")
    assert correlated.attributes == {"disk": "/dev/sda", "pct": 93}
    assert correlated.event_name == "disk.usage"
    assert correlated.resource["service.name"] == "recv-test"
    assert correlated.scope_name == "test.logger"
    assert correlated.observed_time_ns > 0
    plain = next(lg for lg in logs if lg.body != "disk almost full")
    assert plain.body == {"structured": [1, 2]}
    assert (plain.trace_id, plain.span_id) == ("", "")
    assert recv.wait_for_logs(1, body="disk almost full", timeout=1) == [correlated]


# ----------------------------------------------------------------- failure modes


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_injected_unauthenticated_fails_export_and_is_recorded_as_rejected(
    recv: OTLPReceiver, transport: str
) -> None:
    """set_failure('UNAUTHENTICATED', 1) fails one export, which shows only in rejected()."""
    exporter = span_exporter(transport, recv)
    recv.set_failure("UNAUTHENTICATED", count=1)
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()

    (rejected,) = recv.rejected()
    assert rejected.status == "UNAUTHENTICATED" and rejected.transport == transport
    assert rejected.message is not None  # the payload was still decoded
    assert len(recv.spans()) == 1 and len(recv.requests()) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retryable_failure_with_retry_after_is_retried_by_exporter(
    recv: OTLPReceiver, transport: str
) -> None:
    """An UNAVAILABLE answer with a short retry hint makes the exporter retry and succeed."""
    exporter = span_exporter(transport, recv)
    recv.set_failure("UNAVAILABLE", count=2, retry_after=0.05)
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    assert time.monotonic() - started < 2  # the hint, not the 1s+2s default backoff, was used
    exporter.shutdown()
    assert [r.status for r in recv.rejected()] == ["UNAVAILABLE", "UNAVAILABLE"]
    assert len(recv.spans()) == 1


def test_failure_status_maps_to_grpc_codes_and_http_statuses(recv: OTLPReceiver) -> None:
    """Injected statuses use the gRPC code on gRPC and the mapped HTTP status on HTTP."""
    body = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
    expected = {
        "UNAVAILABLE": 503,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "RESOURCE_EXHAUSTED": 429,
        "INTERNAL": 500,
        "DATA_LOSS": 500,
    }
    with grpc.insecure_channel(recv.grpc_endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        for status, http_code in expected.items():
            recv.set_failure(status, count=1)
            with pytest.raises(grpc.RpcError) as info:
                stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
            assert info.value.code() is grpc.StatusCode[status]
            recv.set_failure(status)  # count=None: until cleared
            for _ in range(2):
                code, _, _ = post(
                    f"{recv.http_endpoint}/v1/traces",
                    body,
                    {"Content-Type": "application/x-protobuf"},
                )
                assert code == http_code
            recv.set_failure(None)
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
    assert len(recv.rejected()) == 3 * len(expected)
    assert len(recv.requests()) == 1
    with pytest.raises(ValueError):
        recv.set_failure("NOT_A_STATUS")


def test_delay_slows_answers(recv: OTLPReceiver) -> None:
    """set_delay makes each answer take at least the given time."""
    exporter = span_exporter("http", recv)
    recv.set_delay(0.3)
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    slow = time.monotonic() - started
    assert slow >= 0.3
    recv.set_delay(0)
    started = time.monotonic()
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    assert time.monotonic() - started < slow
    exporter.shutdown()


# ----------------------------------------------------------------- lifecycle


def _port_is_free(port: int) -> bool:
    """True if nothing listens on the port (TIME_WAIT leftovers are fine, as for any server)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stop_frees_ports_and_start_resumes_on_same_ports(
    recv: OTLPReceiver, transport: str
) -> None:
    """After stop() exports fail and the ports are free; start() serves the same ports again."""
    exporter = span_exporter(transport, recv, timeout=0.5)
    assert exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    grpc_port, http_port = recv.grpc_port, recv.http_port

    recv.stop()
    assert not recv.running
    assert _port_is_free(grpc_port) and _port_is_free(http_port)
    assert exporter.export(finished_spans()) is SpanExportResult.FAILURE

    recv.start()
    assert (recv.grpc_port, recv.http_port) == (grpc_port, http_port)
    result = SpanExportResult.FAILURE
    deadline = time.monotonic() + 5  # gRPC may wait out a reconnect backoff
    while result is not SpanExportResult.SUCCESS and time.monotonic() < deadline:
        result = exporter.export(finished_spans())
    assert result is SpanExportResult.SUCCESS
    exporter.shutdown()
    assert len(recv.spans()) == 2


def test_receiver_started_midway_on_ports_chosen_earlier() -> None:
    """A receiver can be started later on ports that exporters were already pointed at."""
    grpc_port, http_port = free_port(), free_port()
    grpc_exporter = GrpcSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True, timeout=0.5)
    http_exporter = HttpSpanExporter(
        endpoint=f"http://127.0.0.1:{http_port}/v1/traces", timeout=0.5
    )
    assert http_exporter.export(finished_spans()) is SpanExportResult.FAILURE

    receiver = OTLPReceiver()
    assert not receiver.running
    with pytest.raises(RuntimeError):
        _ = receiver.grpc_endpoint
    receiver.start_on(grpc_port, http_port)
    try:
        assert receiver.grpc_endpoint == f"127.0.0.1:{grpc_port}"
        assert receiver.http_endpoint == f"http://127.0.0.1:{http_port}"
        assert http_exporter.export(finished_spans()) is SpanExportResult.SUCCESS
        assert grpc_exporter.export(finished_spans()) is SpanExportResult.SUCCESS
        assert {r.transport for r in receiver.requests()} == {"grpc", "http"}
        with pytest.raises(OSError):  # a port in use is reported, not shared
            OTLPReceiver(grpc_port=grpc_port).start()
        with pytest.raises(OSError):
            OTLPReceiver(http_port=http_port).start()
    finally:
        grpc_exporter.shutdown()
        http_exporter.shutdown()
        receiver.stop()


def test_context_manager_starts_and_stops() -> None:
    """`with OTLPReceiver() as r` runs the servers only inside the block."""
    with OTLPReceiver() as receiver:
        assert receiver.running
        port = receiver.http_port
        assert (
            post(
                f"{receiver.http_endpoint}/v1/traces",
                b"",
                {"Content-Type": "application/x-protobuf"},
            )[0]
            == 200
        )
    assert not receiver.running
    assert _port_is_free(port)


# ----------------------------------------------------------------- views & waiting


def test_wait_for_spans_times_out_with_summary_of_what_arrived(recv: OTLPReceiver) -> None:
    """wait_for_spans raises an AssertionError that lists the spans that did arrive."""
    exporter = span_exporter("http", recv)
    exporter.export(finished_spans(2))
    exporter.shutdown()
    assert len(recv.wait_for_spans(1, name="direct-1", timeout=1)) == 1
    with pytest.raises(AssertionError, match=r"named 'missing'.*direct-0.*direct-1"):
        recv.wait_for_spans(1, name="missing", timeout=0.2)
    with pytest.raises(AssertionError, match="waiting for 3 spans; got 2"):
        recv.wait_for_spans(3, timeout=0.2)
    with pytest.raises(AssertionError, match="metric 'nope'"):
        recv.wait_for_metric("nope", timeout=0.1)
    with pytest.raises(AssertionError, match="1 logs"):
        recv.wait_for_logs(1, timeout=0.1)
    assert recv.wait_for(lambda r: len(r.spans()) == 2, timeout=0.5)
    assert not recv.wait_for(lambda r: False, timeout=0.1)


def test_clear_listeners_and_fresh_lists(recv: OTLPReceiver) -> None:
    """clear() forgets data, listeners see each accepted request, views return fresh lists."""
    seen: list[ReceivedRequest] = []
    recv.add_listener(seen.append)
    exporter = span_exporter("grpc", recv)
    exporter.export(finished_spans())
    recv.wait_for_spans(1, timeout=5)
    recv.spans().clear()
    assert len(recv.spans()) == 1
    assert [r.signal for r in seen] == ["traces"]
    assert recv.requests("logs") == []
    recv.clear()
    assert recv.spans() == [] and recv.requests() == [] and recv.rejected() == []
    exporter.shutdown()


# ----------------------------------------------------------------- TLS


def test_self_signed_cert_covers_localhost_and_loopback_ip(cert: tuple[bytes, bytes]) -> None:
    """make_self_signed_cert returns PEM cert and key for localhost and 127.0.0.1."""
    cert_pem, key_pem = cert
    assert cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY-----" in key_pem


@pytest.fixture
def tls_recv(cert: tuple[bytes, bytes]) -> Iterator[OTLPReceiver]:
    with OTLPReceiver(tls=cert) as receiver:
        yield receiver


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_tls_on_both_transports(
    tls_recv: OTLPReceiver, cert: tuple[bytes, bytes], host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With tls=... both servers speak TLS, trusted via the self-signed certificate."""
    # requests lets these env vars override the exporter's certificate_file (session.verify)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert tls_recv.http_endpoint.startswith("https://")
    assert tls_recv.cert_file is not None
    grpc_exporter = GrpcSpanExporter(
        endpoint=f"{host}:{tls_recv.grpc_port}",
        credentials=grpc.ssl_channel_credentials(root_certificates=cert[0]),
        timeout=5,
    )
    http_exporter = HttpSpanExporter(
        endpoint=f"https://{host}:{tls_recv.http_port}/v1/traces",
        certificate_file=tls_recv.cert_file,
        timeout=5,
    )
    assert grpc_exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    assert http_exporter.export(finished_spans()) is SpanExportResult.SUCCESS
    grpc_exporter.shutdown()
    http_exporter.shutdown()
    assert sorted(r.transport for r in tls_recv.requests()) == ["grpc", "http"]
    # plain-text clients are not served
    with pytest.raises(OSError):
        post(f"http://127.0.0.1:{tls_recv.http_port}/v1/traces", b"", {})
