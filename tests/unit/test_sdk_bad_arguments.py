"""Bad arguments to the SDK's public API (client, middleware core): one warning per call,
argument and kind of problem naming the call, the value and what is expected; never an
exception from deep inside OpenTelemetry, never a silent guess, never a batch that fails to
encode because of one bad record. Against the SDK's in-memory exporters and our (and the
exporter's) real OTLP encoders."""

from __future__ import annotations

import math
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from telemetryflow_bootstrap import _diagnostics, middleware
from telemetryflow_bootstrap.builder import TelemetryFlowBuilder
from telemetryflow_bootstrap.client import TelemetryFlowClient
from telemetryflow_bootstrap.domain.errors import TelemetryFlowError
from telemetryflow_bootstrap.infrastructure import handler as handler_module
from telemetryflow_bootstrap.infrastructure.handler import ExporterOverrides
from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder
from telemetryflow_bootstrap.infrastructure.span_encoding import SpanEncoder
from telemetryflow_bootstrap.middleware import TelemetryMiddleware


@dataclass
class Sdk:
    client: TelemetryFlowClient
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    logs: InMemoryLogRecordExporter

    def finished_spans(self) -> list[Any]:
        self.client.flush(2.0)
        return list(self.spans.get_finished_spans())

    def finished_logs(self) -> list[Any]:
        self.client.flush(2.0)
        return list(self.logs.get_finished_logs())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        return [p for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics
                for m in sm.metrics if m.name == name for p in m.data.data_points]


def _make(rate: float = 1.0) -> Sdk:
    spans, reader, logs = InMemorySpanExporter(), InMemoryMetricReader(), \
        InMemoryLogRecordExporter()
    config = TelemetryFlowBuilder().with_service("bad-args").with_sample_rate(rate) \
        .with_batch_settings(timeout_ms=20).build_config()
    client = TelemetryFlowClient(config, exporters=ExporterOverrides(spans, reader, logs),
                                 set_global=False).initialize()
    return Sdk(client, spans, reader, logs)


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    made = _make()
    _diagnostics.reset_for_tests()
    middleware._said.clear()
    yield made
    made.client.shutdown(2.0)


def _warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("telemetryflow: warning:")]


# ----- metrics -----------------------------------------------------------------------------

_BAD_VALUES: dict[str, tuple[Callable[[TelemetryFlowClient], None], str, str]] = {
    # (the call, the metric, what the one warning must say)
    "counter-str": (lambda c: c.increment_counter("m", "1"), "m",
                    "increment_counter('m', value='1'): expected a finite number >= 0"),
    "counter-none": (lambda c: c.increment_counter("m", None), "m",
                     "increment_counter('m', value=None): expected a finite number >= 0"),
    "counter-nan": (lambda c: c.increment_counter("m", math.nan), "m",
                    "increment_counter('m', value=nan)"),
    "counter-inf": (lambda c: c.increment_counter("m", math.inf), "m",
                    "increment_counter('m', value=inf)"),
    "counter-negative": (lambda c: c.increment_counter("m", -1), "m",
                         "increment_counter('m', value=-1)"),
    "counter-complex": (lambda c: c.increment_counter("m", 1j), "m",
                        "increment_counter('m', value=1j)"),
    "histogram-str": (lambda c: c.record_histogram("m", "1.5"), "m",
                      "record_histogram('m', value='1.5'): expected a finite number >= 0"),
    "histogram-nan": (lambda c: c.record_histogram("m", math.nan), "m",
                      "record_histogram('m', value=nan)"),
    "histogram-negative": (lambda c: c.record_histogram("m", -0.5), "m",
                           "record_histogram('m', value=-0.5)"),
    "gauge-none": (lambda c: c.record_gauge("m", None), "m",
                   "record_gauge('m', value=None): expected a finite number (int or float)"),
    "gauge-nan": (lambda c: c.record_gauge("m", math.nan), "m", "record_gauge('m', value=nan)"),
    "gauge-minus-inf": (lambda c: c.record_gauge("m", -math.inf), "m",
                        "record_gauge('m', value=-inf)"),
}


