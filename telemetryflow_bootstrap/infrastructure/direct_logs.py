"""The logging bridge's records straight into our log queue, when that is all the SDK's
``Logger.emit`` would do with them.

Why: ``Logger.emit`` builds an API ``LogRecord`` from keywords, wraps it in a
``ReadWriteLogRecord`` (a dataclass whose ``__post_init__`` bounds the attributes), hands
that to its processor chain, and our ``BatchLogProcessor`` copies it into the
``ReadableLogRecord`` it queues: ~13-16 µs of the program's thread per record, where
building that ``ReadableLogRecord`` directly costs ~7.6 µs, and a program may log several
records per request. ``DirectLogs.emit`` queues the very record the chain would have queued
(same fields, same attribute limits and dropped count, the SDK's logger metrics counted,
its dropped-attributes warning given) when the logger is the SDK's, enabled, and its
provider's only processor is our ``BatchLogProcessor``; a processor added since, a
disabled logger, or an SDK of another shape go through ``Logger.emit`` as always. Tests
compare what both paths queue, field by field, so an SDK upgrade that changes this chain
fails there.

One addition: ``dropped``, the attributes the caller already left out (the logging bridge
bounds a record's attributes itself, silently: see ``stdlib_logging``), joins the record's
dropped count, exported as ``dropped_attributes_count``. ``Logger.emit`` has no way to take
it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import LogRecord
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context

if TYPE_CHECKING:
    from .batching import BatchLogProcessor

# The SDK's internals this module relies on, imported by the first ``for_logger`` (the
# logging bridge imports this module in every process, logs exported or not, and the SDK's
# logs module is ~15% of the hook's instructions). ``_SdkLogger`` stays None when any of
# them is missing: every record then takes ``Logger.emit``.
_SdkLogger: Any = None
_loaded = False


def _load_sdk() -> None:
    global _SdkLogger, _loaded, BatchLogProcessor, LogRecordDroppedAttributesWarning
    global ReadableLogRecord, Resource, SynchronousMultiLogRecordProcessor
    if _loaded:
        return
    _loaded = True
    try:
        from opentelemetry.sdk._logs import LogRecordDroppedAttributesWarning, ReadableLogRecord
        from opentelemetry.sdk._logs._internal import Logger, SynchronousMultiLogRecordProcessor
        from opentelemetry.sdk.resources import Resource

        from .batching import BatchLogProcessor
    except ImportError:  # pragma: no cover - depends on the installed SDK
        return
    _SdkLogger = Logger


_NEEDED = ("_multi_log_record_processor", "_resource", "_instrumentation_scope",
           "_log_record_limits", "_logger_metrics", "_is_enabled")


class DirectLogs:
    """Emits for one SDK logger (see module); ``for_logger`` says whether it can."""

    __slots__ = ("_chain", "_limits", "_logger", "_metrics", "_processors", "_queue",
                 "_scope")

    def __init__(self, logger: Any, processor: BatchLogProcessor) -> None:
        _load_sdk()  # (``emit`` uses what it imports)
        self._logger = logger
        self._chain = logger._multi_log_record_processor
        self._processors = self._chain._log_record_processors
        self._queue = processor.queue
        self._scope = logger._instrumentation_scope
        self._limits = logger._log_record_limits
        self._metrics = logger._logger_metrics

    @classmethod
    def for_logger(cls, logger: Any) -> DirectLogs | None:
        """A ``DirectLogs`` for ``logger`` if its chain is ours alone, else None."""
        _load_sdk()
        if _SdkLogger is None or type(logger) is not _SdkLogger:
            return None
        if not all(hasattr(logger, name) for name in _NEEDED):
            return None
        chain = logger._multi_log_record_processor
        if type(chain) is not SynchronousMultiLogRecordProcessor:
            return None
        processors = getattr(chain, "_log_record_processors", None)
        if type(processors) is not tuple or len(processors) != 1 or \
                type(processors[0]) is not BatchLogProcessor:
            return None
        return cls(logger, processors[0])

    def emit(self, timestamp: int, severity_number: Any, severity_text: str, body: Any,
             attributes: dict[str, Any], dropped: int = 0) -> None:
        """``logger.emit(timestamp=, severity_number=, severity_text=, body=, attributes=)``
        for records carrying no ``exception`` (the bridge writes its attributes itself),
        with ``dropped`` attributes counted as dropped (see module)."""
        logger = self._logger
        if logger._multi_log_record_processor is not self._chain or \
                self._chain._log_record_processors is not self._processors:
            # (a processor added or removed since: the SDK's way, every processor sees it)
            logger.emit(timestamp=timestamp, severity_number=severity_number,
                        severity_text=severity_text, body=body, attributes=attributes)
            return
        if not logger._is_enabled():
            return
        limits = self._limits
        bounded = BoundedAttributes(  # (as ReadWriteLogRecord.__post_init__)
            maxlen=limits.max_log_record_attributes,
            attributes=attributes if attributes else None,
            immutable=False,
            max_value_len=limits.max_log_record_attribute_length,
            extended_attributes=True,
        )
        if bounded.dropped > 0:
            warnings.warn("Log record attributes were dropped due to limits",
                          LogRecordDroppedAttributesWarning, stacklevel=2)
        if dropped:  # (after the warning: the caller left these out on purpose)
            bounded.dropped += dropped
        record = LogRecord(timestamp=timestamp, severity_number=severity_number,
                           severity_text=severity_text, body=body, attributes=bounded)
        record.context = Context()  # (as BatchLogProcessor.on_emit: the ids are kept)
        self._metrics.emit_log()
        resource = logger._resource
        self._queue.emit(ReadableLogRecord(
            log_record=record,
            resource=resource if resource is not None else Resource({}),
            instrumentation_scope=self._scope,
            limits=limits,
        ))
