"""A backend that cannot be reached (refused, no such host, no route), as the OTLP exporters
meet it on real sockets: one attempt during a final flush (exit), retries as before while
the program runs, and retries at exit too for a backend that answers, even with errors."""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from telemetryflow_bootstrap.infrastructure import reachability
from telemetryflow_bootstrap.infrastructure.otlp_exporters import (
    grpc_log_exporter,
    grpc_span_exporter,
    http_log_exporter,
    http_span_exporter,
)
from telemetryflow_bootstrap.infrastructure.reachability import (
    NO_NETWORK,
    NO_ROUTE,
    NO_SUCH_HOST,
    REFUSED,
    final_exports,
    reason_for_exception,
)
from telemetryflow_bootstrap.infrastructure.watched_exporters import (
    backend_of,
    channel_state,
    watch,
)
from tests.otlp_receiver import OTLPReceiver, free_port

_TRANSPORTS = ("grpc", "http")
_QUICK = 1.0  # seconds: one refused attempt takes milliseconds; a retry waits >= 0.8 s
_RESOURCE = Resource({"service.name": "reachability"})


def _span_exporter(transport: str, port: int, timeout: float = 5) -> Any:
    if transport == "grpc":
        return watch(grpc_span_exporter(endpoint=f"127.0.0.1:{port}", insecure=True,
                                        timeout=timeout))
    return watch(http_span_exporter(endpoint=f"http://127.0.0.1:{port}/v1/traces",
                                    timeout=timeout))


def _log_exporter(transport: str, port: int, timeout: float = 5) -> Any:
    if transport == "grpc":
        return watch(grpc_log_exporter(endpoint=f"127.0.0.1:{port}", insecure=True,
                                       timeout=timeout))
    return watch(http_log_exporter(endpoint=f"http://127.0.0.1:{port}/v1/logs",
                                   timeout=timeout))


def _spans() -> list[ReadableSpan]:
    context = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, False,
                          TraceFlags(1))
    return [ReadableSpan(name="checkout", context=context, resource=_RESOURCE,
                         start_time=10, end_time=20)]


def _logs() -> list[ReadableLogRecord]:
    from opentelemetry._logs import LogRecord

    return [ReadableLogRecord(log_record=LogRecord(timestamp=1, body="hello"),
                              resource=_RESOURCE)]


@pytest.fixture
def sdk_records() -> Iterator[list[logging.LogRecord]]:
    """What the OpenTelemetry exporters log (warnings and up), as it reaches a handler.
    (Their loggers drop a line repeating the one before, within 20 s: forgotten first, so
    that a line not seen here was not logged by this test.)"""
    records: list[logging.LogRecord] = []
    for name, known in list(logging.Logger.manager.loggerDict.items()):
        if name.startswith("opentelemetry.exporter") and isinstance(known, logging.Logger):
            for found in known.filters:
                if hasattr(found, "last_log"):
                    found.last_log = None

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep(logging.WARNING)
    logger = logging.getLogger("opentelemetry")
    logger.addHandler(keep)
    try:
        yield records
    finally:
        logger.removeHandler(keep)


def _attempts(transport: str, exporter: Any) -> list[float]:
    """When the exporter tries to reach its backend (each request it starts, as the
    exporter's own loop calls it), seen from outside."""
    attempts: list[float] = []

    def counted(call: Callable[..., Any]) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            attempts.append(time.monotonic())
            return call(*args, **kwargs)
        return attempt

    if transport == "grpc":
        make_stub = exporter._stub

        def stub(channel: Any) -> Any:  # (rebuilt by the exporter on reconnect)
            made = make_stub(channel)
            made.Export = counted(made.Export)
            return made

        exporter._stub = stub
        exporter._client = stub(exporter._channel)
    else:
        transport_ = exporter._client._transport
        transport_.request = counted(transport_.request)
    return attempts


# An attempt of the exporter's own loop: one request over gRPC; over HTTP two, as the
# exporter retries a connection error once at once.
_REQUESTS_PER_ATTEMPT = {"grpc": 1, "http": 2}


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


# ----- what counts as unreachable ---------------------------------------------------------

def _raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except BaseException as error:
        return error
    raise AssertionError("expected an error")


