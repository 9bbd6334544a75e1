"""``TelemetryFlowClient``: the SDK's public face (interface layer).

Every call is one command on the bus to the ``TelemetryCommandHandler``; ``span()`` talks to
the tracer directly, because a context manager that makes the span current must touch the
OpenTelemetry context on this thread and should cost no more than the raw SDK call.

A metric name or unit OpenTelemetry refuses (a name must start with a letter and hold at most
255 ASCII letters, digits and ``_ . - /``; a unit at most 63 ASCII characters) is said once, on
stderr, and its measurements are dropped: the SDK would raise a bare ``Exception`` from deep
inside, and a ``KeyError`` on every later call with that name. Each name and unit is checked
the first time it is used (then it is one set lookup per call); ``get_status()`` lists the
names refused (``metric_names_refused``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from . import _diagnostics, _runtime
from .application import commands as c
from .application import queries as q
from .application.bus import CommandBus, QueryBus
from .domain.config import TelemetryConfig
from .domain.errors import NotInitializedError, TelemetryFlowError

Attributes = Mapping[str, Any] | None


class TelemetryFlowClient:
    """Metrics, logs and spans for one service, exported as OTLP (or to the console).

    Thread-safe: lifecycle calls take an ``RLock``; the handler guards its tables itself.
    Usable as a context manager (initialises on entry, shuts down on exit).
    """

    def __init__(
        self, config: TelemetryConfig, *, exporters: Any = None, set_global: bool = True
    ) -> None:
        if not isinstance(config, TelemetryConfig):
            raise TelemetryFlowError(
                f"TelemetryFlowClient(config=...) expects a TelemetryConfig, got "
                f"{type(config).__name__}; build one with TelemetryFlowBuilder"
            )
        self._config = config
        self._exporters = exporters
        self._set_global = set_global
        self._lock = threading.RLock()
        self._handler: Any = None
        self._commands = CommandBus()
        self._queries = QueryBus()
        self._owner = False
        self._initialized = False
        # Metric names and units already checked (see the module doc); ours, not the
        # handler's, so a shared SDK's other clients check their own.
        self._metric_names: set[str] = set()
        self._metric_units: set[str] = {""}
        self._refused: dict[str, None] = {}  # what was refused, as shown (insertion-ordered)

    @property
    def config(self) -> TelemetryConfig:
        return self._config

    @property
    def is_initialized(self) -> bool:
        return self._initialized

    # ----- lifecycle ---------------------------------------------------------------------

    def initialize(self) -> TelemetryFlowClient:
        """Start the SDK (providers, exporters, global registration). Idempotent.

        If another client already runs the process-wide SDK (the launcher's, say), this one
        shares it rather than starting a second set of providers and exporters.
        """
        with self._lock:
            if self._initialized:
                return self
            from .infrastructure.handler import TelemetryCommandHandler

            shared = _runtime.shared_handler() if self._set_global and not self._exporters else None
            if shared is not None and shared.initialized:
                handler, self._owner = shared, False
            else:
                handler = TelemetryCommandHandler(self._exporters, set_global=self._set_global)
                self._owner = True
            self._commands = CommandBus()
            self._queries = QueryBus()
            handler.register(self._commands, self._queries)
            if self._owner:
                self._commands.dispatch(c.InitializeSDKCommand(self._config))
            self._handler = handler
            self._initialized = True
            if self._set_global and (self._owner or _runtime.current_client() is None):
                _runtime.set_current(self, handler)
            return self

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush and stop within ``timeout`` seconds; True if everything was exported.

        A client sharing another's SDK only flushes: the owner decides when it stops.
        """
        with self._lock:
            if not self._initialized:
                return True
            if self._owner:
                ok = bool(self._commands.dispatch(c.ShutdownSDKCommand(timeout)))
            else:
                ok = bool(self._commands.dispatch(c.FlushTelemetryCommand(timeout)))
            self._initialized = False
            _runtime.clear_current(self)
            return ok

    def flush(self, timeout: float = 5.0) -> bool:
        """Export everything finished so far; True on success within ``timeout`` seconds."""
        self._ensure()
        return bool(self._commands.dispatch(c.FlushTelemetryCommand(timeout)))

    def __enter__(self) -> TelemetryFlowClient:
        return self.initialize()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def _ensure(self) -> None:
        if not self._initialized:
            raise NotInitializedError(
                "TelemetryFlowClient is not initialized: call client.initialize() first "
                "(or use it as a context manager)"
            )

    # ----- metrics -------------------------------------------------------------------------

    def increment_counter(
        self,
        name: str,
        value: int | float = 1,
        attributes: Attributes = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        if not self._initialized:
            self._ensure()
        if not self._accepts(name, unit):
            return
        self._commands.dispatch(c.RecordCounterCommand(name, value, attributes, unit, description))

    def record_gauge(
        self,
        name: str,
        value: int | float,
        attributes: Attributes = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        if not self._initialized:
            self._ensure()
        if not self._accepts(name, unit):
            return
        self._commands.dispatch(c.RecordGaugeCommand(name, value, attributes, unit, description))

    def record_histogram(
        self,
        name: str,
        value: int | float,
        attributes: Attributes = None,
        *,
        unit: str = "",
        description: str = "",
    ) -> None:
        if not self._initialized:
            self._ensure()
        if not self._accepts(name, unit):
            return
        self._commands.dispatch(
            c.RecordHistogramCommand(name, value, attributes, unit, description)
        )

    def _accepts(self, name: Any, unit: Any) -> bool:
        """Whether measurements of ``name`` in ``unit`` are recorded (see the module doc)."""
        try:
            if name in self._metric_names and unit in self._metric_units:
                return True
        except TypeError:  # an unhashable name or unit (a list): refused below
            pass
        return self._metric_usable(name, unit)

    def _metric_usable(self, name: Any, unit: Any) -> bool:
        """First use of ``name`` or ``unit`` (or a refused one again): True if OpenTelemetry
        accepts both (then remembered); otherwise said once and False."""
        problem = _metric_name_problem(name) or _metric_unit_problem(unit)
        if problem is None:
            self._metric_names.add(name)
            self._metric_units.add(unit)
            return True
        shown = _shown(name)
        if shown not in self._refused and len(self._refused) < _MAX_REFUSED:
            self._refused[shown] = None
            _diagnostics.warn(f"metric {shown} dropped: {problem}; its measurements are not "
                              "recorded (said once per name)")
        return False

    # ----- logs ----------------------------------------------------------------------------

    def log(self, message: str, severity: str = "info", attributes: Attributes = None) -> None:
        if not self._initialized:
            self._ensure()
        self._commands.dispatch(c.EmitLogCommand(message, severity, attributes))

    def log_debug(self, message: str, attributes: Attributes = None) -> None:
        self.log(message, "debug", attributes)

    def log_info(self, message: str, attributes: Attributes = None) -> None:
        self.log(message, "info", attributes)

    def log_warn(self, message: str, attributes: Attributes = None) -> None:
        self.log(message, "warn", attributes)

    def log_error(self, message: str, attributes: Attributes = None) -> None:
        self.log(message, "error", attributes)

    # ----- spans ---------------------------------------------------------------------------

    def start_span(self, name: str, kind: str = "internal", attributes: Attributes = None) -> str:
        """Start a span (a child of the current one) and return its id for ``end_span``."""
        if not self._initialized:
            self._ensure()
        return self._commands.dispatch(c.StartSpanCommand(name, kind, attributes))

    def end_span(self, span_id: str, error: BaseException | None = None) -> None:
        if not self._initialized:
            self._ensure()
        self._commands.dispatch(c.EndSpanCommand(span_id, error))

    def add_span_event(self, span_id: str, name: str, attributes: Attributes = None) -> None:
        if not self._initialized:
            self._ensure()
        self._commands.dispatch(c.AddSpanEventCommand(span_id, name, attributes))

    @contextmanager
    def span(
        self, name: str, kind: str = "internal", attributes: Attributes = None
    ) -> Iterator[str]:
        """A span that is current inside the block, so spans and logs there are its children.

        An exception leaving the block is recorded on the span and re-raised unchanged.
        """
        if not self._initialized:
            self._ensure()
        handler = self._handler
        ot = _otel()
        span = handler.tracer.start_span(
            name, kind=ot.kinds.get(kind, ot.internal), attributes=attributes
        )
        recording = span.is_recording()
        span_id = handler.track_span(span) if recording else _UNSAMPLED_ID
        token = ot.attach(ot.set_span_in_context(span))
        try:
            yield span_id
        except BaseException as error:
            if recording and not isinstance(error, GeneratorExit):
                ot.record_error(span, error)
            raise
        finally:
            ot.detach(token)
            if recording:
                handler.untrack_span(span_id)
            span.end()

    # ----- queries -------------------------------------------------------------------------

    def get_status(self) -> dict[str, Any]:
        """Settings and counts: items exported and dropped per signal, uptime, and more."""
        if self._handler is None:
            return {
                "initialized": False,
                "service_name": self._config.service_name,
                "enabled_signals": [s.value for s in self._config.enabled_signals],
            }
        status = self._queries.dispatch(q.GetSDKStatusQuery())
        status["initialized"] = self._initialized
        status["metric_names_refused"] = list(self._refused)
        return status

    def get_health(self) -> dict[str, Any]:
        if self._handler is None:
            return {"healthy": False, "initialized": False}
        return self._queries.dispatch(q.GetHealthQuery())

    # ----- for integrations ------------------------------------------------------------------

    @property
    def tracer(self) -> Any:
        self._ensure()
        return self._handler.tracer

    @property
    def meter(self) -> Any:
        self._ensure()
        return self._handler.meter

    @property
    def handler(self) -> Any:
        self._ensure()
        return self._handler


_UNSAMPLED_ID = "0" * 16
_MAX_REFUSED = 100  # refused names remembered (and said); beyond, dropped without a word
_NAME_RULE = None  # compiled at first use (``re`` is not the launcher's to import)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _metric_name_problem(name: Any) -> str | None:
    global _NAME_RULE
    if _NAME_RULE is None:
        import re

        _NAME_RULE = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,254}")
    if not isinstance(name, str):
        return f"its name is of type {type(name).__name__}, expected a string"
    if _NAME_RULE.fullmatch(name) is None:
        return ("OpenTelemetry instrument names start with an ASCII letter and hold at most "
                "255 ASCII letters, digits, '_', '.', '-' and '/'")
    return None


def _metric_unit_problem(unit: Any) -> str | None:
    if not isinstance(unit, str):
        return f"its unit is of type {type(unit).__name__}, expected a string"
    if len(unit) > 63 or not unit.isascii():
        return f"its unit {unit!r} is not at most 63 ASCII characters, as OpenTelemetry requires"
    return None


class _OTel:
    """What ``span()`` needs from OpenTelemetry, resolved once (not per call): the client
    module itself must stay importable without OpenTelemetry for the launcher's sake."""

    def __init__(self) -> None:
        from opentelemetry import context, trace

        from .infrastructure.handler import _KINDS, record_error

        self.attach, self.detach = context.attach, context.detach
        self.set_span_in_context = trace.set_span_in_context
        self.kinds, self.internal = _KINDS, trace.SpanKind.INTERNAL
        self.record_error = record_error


_OTEL: _OTel | None = None


def _otel() -> _OTel:
    global _OTEL
    if _OTEL is None:
        _OTEL = _OTel()
    return _OTEL


class NoOpClient:
    """What ``get_client()`` returns when no SDK runs: every call is accepted and ignored,
    so application code can always call it, instrumented or not."""

    is_initialized = False

    def initialize(self) -> NoOpClient:
        return self

    def shutdown(self, timeout: float = 5.0) -> bool:
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def __enter__(self) -> NoOpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def _ignore(self, *args: Any, **kwargs: Any) -> None:
        return None

    increment_counter = record_gauge = record_histogram = _ignore
    log = log_debug = log_info = log_warn = log_error = _ignore
    end_span = add_span_event = _ignore

    def start_span(self, name: str, kind: str = "internal", attributes: Attributes = None) -> str:
        return "0" * 16

    @contextmanager
    def span(
        self, name: str, kind: str = "internal", attributes: Attributes = None
    ) -> Iterator[str]:
        yield "0" * 16

    def get_status(self) -> dict[str, Any]:
        return {"initialized": False}

    def get_health(self) -> dict[str, Any]:
        return {"healthy": False, "initialized": False}

    @property
    def tracer(self) -> Any:
        from opentelemetry import trace

        return trace.NoOpTracer()

    @property
    def meter(self) -> Any:
        from opentelemetry import metrics

        return metrics.NoOpMeter("telemetryflow")


_NOOP = NoOpClient()


def get_client() -> TelemetryFlowClient | NoOpClient:
    """The client of the SDK running in this process (the launcher's, or the one your code
    initialised last), or a no-op client when none runs."""
    return _runtime.current_client() or _NOOP