@pytest.mark.parametrize("call, metric, said", list(_BAD_VALUES.values()), ids=list(_BAD_VALUES))
def test_a_metric_value_that_is_not_a_finite_number_is_said_once_and_dropped(
        sdk: Sdk, call: Callable[[TelemetryFlowClient], None], metric: str, said: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Three calls with a value that cannot be recorded (OpenTelemetry raised a bare
    ``TypeError`` for a str or None, and logged NaN, infinity and negative counts on every
    call without naming ours): no exception, one line naming the call and value, nothing
    recorded, and the next valid call of the same metric is."""
    for _ in range(3):
        call(sdk.client)
    [warning] = _warnings(capsys)
    assert said in warning and "the measurement is dropped" in warning, warning
    assert sdk.points(metric) == []
    sdk.client.record_gauge("ok", 1)
    assert len(sdk.points("ok")) == 1


def test_a_negative_gauge_value_is_a_value_like_any_other(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """A gauge may go below zero: recorded, nothing said."""
    sdk.client.record_gauge("temperature", -4.5)
    assert [p.value for p in sdk.points("temperature")] == [-4.5]
    assert _warnings(capsys) == []


def test_metric_attributes_that_are_not_a_mapping_are_said_once_and_left_out(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """``attributes=[("shop", "eu")]`` (OpenTelemetry logged a line per call that names
    neither the call nor the metric): the measurements count, without the attributes."""
    for _ in range(3):
        sdk.client.increment_counter("orders", 1, [("shop", "eu")])  # type: ignore[arg-type]
    [warning] = _warnings(capsys)
    assert "increment_counter('orders', attributes=[('shop', 'eu')]): expected a mapping" \
        in warning
    [point] = sdk.points("orders")
    assert (point.value, dict(point.attributes)) == (3, {})


@pytest.mark.parametrize("description", [5, ["orders"]], ids=["int", "list"])
def test_a_description_that_is_not_a_string_is_said_once_and_left_out(
        sdk: Sdk, description: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``description=5`` raised ``TypeError: sequence item 3`` from OpenTelemetry's
    instrument registry, a list ``unhashable type`` from ours: recorded without it."""
    for _ in range(2):
        sdk.client.increment_counter("orders", 2, description=description)
    [warning] = _warnings(capsys)
    assert f"increment_counter('orders', description={description!r}): expected a string" \
        in warning
    assert [p.value for p in sdk.points("orders")] == [4]


def test_every_number_opentelemetry_records_is_recorded_without_a_word(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """The cheap checks refuse nothing valid: a bool, a Decimal, an int subclass, zero, a
    huge int, and attributes in any mapping (OrderedDict, a read-only proxy)."""
    class Count(int):
        pass

    client = sdk.client
    client.increment_counter("n", True)
    client.increment_counter("n", Count(2), OrderedDict(shop="eu"))
    client.increment_counter("n", 0, types.MappingProxyType({"shop": "eu"}))
    client.increment_counter("n", 10**30)
    client.record_histogram("h", Decimal("1.5"), description=type("D", (str,), {})("d"))
    client.record_gauge("g", -(10**30))
    assert _warnings(capsys) == []
    assert sorted(p.value for p in sdk.points("n")) == [2, 10**30 + 1]
    assert [p.count for p in sdk.points("h")] == [1]
    assert client.get_status()["bad_arguments"] == []


# ----- logs --------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", ["verbose", None, ["info"], 20],
                         ids=["verbose", "none", "list", "int"])
def test_an_unknown_log_severity_is_said_once_and_logged_as_info(
        sdk: Sdk, severity: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``log("msg", "verbose")`` silently became INFO (a list raised ``unhashable type``):
    one line names the value and the accepted ones, the records are INFO."""
    for _ in range(3):
        sdk.client.log("msg", severity)
    [warning] = _warnings(capsys)
    assert f"log(severity={severity!r}): expected one of 'debug', 'info', 'warn', " \
        "'warning', 'error', 'fatal', 'critical' (any case); logged as 'info'" in warning
    assert [r.log_record.severity_text for r in sdk.finished_logs()] == ["INFO"] * 3


def test_a_severity_in_capitals_or_as_pythons_logging_says_it_is_understood(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """"ERROR" was logged as INFO; "Warning" and "critical" (Python's names) too."""
    for severity in ("ERROR", "Warning", "critical", "DEBUG", "fatal"):
        sdk.client.log("msg", severity)
    assert [r.log_record.severity_text for r in sdk.finished_logs()] == [
        "ERROR", "WARN", "FATAL", "DEBUG", "FATAL"]
    assert _warnings(capsys) == []


def test_a_log_body_otlp_cannot_carry_is_sent_as_text_and_the_batch_still_encodes(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """``log(ValueError("card declined"))`` or an object: the whole batch, valid records
    included, failed to encode (ours, then the exporter's encoder): now the body is its
    str(), said once per type (the value never shown: a log may quote anything)."""
    client = sdk.client
    client.log("before")
    for _ in range(2):
        client.log(ValueError("card declined"))  # type: ignore[arg-type]
    client.log(2**70)  # type: ignore[arg-type]  # (beyond int64)
    client.log({"order": 42, "items": ["a", "b"]})  # type: ignore[arg-type]  # (valid)
    client.log("after")
    records = sdk.finished_logs()
    assert [r.log_record.body for r in records] == [
        "before", "card declined", "card declined", str(2**70),
        {"order": 42, "items": ["a", "b"]}, "after"]
    LogEncoder().encode(records)
    encode_logs(records)
    warnings = _warnings(capsys)
    assert len(warnings) == 2, warnings
    assert "log(message=<ValueError>): expected a str" in warnings[0]
    assert "log(message=<int>)" in warnings[1]
    assert "card declined" not in "".join(warnings)


def test_log_attributes_that_are_not_a_mapping_are_said_once_and_left_out(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """A str as attributes raised ``ValueError`` from ``dict()`` in the handler."""
    sdk.client.log_error("msg", "shop=eu")  # type: ignore[arg-type]
    sdk.client.log_error("msg", "shop=eu")  # type: ignore[arg-type]
    [warning] = _warnings(capsys)
    assert "log(attributes='shop=eu'): expected a mapping" in warning
    assert [dict(r.log_record.attributes or {}) for r in sdk.finished_logs()] == [{}, {}]


# ----- spans -------------------------------------------------------------------------------


def test_a_span_or_event_name_that_is_not_a_string_no_longer_breaks_its_batch(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """``start_span(404)``, ``span(b"x")``, ``add_span_event(id, 7)``: OpenTelemetry took
    them, and every batch holding such a span failed to encode, ours and the exporter's
    encoder alike (the valid spans in it lost too). Now each is its str(), said once."""
    client = sdk.client
    with client.span("valid"):
        pass
    for _ in range(2):
        client.end_span(client.start_span(404))  # type: ignore[arg-type]
    with client.span(b"raw"):  # type: ignore[arg-type]
        pass
    span_id = client.start_span("with-event")
    client.add_span_event(span_id, 7)  # type: ignore[arg-type]
    client.end_span(span_id)
    spans = sdk.finished_spans()
    assert [s.name for s in spans] == ["valid", "404", "404", "b'raw'", "with-event"]
    assert [e.name for e in spans[-1].events] == ["7"]
    SpanEncoder().encode(spans)
    encode_spans(spans)
    warnings = _warnings(capsys)
    assert [w.split(": expected")[0].removeprefix("telemetryflow: warning: ")
            for w in warnings] == ["start_span(name=404)", "span(name=b'raw')",
                                   f"add_span_event('{span_id}', name=7)"]


def test_a_span_kind_is_taken_as_meant_or_said(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """``SpanKind.SERVER`` and "SERVER" were silently INTERNAL (a list raised): now they
    are SERVER; an unknown kind is said once per value and is INTERNAL."""
    client = sdk.client
    client.end_span(client.start_span("enum", SpanKind.SERVER))  # type: ignore[arg-type]
    client.end_span(client.start_span("capitals", "CLIENT"))
    with client.span("ctx-enum", SpanKind.CONSUMER):  # type: ignore[arg-type]
        pass
    for _ in range(2):
        client.end_span(client.start_span("unknown", "srv"))
        with client.span("unhashable", ["server"]):  # type: ignore[arg-type]
            pass
    kinds = [(s.name, s.kind) for s in sdk.finished_spans()]
    assert kinds == [("enum", SpanKind.SERVER), ("capitals", SpanKind.CLIENT),
                     ("ctx-enum", SpanKind.CONSUMER)] + [
        ("unknown", SpanKind.INTERNAL), ("unhashable", SpanKind.INTERNAL)] * 2
    warnings = _warnings(capsys)
    assert len(warnings) == 2, warnings
    assert "start_span('unknown', kind='srv'): expected one of 'internal', 'server', " \
        "'client', 'producer', 'consumer' (or an opentelemetry.trace.SpanKind)" in warnings[0]
    assert "span('unhashable', kind=['server'])" in warnings[1]


@pytest.mark.parametrize("use", ["start_span", "span", "add_span_event"])
def test_span_attributes_that_are_not_a_mapping_are_said_once_and_left_out(
        sdk: Sdk, use: str, capsys: pytest.CaptureFixture[str]) -> None:
    """List attributes raised ``TypeError: mappingproxy()`` from the sampler (an
    ``AttributeError`` for an event): the span is made, without them."""
    client, bad = sdk.client, [("shop", "eu")]
    for _ in range(2):
        if use == "start_span":
            client.end_span(client.start_span("s", attributes=bad))  # type: ignore[arg-type]
        elif use == "span":
            with client.span("s", attributes=bad):  # type: ignore[arg-type]
                pass
        else:
            span_id = client.start_span("s")
            client.add_span_event(span_id, "e", bad)  # type: ignore[arg-type]
            client.end_span(span_id)
    [warning] = _warnings(capsys)
    assert f"attributes={bad!r}): expected a mapping of attribute names to values" in warning
    assert warning.startswith(f"telemetryflow: warning: {use}(")
    spans = sdk.finished_spans()
    assert len(spans) == 2 and all(not s.attributes for s in spans)


@pytest.mark.parametrize("span_id", [None, ["x"], 12, "checkout", "DEADBEEF"],
                         ids=["none", "list", "int", "a-name", "not-16-hex"])
def test_a_span_id_start_span_cannot_have_returned_is_said_once(
        sdk: Sdk, span_id: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``end_span("checkout")`` (the name for the id) did nothing without a word, a list
    raised ``unhashable type``; ``add_span_event`` alike."""
    for _ in range(2):
        sdk.client.end_span(span_id)
        sdk.client.add_span_event(span_id, "e")
    warnings = _warnings(capsys)
    assert [w.split("(")[0].rsplit(" ", 1)[1] for w in warnings] == [
        "end_span", "add_span_event"]
    assert all(f"{span_id!r}" in w and "start_span() returned" in w for w in warnings)


def test_ids_that_may_be_real_are_ended_without_a_word(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An unsampled span's id (start_span returns one) takes events and ends as a sampled
    one's does, and a ``span()`` block's id may be ended by hand inside the block (the
    block's own end then is no second end): neither is a bad argument, nothing is said.
    (An id really ended twice is said once: test_client.py::test_start_and_end_span_pairs.)"""
    unsampled = _make(rate=0.0)
    _diagnostics.reset_for_tests()
    try:
        span_id = unsampled.client.start_span("dropped")
        unsampled.client.add_span_event(span_id, "e")
        unsampled.client.end_span(span_id)
        with unsampled.client.span("dropped") as ctx_id:
            unsampled.client.end_span(ctx_id)
        assert _warnings(capsys) == []
    finally:
        unsampled.client.shutdown(2.0)


def test_an_end_span_error_that_is_not_an_exception_is_said_and_the_span_ends(
        sdk: Sdk, capsys: pytest.CaptureFixture[str]) -> None:
    """``end_span(id, "timeout")`` raised ``TypeError`` from ``traceback`` and left the span
    open: now it ends (exported), and the error's type, never its text, is said."""
    span_id = sdk.client.start_span("call")
    sdk.client.end_span(span_id, "secret-ish text")  # type: ignore[arg-type]
    [span] = sdk.finished_spans()
    assert span.name == "call" and span.status.status_code is StatusCode.UNSET
    [warning] = _warnings(capsys)
    assert f"end_span('{span_id}', error=<str>): expected an exception or None" in warning
    assert "secret-ish" not in warning
    assert sdk.client.get_status()["active_spans"] == 0


# ----- lifecycle and status ----------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["2", math.nan, -1, 10**9, None],
                         ids=["str", "nan", "negative", "huge", "none"])
def test_a_bad_flush_timeout_is_said_and_the_default_used(
        sdk: Sdk, timeout: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """``flush("2")`` raised ``TypeError``, ``flush(nan)`` ``ValueError`` from a thread
    wait: now the 5 s default is used, said once."""
    sdk.client.log("queued")
    assert sdk.client.flush(timeout) is True
    assert [r.log_record.body for r in sdk.logs.get_finished_logs()] == ["queued"]
    [warning] = _warnings(capsys)
    assert f"flush(timeout={timeout!r}): expected a number of seconds from 0 to 86400; " \
        "5.0 is used" in warning


def test_a_bad_shutdown_timeout_still_shuts_down(capsys: pytest.CaptureFixture[str]) -> None:
    """``shutdown("1")`` (``TypeError`` in the exit path) shuts down with the default."""
    made = _make()
    _diagnostics.reset_for_tests()
    made.client.log("last")
    assert made.client.shutdown("1") is True  # type: ignore[arg-type]
    assert not made.client.is_initialized
    assert [r.log_record.body for r in made.logs.get_finished_logs()] == ["last"]
    assert "shutdown(timeout='1')" in _warnings(capsys)[0]


def test_status_lists_the_calls_said(sdk: Sdk) -> None:
    """``get_status()["bad_arguments"]`` names each call said, in order, once."""
    for _ in range(2):
        sdk.client.increment_counter("m", "x")
        sdk.client.log("m", "verbose")
    assert sdk.client.get_status()["bad_arguments"] == [
        "increment_counter('m', value='x')", "log(severity='verbose')"]


def test_the_clients_tables_of_names_are_the_handlers() -> None:
    """The client (importable without OpenTelemetry) checks against its own copy of the
    severity and kind names; they must be the handler's."""
    from telemetryflow_bootstrap import client as client_module

    assert set(handler_module._SEVERITIES) == client_module._SEVERITIES
    assert set(handler_module._KINDS) == client_module._KIND_NAMES
    assert set(client_module._SEVERITY_ALIASES.values()) <= client_module._SEVERITIES


# ----- the middleware core -----------------------------------------------------------------


@pytest.fixture
def core(sdk: Sdk) -> TelemetryMiddleware:
    return TelemetryMiddleware(sdk.client)


def _server_spans(sdk: Sdk) -> list[Any]:
    return [s for s in sdk.finished_spans() if s.kind is SpanKind.SERVER]


@pytest.mark.parametrize("status, recorded", [("200", 200), (503.0, 503), ("OK", None)],
                         ids=["str", "float", "word"])
def test_end_request_with_a_status_that_is_not_an_int_still_ends_the_span(
        sdk: Sdk, core: TelemetryMiddleware, status: Any, recorded: int | None,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``end_request(scope, "200")`` failed inside (``'>=' not supported``): the span was
    never ended nor exported, and the line said "could not end a server span". Now the
    status is the int it stands for (else left out), said once."""
    for path in ("/a", "/b"):
        core.end_request(core.start_request("GET", path), status)
    spans = _server_spans(sdk)
    assert [s.attributes.get("http.response.status_code") for s in spans] == [recorded] * 2
    [warning] = _warnings(capsys)
    assert f"end_request(status_code={status!r}): expected an int (e.g. 200) or None" \
        in warning


def test_end_request_twice_or_with_a_foreign_scope_is_said_once(
        sdk: Sdk, core: TelemetryMiddleware, capsys: pytest.CaptureFixture[str]) -> None:
    """A second ``end_request`` logged OpenTelemetry's "Failed to detach context" with a
    traceback; a scope that is not ours raised ``AttributeError``. Both: one line each."""
    scope = core.start_request("GET", "/twice")
    for _ in range(2):
        core.end_request(scope, 200)
        core.end_request("scope", 200)  # type: ignore[arg-type]
    assert len(_server_spans(sdk)) == 1
    warnings = _warnings(capsys)
    assert len(warnings) == 2, warnings
    assert "end_request(scope='scope'): expected what start_request() returned" \
        in warnings[0]
    assert "end_request() called again for a request it already ended" in warnings[1]
    assert "Traceback" not in capsys.readouterr().err


def test_end_request_with_an_error_that_is_not_an_exception_ends_the_span(
        sdk: Sdk, core: TelemetryMiddleware, capsys: pytest.CaptureFixture[str]) -> None:
    """``error="boom"`` made ``record_exception`` raise inside: the span was lost. Now it
    ends; the 500 still makes it an error."""
    core.end_request(core.start_request("GET", "/e"), 500, "boom")  # type: ignore[arg-type]
    [span] = _server_spans(sdk)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "500"
    assert "end_request(error=<str>): expected an exception or None" in _warnings(capsys)[0]


def test_start_request_takes_header_pairs_and_says_what_it_cannot_use(
        sdk: Sdk, core: TelemetryMiddleware, capsys: pytest.CaptureFixture[str]) -> None:
    """Headers as ASGI's (bytes, bytes) pairs raised ``AttributeError: 'list' object has
    no attribute 'items'`` inside the program's handler: now they are read (the caller's
    trace continued); list attributes and an int path are said once, the span made."""
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    pairs = [(b"traceparent", f"00-{trace_id}-{parent}-01".encode()), (b"host", b"shop:8080")]
    scope = core.start_request("GET", 5, headers=pairs,  # type: ignore[arg-type]
                               attributes=[("a", 1)])  # type: ignore[arg-type]
    core.end_request(scope, 200)
    core.end_request(core.start_request("GET", "/", headers=42), 200)  # type: ignore[arg-type]
    first, second = _server_spans(sdk)
    assert format(first.context.trace_id, "032x") == trace_id
    assert format(first.parent.span_id, "016x") == parent
    assert (first.attributes["url.path"], first.attributes["server.port"]) == ("5", 8080)
    assert "a" not in first.attributes and second.parent is None
    warnings = _warnings(capsys)
    assert [w.split(": expected")[0].removeprefix("telemetryflow: warning: ")
            for w in warnings] == ["start_request(path=5)",
                                   "start_request(attributes=[('a', 1)])",
                                   "start_request(headers=42)"]


def test_a_middleware_client_of_the_wrong_type_is_a_clear_error() -> None:
    """``TelemetryMiddleware("shop")`` (or ``FlaskTelemetryMiddleware(app, "shop")``)
    silently used the global providers: set-up code gets a ``TelemetryFlowError``."""
    with pytest.raises(TelemetryFlowError, match=r"TelemetryMiddleware\(client='shop'\): "
                       r"expected a TelemetryFlowClient, get_client\(\) or None"):
        TelemetryMiddleware("shop")