def _wrapped_os_error(number: int) -> BaseException:
    def connect() -> None:
        try:
            raise OSError(number, "from the kernel")
        except OSError as error:
            raise requests.exceptions.ConnectionError("connect failed") from error

    return _raised(connect)


def test_socket_errors_under_the_http_transports_errors_say_why() -> None:
    """The socket error is found under requests' ConnectionError (through urllib3's), by
    type and errno: refused, no such host, no route, no network; a timeout (a blackholed
    collector) or any other error is not 'unreachable'."""
    refused = _raised(lambda: requests.post(f"http://127.0.0.1:{free_port()}/v1/traces",
                                            timeout=5))
    no_host = _raised(lambda: requests.post("http://nonexistent.invalid:4318/v1/traces",
                                            timeout=5))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        timed_out = _raised(lambda: requests.post(
            f"http://127.0.0.1:{silent.getsockname()[1]}/v1/traces", timeout=0.2))
    assert reason_for_exception(refused) == REFUSED
    assert reason_for_exception(no_host) == NO_SUCH_HOST
    assert reason_for_exception(_wrapped_os_error(errno.EHOSTUNREACH)) == NO_ROUTE
    assert reason_for_exception(_wrapped_os_error(errno.ENETUNREACH)) == NO_NETWORK
    assert reason_for_exception(timed_out) is None
    assert reason_for_exception(ValueError("nope")) is None
    assert reason_for_exception(None) is None


def test_the_grpc_channel_tells_a_failed_connection_from_a_live_servers_error(
        otlp_receiver: OTLPReceiver) -> None:
    """The decision for gRPC is the channel's state, not the error's text: TRANSIENT_FAILURE
    after a refused connection, READY after a live server answered UNAVAILABLE."""
    otlp_receiver.set_failure("UNAVAILABLE")
    for target, expected in ((f"127.0.0.1:{free_port()}",
                              grpc.ChannelConnectivity.TRANSIENT_FAILURE),
                             (otlp_receiver.grpc_endpoint, grpc.ChannelConnectivity.READY)):
        channel = grpc.insecure_channel(target)
        try:
            call = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as raised:
                call(b"", timeout=5)
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
            assert channel_state(channel) is expected
        finally:
            channel.close()


# ----- spans and logs: at exit, during the run ---------------------------------------------

