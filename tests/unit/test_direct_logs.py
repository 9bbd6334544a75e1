"""``DirectLogs`` queues exactly what the SDK's ``Logger.emit`` → processor chain →
``BatchLogProcessor`` would have queued, and leaves every other case to ``Logger.emit``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
)
from opentelemetry.sdk._logs._internal import _LoggerConfig
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

from telemetryflow_bootstrap.infrastructure.batching import BatchLogProcessor, BatchQueue
from telemetryflow_bootstrap.infrastructure.direct_logs import DirectLogs
from telemetryflow_bootstrap.infrastructure.log_encoding import LogEncoder

_RESOURCE = Resource({"service.name": "direct-test", "host.name": "h"})


@pytest.fixture
def queued() -> Iterator[tuple[LoggerProvider, list[Any]]]:
    """A provider whose only processor is ours, and the records its queue holds."""
    queue = BatchQueue(lambda batch: True, signal="logs", max_queue_size=10_000,
                       max_batch_size=10_000, schedule_delay_ms=600_000)
    provider = LoggerProvider(resource=_RESOURCE, shutdown_on_exit=False,
                              log_record_limits=LogRecordLimits(max_attributes=4,
                                                                max_attribute_length=8))
    provider.add_log_record_processor(BatchLogProcessor(queue))
    yield provider, queue._queue  # type: ignore[misc]
    queue._queue.clear()
    provider.shutdown()


_BODIES = ["user 17 did thing", "", {"order": {"id": 7, "items": [1, 2]}}, None, 42, b"\x00"]
_ATTRIBUTES: list[dict[str, Any]] = [
    {},
    {"code.function.name": "f", "code.line.number": 12, "thread.name": "MainThread"},
    {"a": 1, "b": "2", "c": 3.5, "d": True, "e": "f", "g": "h"},  # past the limit of 4
    {"long": "a value longer than eight", "list": ["abcdefghijk", "x"]},
]
_SEVERITIES = [(SeverityNumber.INFO, "INFO"), (SeverityNumber.ERROR, "ERROR"), (None, None)]


def _both(provider: LoggerProvider, records: list[Any], name: str, **fields: Any
          ) -> tuple[Any, Any]:
    """What Logger.emit queues and what DirectLogs.emit queues for the same fields."""
    logger = provider.get_logger(name)
    direct = DirectLogs.for_logger(logger)
    assert direct is not None
    logger.emit(**{**fields, "attributes": dict(fields["attributes"])})
    direct.emit(fields["timestamp"], fields["severity_number"], fields["severity_text"],
                fields["body"], dict(fields["attributes"]))
    assert len(records) == 2
    sdk, ours = records.popleft(), records.popleft()
    return sdk, ours


def _same(sdk: Any, ours: Any) -> None:
    assert type(ours) is type(sdk)
    assert ours.log_record.observed_timestamp >= sdk.log_record.observed_timestamp
    ours.log_record.observed_timestamp = sdk.log_record.observed_timestamp
    assert ours.resource is sdk.resource
    assert ours.instrumentation_scope is sdk.instrumentation_scope
    assert ours.limits is sdk.limits
    assert ours.dropped_attributes == sdk.dropped_attributes
    assert dict(ours.log_record.attributes) == dict(sdk.log_record.attributes)
    assert ours.log_record.context == sdk.log_record.context == Context()
    assert vars(ours.log_record).keys() == vars(sdk.log_record).keys()
    for key, value in vars(sdk.log_record).items():
        if key != "attributes":
            assert getattr(ours.log_record, key) == value, key
    encoder = LogEncoder()
    assert encoder.encode([ours]) == encoder.encode([sdk])


@pytest.mark.parametrize("body", _BODIES)
@pytest.mark.parametrize("attributes", _ATTRIBUTES)
@pytest.mark.parametrize(("severity_number", "severity_text"), _SEVERITIES)
def test_the_direct_path_queues_what_the_sdk_chain_queues(queued, body, attributes,
                                                          severity_number, severity_text):
    provider, records = queued
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogRecordDroppedAttributesWarning)
        sdk, ours = _both(provider, records, "app.module", timestamp=1_700_000_000_123_456_789,
                          severity_number=severity_number, severity_text=severity_text,
                          body=body, attributes=attributes)
    _same(sdk, ours)


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ALWAYS_OFF], ids=["sampled", "unsampled"])
def test_inside_a_span_both_carry_its_ids_and_flags(queued, sampler):
    provider, records = queued
    tracer = TracerProvider(sampler=sampler).get_tracer("t")
    with tracer.start_as_current_span("request") as span:
        sdk, ours = _both(provider, records, "app", timestamp=5,
                          severity_number=SeverityNumber.WARN, severity_text="WARNING",
                          body="inside", attributes={"k": "v"})
    context = span.get_span_context()
    assert (ours.log_record.trace_id, ours.log_record.span_id) == (context.trace_id,
                                                                   context.span_id)
    assert ours.log_record.trace_flags == context.trace_flags
    _same(sdk, ours)


def test_dropped_attributes_warn_on_both_paths(queued):
    provider, records = queued
    with pytest.warns(LogRecordDroppedAttributesWarning) as caught:
        _both(provider, records, "app", timestamp=1, severity_number=None,
              severity_text=None, body="x", attributes={f"k{i}": i for i in range(9)})
    assert len(caught) == 2


def test_attributes_the_caller_left_out_join_the_dropped_count(queued):
    """With ``dropped``, the direct path queues what the SDK queues for the full attributes
    (the same kept, the same dropped count, the same encoding), and warns of nothing."""
    provider, records = queued  # (a limit of 4 attributes)
    full = {f"k{i}": i for i in range(7)}
    logger = provider.get_logger("app")
    direct = DirectLogs.for_logger(logger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogRecordDroppedAttributesWarning)
        logger.emit(timestamp=1, severity_number=SeverityNumber.INFO, severity_text="INFO",
                    body="x", attributes=dict(full))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        direct.emit(1, SeverityNumber.INFO, "INFO", "x",
                    {key: full[key] for key in ("k3", "k4", "k5", "k6")}, dropped=3)
    sdk, ours = records.popleft(), records.popleft()
    assert sdk.dropped_attributes == 3
    _same(sdk, ours)


def test_the_sdk_logger_metrics_count_both(queued, monkeypatch):
    provider, records = queued
    logger = provider.get_logger("app")
    counted: list[int] = []
    monkeypatch.setattr(logger._logger_metrics, "emit_log", lambda: counted.append(1))
    direct = DirectLogs.for_logger(logger)
    logger.emit(timestamp=1, body="sdk", attributes={})
    direct.emit(1, None, None, "direct", {})

    assert counted == [1, 1]
    assert [r.log_record.body for r in records] == ["sdk", "direct"]


def test_a_disabled_logger_queues_nothing_on_either_path(queued):
    provider, records = queued
    logger = provider.get_logger("quiet")
    direct = DirectLogs.for_logger(logger)
    logger._set_logger_config(_LoggerConfig(is_enabled=False))
    logger.emit(timestamp=1, body="sdk", attributes={})
    direct.emit(1, None, None, "direct", {})

    assert list(records) == []


def test_a_processor_added_later_sees_the_records_too(queued):
    provider, records = queued
    logger = provider.get_logger("app")
    direct = DirectLogs.for_logger(logger)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))

    direct.emit(1, SeverityNumber.INFO, "INFO", "seen by both", {"k": "v"})

    assert [r.log_record.body for r in records] == ["seen by both"]
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["seen by both"]


def test_only_a_chain_of_ours_alone_takes_the_direct_path(queued):
    provider, _records = queued
    assert DirectLogs.for_logger(provider.get_logger("ours alone")) is not None

    provider.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
    assert DirectLogs.for_logger(provider.get_logger("shared")) is None

    other = LoggerProvider(resource=_RESOURCE, shutdown_on_exit=False)
    other.add_log_record_processor(SimpleLogRecordProcessor(InMemoryLogRecordExporter()))
    assert DirectLogs.for_logger(other.get_logger("theirs")) is None
    assert DirectLogs.for_logger(object()) is None
