"""The stdlib ``logging`` bridge: every record the program logs also becomes an OpenTelemetry
log record, and every record carries the active trace ids for text formatters.

Produces
    One OpenTelemetry log record per stdlib record that reaches the top of its logger
    hierarchy (the records a root handler would see) at or above the export level. The
    OpenTelemetry logger (instrumentation scope) is named after the Python logger.

    - severity number from ``levelno`` (custom levels land inside the nearest band, e.g. 25 →
      INFO3), severity text = ``levelname``; timestamp = ``record.created``
    - body: ``record.getMessage()``; a mapping logged without arguments stays structured;
      with bad %-arguments the template, and for a message whose ``__str__`` raises
      ``<unprintable TYPE>`` (the program's handlers report that record as a logging error)
    - ``code.function.name``, ``code.file.path``, ``code.line.number``, ``code.stacktrace``
      (``stack_info=True``), ``thread.id``, ``thread.name``
    - ``exception.type``, ``exception.message``, ``exception.stacktrace`` from ``exc_info``
    - ``extra=`` fields whose values are str/bool/int/float, under their own names, in the
      order the record got them; past the SDK's attribute count limit
      (``OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT``, default 128) our own attributes above are
      kept, then the first extras, and the rest are counted in the record's
      ``dropped_attributes_count`` (one warning per process, never one per record)
    - trace id, span id and flags of the span current where the record was logged

    Every ``LogRecord`` also gets ``otelTraceID``, ``otelSpanID``, ``otelServiceName`` and
    ``otelTraceSampled`` ("0", "0", the service name, False outside a span), so
    ``%(otelTraceID)s`` works in any formatter.

Reads
    TELEMETRYFLOW_LOG_EXPORT_LEVEL (lowest level exported), TELEMETRYFLOW_LOG_CORRELATION
    (``logging.basicConfig()`` without a format gets one with the trace ids),
    TELEMETRYFLOW_SERVICE_NAME (``otelServiceName``), TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS
    (``logging`` leaves the logging module untouched). All through the config object.

How it attaches, and why not as a root handler
    A handler in ``logging.root.handlers`` is visible to the program: ``basicConfig()`` does
    nothing when the root has a handler, ``basicConfig(force=True)`` and ``dictConfig`` close
    and remove it, ``logging.lastResort`` stops printing warnings for programs that configured
    nothing, and code that reads ``root.handlers[0]`` gets ours. Instead we wrap
    ``logging.Logger.callHandlers`` (the step after the logger's level, ``disabled`` flag and
    filters let a record through): the program's handlers run exactly as before, then our
    ``_BridgeHandler`` sees the record if it would have reached a root handler (every logger
    below the top propagates). ``root.handlers``, ``hasHandlers()``, ``lastResort`` and
    ``basicConfig`` cannot tell we are there. The export level is a floor on top of the
    program's own levels: we never lower a logger's level (that would change what the
    program's own handlers print).

Hazards handled
    - Feedback loops: records logged while instrumentation is suppressed (our exports run
      so), records from the SDK's/exporter's loggers on our export threads, and records
      logged from inside our own export (a thread-local flag) are never exported.
    - The SDK's/exporter's records emitted by an export (on our export threads, or while
      instrumentation is suppressed) are not shown to the program's handlers either, even
      when logs are not exported: with the backend down the OTLP exporter warns on every
      retry, which would flood the program's stderr and log files, and our own diagnostics
      already report the failure once a minute. With ``TELEMETRYFLOW_LOG_LEVEL=debug`` they
      are shown.
    - Another library may wrap ``callHandlers`` after us (Sentry does): ours is never
      wrapped in twice, and stays in their chain, inert, if we are uninstalled.
    - ``logging.shutdown()`` and ``logging.config.dictConfig``/``fileConfig`` (Django's
      ``setup()``, uvicorn) close every handler the logging module knows of, ours included,
      while the program goes on logging: ``close`` therefore does not stop the export; only
      our own lifecycle does (a new bridge installed, the SDK shut down at exit). At
      interpreter exit our flush (an ``atexit`` function registered after the SDK imported
      ``logging``) runs before the logging module's own ``atexit`` shutdown, which has
      nothing of ours to flush; records logged by the program's ``atexit`` functions (run
      before ours) are exported.
    - Nothing here raises into the program: a record we cannot convert is reported once and
      skipped; the program's handlers have already seen it.
    - Not handled: when one of the program's handlers fails, the stdlib's
      ``--- Logging error ---`` report shows the call stack from the first frame outside the
      logging package's directory, which is our ``callHandlers`` wrapper; so the report also
      lists our frame and the logging frames above it (four more, for ``logger.warning``).
      Only a wrapper that lies about its file name, or a handler in ``root.handlers`` (see
      above), would hide them.

Code: this module installs (``callHandlers``, the record factory, ``basicConfig``);
``_log_stdlib_handler`` converts and exports; ``_log_records`` holds what the loguru export
shares with it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from .. import _diagnostics
from ._log_records import export_levelno
from ._log_stdlib_handler import BridgeHandler as _BridgeHandler
from ._log_stdlib_handler import is_export_noise as _is_export_noise

# The scope records share past the bound on distinct logger names.
_OVERFLOW_SCOPE = _BridgeHandler._OVERFLOW_SCOPE

_NO_TRACE_ID = "0"
_NO_SPAN_ID = "0"
# The text logging.basicConfig() uses when no format is given, plus the correlation fields.
_CORRELATED_FORMATS = {
    "%": "%(levelname)s:%(name)s:%(message)s trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
         "service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s",
    "{": "{levelname}:{name}:{message} trace_id={otelTraceID} span_id={otelSpanID} "
         "service.name={otelServiceName} trace_sampled={otelTraceSampled}",
    "$": "${levelname}:${name}:${message} trace_id=${otelTraceID} span_id=${otelSpanID} "
         "service.name=${otelServiceName} trace_sampled=${otelTraceSampled}",
}


# ----- installing -------------------------------------------------------------------------

_lock = threading.Lock()
_bridge: _BridgeHandler | None = None
_original_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None
# Our wrapper, while it is in the chain. It stays there (inert without a bridge) when code
# that wrapped it after us keeps a reference, so it is never wrapped in twice.
_our_call_handlers: Callable[[logging.Logger, logging.LogRecord], None] | None = None
_original_basic_config: Callable[..., None] | None = None


def _reaches_top(logger: logging.Logger) -> bool:
    """Would a record handled by ``logger`` reach the top (root) logger's handlers?"""
    while logger.propagate:
        parent = logger.parent
        if parent is None:
            return True
        logger = parent
    return logger.parent is None