@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_at_exit_a_refused_export_gives_up_after_one_attempt(
        transport: str, sdk_records: list[logging.LogRecord]) -> None:
    """During a final flush the export fails at once (no backoff), the backend is known to
    refuse, and the exporter's own 'failed'/'retrying' lines are left unsaid."""
    port = free_port()
    exporter = _span_exporter(transport, port)
    attempts = _attempts(transport, exporter)
    try:
        with final_exports():
            result, took = _timed(lambda: exporter.export(_spans()))
    finally:
        exporter.shutdown()
    assert result is SpanExportResult.FAILURE
    assert len(attempts) == 1
    assert took < _QUICK, took
    target = backend_of(exporter)
    assert target is not None and target.unreachable == REFUSED
    assert target.message().endswith(f"127.0.0.1:{port} refused the connection")
    assert [r.getMessage() for r in sdk_records] == []


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_while_the_program_runs_a_refused_export_is_retried(
        transport: str, sdk_records: list[logging.LogRecord]) -> None:
    """Outside a final flush the exporter retries with backoff as always (on our worker
    thread: the program does not wait), and the backend is known to refuse meanwhile."""
    exporter = _span_exporter(transport, free_port(), timeout=1.5)
    attempts = _attempts(transport, exporter)
    try:
        assert exporter.export(_spans()) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert len(attempts) >= 2 * _REQUESTS_PER_ATTEMPT[transport], attempts
    assert attempts[-1] - attempts[0] >= 0.5  # (after a backoff: 1 s ± 20%)
    assert any("retrying in" in r.getMessage() for r in sdk_records), sdk_records
    assert backend_of(exporter).unreachable == REFUSED


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_at_exit_later_exports_to_that_backend_do_not_connect_again(transport: str) -> None:
    """Once the final flush found the backend refusing, the next export to it (another
    signal's exporter) fails without connecting: a collector listening there by now gets
    nothing until the final flush is over."""
    port = free_port()
    spans, logs = _span_exporter(transport, port), _log_exporter(transport, port)
    receiver = OTLPReceiver(*((port, free_port()) if transport == "grpc"
                              else (free_port(), port)))
    try:
        with final_exports():
            assert spans.export(_spans()) is SpanExportResult.FAILURE
            receiver.start()
            result, took = _timed(lambda: logs.export(_logs()))
            assert result is LogRecordExportResult.FAILURE
            assert took < _QUICK, took
        assert receiver.requests() == []
        assert logs.export(_logs()) is LogRecordExportResult.SUCCESS  # (the run goes on)
        assert len(receiver.wait_for_logs(1)) == 1
        assert backend_of(logs).unreachable is None
    finally:
        spans.shutdown()
        logs.shutdown()
        receiver.stop()


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_at_exit_a_live_backends_retryable_errors_are_still_retried(
        transport: str, otlp_receiver: OTLPReceiver) -> None:
    """UNAVAILABLE (HTTP 503) from a collector that answers is retried during a final flush
    too, and the batch arrives."""
    otlp_receiver.set_failure("UNAVAILABLE", count=2, retry_after=0.1)
    port = otlp_receiver.grpc_port if transport == "grpc" else otlp_receiver.http_port
    exporter = _span_exporter(transport, port)
    try:
        with final_exports():
            assert exporter.export(_spans()) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert len(otlp_receiver.rejected()) == 2
    assert [s.name for s in otlp_receiver.wait_for_spans(1)] == ["checkout"]
    assert backend_of(exporter).unreachable is None


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_an_export_waiting_to_retry_when_the_exit_begins_gives_up_at_once(
        transport: str) -> None:
    """An export that met the refusal during the run waits out its backoff (2 s by its
    second retry); the final flush starting ends that wait: it tries once more, at once,
    and gives up."""
    exporter = _span_exporter(transport, free_port(), timeout=30)
    attempts = _attempts(transport, exporter)
    two = 2 * _REQUESTS_PER_ATTEMPT[transport]
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(exporter.export(_spans())),
                              daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + 10
        while len(attempts) < two and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(attempts) == two, "the exporter did not retry"
        time.sleep(0.1)  # (now in its second backoff: 2 s ± 20%)
        with final_exports():
            worker.join(_QUICK)
            assert not worker.is_alive(), "the final flush waited for the backoff"
    finally:
        exporter.shutdown()
        worker.join(5)
    assert results == [SpanExportResult.FAILURE]
    assert len(attempts) == two + 1  # (one more, at once, then no more)


# ----- the SDK's metric exporters -------------------------------------------------------

def _metrics_data() -> Any:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=_RESOURCE)
    provider.get_meter("reachability").create_counter("orders").add(3)
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@pytest.mark.parametrize("transport", _TRANSPORTS)
def test_the_sdks_metric_exporters_give_up_at_exit_too(
        transport: str, otlp_receiver: OTLPReceiver) -> None:
    """Watched, the SDK's own OTLP metric exporter fails at once at exit when refused, and
    still delivers to a collector that answers."""
    def exporter(port: int) -> Any:
        if transport == "grpc":
            return watch(GrpcMetricExporter(endpoint=f"127.0.0.1:{port}", insecure=True,
                                            timeout=5))
        return watch(HttpMetricExporter(endpoint=f"http://127.0.0.1:{port}/v1/metrics",
                                        timeout=5))

    data = _metrics_data()
    refused = exporter(free_port())
    live = exporter(otlp_receiver.grpc_port if transport == "grpc"
                    else otlp_receiver.http_port)
    try:
        with final_exports():
            result, took = _timed(lambda: refused.export(data))
            assert result is MetricExportResult.FAILURE
            assert took < _QUICK, took
            assert live.export(data) is MetricExportResult.SUCCESS
    finally:
        refused.shutdown()
        live.shutdown()
    assert backend_of(refused).unreachable == REFUSED
    assert otlp_receiver.wait_for_metric("orders")


def test_something_else_than_an_otlp_exporter_is_left_as_it_is() -> None:
    """An exporter of another kind (a test's, a console one) is returned untouched."""

    class Plain:
        _client = object()

    plain = Plain()
    assert watch(plain) is plain and backend_of(plain) is None
    assert reachability.final_exports_running() is False