def _make_call_handlers(original: Callable[[logging.Logger, logging.LogRecord], None]
                        ) -> Callable[[logging.Logger, logging.LogRecord], None]:
    @functools.wraps(original)
    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if _is_export_noise(record) and not _diagnostics.enabled_for("debug"):
            return
        original(self, record)
        bridge = _bridge
        if bridge is not None and record.levelno >= bridge.level and _reaches_top(self):
            bridge.handle(record)

    # Handlers run under this frame. Code that walks up the stack past logging's own frames
    # to find who logged (loguru's documented InterceptHandler, which feeds `logging`
    # records to loguru) stops at the first frame from another file: ours, so every
    # intercepted line printed our location instead of the program's. Naming logging's file
    # as this function's lets such walks pass it, as they pass logging's (a traceback
    # through it then shows logging's file name with this function's line numbers).
    with contextlib.suppress(AttributeError, ValueError):
        callHandlers.__code__ = callHandlers.__code__.replace(co_filename=logging.__file__)
    return callHandlers


def _ensure_call_handlers_wrapped() -> None:
    global _original_call_handlers, _our_call_handlers
    if _our_call_handlers is None:
        _original_call_handlers = logging.Logger.callHandlers
        _our_call_handlers = _make_call_handlers(_original_call_handlers)
        logging.Logger.callHandlers = _our_call_handlers  # type: ignore[method-assign]


def install_noise_filter() -> None:
    """Keep the SDK's/exporter's records on our export threads out of the program's
    handlers (see the module docstring), whether or not logs are exported."""
    with _lock:
        _ensure_call_handlers_wrapped()


def install_bridge(logger_provider: Any, level: str | int = "info",
                   sdk: Any = None) -> _BridgeHandler:
    """Export every record that reaches the root logger to ``logger_provider`` from now on.

    Installing again replaces the provider and level (one bridge per process)."""
    global _bridge
    levelno = export_levelno(level)
    handler = _BridgeHandler(logger_provider, levelno, sdk)
    with _lock:
        _ensure_call_handlers_wrapped()
        previous, _bridge = _bridge, handler
    if previous is not None:
        previous._stop()
    return handler


def install_record_factory(service_name: str) -> None:
    """Give every ``LogRecord`` the correlation fields, chaining to the current factory."""
    with _lock:
        previous = logging.getLogRecordFactory()
        if getattr(previous, "_telemetryflow_previous", None) is not None:
            previous = previous._telemetryflow_previous  # type: ignore[attr-defined]
        logging.setLogRecordFactory(_make_record_factory(previous, service_name))


def _make_record_factory(previous: Callable[..., logging.LogRecord],
                         service_name: str) -> Callable[..., logging.LogRecord]:
    get_current_span = trace.get_current_span
    # The last span seen, with its ids as text: consecutive records usually share a span, and
    # formatting two hex numbers is most of this factory's cost. The cell holds an immutable
    # tuple that is replaced whole, so racing threads at worst recompute.
    last: list[tuple[int, int, bool, str, str]] = [(0, 0, False, _NO_TRACE_ID, _NO_SPAN_ID)]

    def record_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            context = get_current_span().get_span_context()
            if context.is_valid:
                cached = last[0]
                sampled = context.trace_flags.sampled
                if (cached[1] != context.span_id or cached[0] != context.trace_id
                        or cached[2] != sampled):
                    cached = (context.trace_id, context.span_id, sampled,
                              format(context.trace_id, "032x"), format(context.span_id, "016x"))
                    last[0] = cached
                record.otelTraceID, record.otelSpanID = cached[3], cached[4]
                record.otelTraceSampled = sampled
            else:
                record.otelTraceID, record.otelSpanID = _NO_TRACE_ID, _NO_SPAN_ID
                record.otelTraceSampled = False
            record.otelServiceName = service_name
        except Exception:  # never let correlation break a log call
            pass
        return record

    record_factory._telemetryflow_previous = previous  # type: ignore[attr-defined]
    return record_factory


def install_correlated_basic_config() -> None:
    """``logging.basicConfig()`` without a format uses one that shows the trace ids."""
    global _original_basic_config
    with _lock:
        if _original_basic_config is not None:
            return
        original = logging.basicConfig
        _original_basic_config = original

        @functools.wraps(original)
        def basicConfig(**kwargs: Any) -> None:
            if "format" not in kwargs:
                fmt = _CORRELATED_FORMATS.get(kwargs.get("style", "%"))
                if fmt is not None:  # an invalid style: let basicConfig say so
                    kwargs["format"] = fmt
            original(**kwargs)

        logging.basicConfig = basicConfig


def _uninstall() -> None:
    """Undo every install (tests): the stdlib functions back, our handler stopped."""
    global _bridge, _original_call_handlers, _our_call_handlers, _original_basic_config
    with _lock:
        if _our_call_handlers is not None and logging.Logger.callHandlers is _our_call_handlers:
            logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign]
            _original_call_handlers = _our_call_handlers = None
        factory = logging.getLogRecordFactory()
        previous = getattr(factory, "_telemetryflow_previous", None)
        if previous is not None:
            logging.setLogRecordFactory(previous)
        if _original_basic_config is not None:
            logging.basicConfig = _original_basic_config
        _original_basic_config = None
        bridge, _bridge = _bridge, None
    if bridge is not None:
        bridge._stop()
