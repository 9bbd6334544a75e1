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

Any other bad argument is treated the same way: never an exception from deep inside
OpenTelemetry, never a silent guess. One warning per call, argument and kind of problem
names the call, the value and what is expected; then the call goes on the safe way: a
measurement that cannot be recorded (a value that is not a finite number, a negative counter
increment or histogram value) is dropped, arguments that can be ignored are (attributes that
are not a mapping, a description that is not a string, an ``end_span`` error that is not an
exception), and the rest fall back to the documented default (an unknown log severity is
``info``, an unknown span kind ``internal``, a bad flush/shutdown timeout 5 s). A span name,
event name or log body that OTLP cannot encode becomes its ``str()``: otherwise the whole
batch it is exported in, other spans and logs included, would fail to encode.
``get_status()["bad_arguments"]`` lists the calls said. The checks on the good path are a
few ``type(x) is str``-style tests; the diagnosis runs only once one fails.
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
        self._bad_calls: dict[tuple[str, ...], str] = {}  # (call, argument, problem) → call

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
        if type(timeout) not in _NUMBERS or not 0 <= timeout <= _MAX_TIMEOUT:
            timeout = self._timeout("shutdown", timeout)
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
        if type(timeout) not in _NUMBERS or not 0 <= timeout <= _MAX_TIMEOUT:
            timeout = self._timeout("flush", timeout)
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
        try:
            if 0 <= value < _INF and (attributes is None or type(attributes) is dict):
                self._commands.dispatch(
                    c.RecordCounterCommand(name, value, attributes, unit, description))
                return
            failure = None
        except TypeError as error:  # a value that is no number, a description no str
            failure = error
        self._measurement(_COUNTER, failure, name, value, attributes, unit, description)

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
        try:
            if -_INF < value < _INF and (attributes is None or type(attributes) is dict):
                self._commands.dispatch(
                    c.RecordGaugeCommand(name, value, attributes, unit, description))
                return
            failure = None
        except TypeError as error:  # a value that is no number, a description no str
            failure = error
        self._measurement(_GAUGE, failure, name, value, attributes, unit, description)

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
        try:
            if 0 <= value < _INF and (attributes is None or type(attributes) is dict):
                self._commands.dispatch(
                    c.RecordHistogramCommand(name, value, attributes, unit, description))
                return
            failure = None
        except TypeError as error:  # a value that is no number, a description no str
            failure = error
        self._measurement(_HISTOGRAM, failure, name, value, attributes, unit, description)

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

    def _measurement(self, kind: tuple[str, bool, str, type], failure: TypeError | None,
                     name: str, value: Any, attributes: Any, unit: str,
                     description: Any) -> None:
        """Slow path of the metric calls, once the cheap check failed or the call raised
        ``failure``: each problem said once per metric, argument and kind, then recorded
        the safe way, or dropped (OpenTelemetry raised a bare ``TypeError`` for a str or
        None, and logged NaN, infinity and negative counts on every call without naming
        ours). A ``failure`` none of this explains is raised again, unchanged."""
        method, non_negative, expected, command = kind
        problem = _number_problem(value, non_negative)
        if problem is not None:
            self._say((method, name, "value", problem),
                      f"{method}({_shown(name)}, value={_shown(value)})",
                      f"expected {expected}; the measurement is dropped")
            return
        explained = False
        if attributes is not None and not isinstance(attributes, Mapping):
            attributes = self._no_attributes(method, name, attributes, "recorded")
            explained = True
        if not isinstance(description, str):
            self._say((method, name, "description", type(description).__name__),
                      f"{method}({_shown(name)}, description={_shown(description)})",
                      "expected a string; recorded without a description")
            description, explained = "", True
        if failure is not None and not explained:
            raise failure
        self._commands.dispatch(command(name, value, attributes, unit, description))

    def _no_attributes(self, method: str, name: Any, attributes: Any, outcome: str) -> None:
        """Attributes that are not a mapping: said once (per call and ``name``: a metric's,
        a span's, an event's; none for a log), then ``outcome`` without them."""
        head = "" if name is _NAMELESS else f"{_shown(name)}, "
        self._say((method, head, "attributes", type(attributes).__name__),
                  f"{method}({head}attributes={_shown(attributes)})",
                  f"expected a mapping of attribute names to values, or None; {outcome} "
                  "without them")

    def _say(self, key: tuple[Any, ...], call: str, consequence: str) -> None:
        """Warn about a bad argument once per ``key`` (call, argument, kind of problem:
        not per value, so a NaN computed on every request is one line); the calls said
        are listed by ``get_status()`` (bounded, like the refused names)."""
        bad = self._bad_calls
        if key in bad or len(bad) >= _MAX_REFUSED:
            return
        bad[key] = call
        _diagnostics.warn(f"{call}: {consequence} (said once)")

    def _timeout(self, method: str, timeout: Any) -> float:
        if not isinstance(timeout, bool) and isinstance(timeout, (int, float)) \
                and 0 <= timeout <= _MAX_TIMEOUT:
            return float(timeout)
        self._say((method, "timeout", type(timeout).__name__), f"{method}(timeout="
                  f"{_shown(timeout)})", f"expected a number of seconds from 0 to "
                  f"{_MAX_TIMEOUT:.0f}; {_DEFAULT_TIMEOUT} is used")
        return _DEFAULT_TIMEOUT

    # ----- logs ----------------------------------------------------------------------------

    def log(self, message: str, severity: str = "info", attributes: Attributes = None) -> None:
        """Emit a log record. ``severity``: ``debug``, ``info``, ``warn``/``warning``,
        ``error``, ``fatal``/``critical``, in any case; anything else is said once and
        logged as ``info``."""
        if not self._initialized:
            self._ensure()
        if not (type(message) is str and type(severity) is str and severity in _SEVERITIES
                and (attributes is None or type(attributes) is dict)):
            message, severity, attributes = self._log_arguments(message, severity, attributes)
        self._commands.dispatch(c.EmitLogCommand(message, severity, attributes))

    def _log_arguments(self, message: Any, severity: Any,
                       attributes: Any) -> tuple[Any, str, Attributes]:
        """Slow path of ``log`` (see the module doc). The body is shown by type only: a
        log message may quote anything."""
        if type(message) is not str and not _encodable(message):
            self._say(("log", "message", type(message).__name__),
                      f"log(message=<{type(message).__name__}>)",
                      "expected a str (or a bool, int, float, bytes, or a list or dict of "
                      "them: what an OTLP log body holds); sent as its str()")
            message = _text(message)
        if not (type(severity) is str and severity in _SEVERITIES):
            name = severity.lower() if isinstance(severity, str) else None
            name = _SEVERITY_ALIASES.get(name, name) if name is not None else None
            if name not in _SEVERITIES:
                self._say(("log", "severity", _shown(severity)),
                          f"log(severity={_shown(severity)})",
                          f"expected one of {_SEVERITIES_SHOWN} (any case); logged as 'info'")
                name = "info"
            severity = name
        if attributes is not None and not isinstance(attributes, Mapping):
            attributes = self._no_attributes("log", _NAMELESS, attributes, "logged")
        return message, severity, attributes

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
        if not (type(name) is str and type(kind) is str and kind in _KIND_NAMES
                and (attributes is None or type(attributes) is dict)):
            name, kind, attributes = self._span_arguments("start_span", name, kind, attributes)
        return self._commands.dispatch(c.StartSpanCommand(name, kind, attributes))

    def end_span(self, span_id: str, error: BaseException | None = None) -> None:
        """End the span ``start_span`` returned the id of; ``error``: an exception that
        failed it. Sampled or not, the same: an id that is not open (ended already, never
        returned, evicted from the full table of open spans) is said once per reason."""
        if not self._initialized:
            self._ensure()
        if type(span_id) is not str or not (error is None or isinstance(error, BaseException)):
            if type(span_id) is not str:
                self._not_an_id("end_span", span_id)
                return
            self._say(("end_span", "error", type(error).__name__),
                      f"end_span({_shown(span_id)}, error=<{type(error).__name__}>)",
                      "expected an exception or None; the span is ended without it")
            error = None
        if not self._commands.dispatch(c.EndSpanCommand(span_id, error)):
            self._unknown_id("end_span", span_id)

    def add_span_event(self, span_id: str, name: str, attributes: Attributes = None) -> None:
        if not self._initialized:
            self._ensure()
        if not (type(span_id) is str and type(name) is str
                and (attributes is None or type(attributes) is dict)):
            if type(span_id) is not str:
                self._not_an_id("add_span_event", span_id)
                return
            if not isinstance(name, str):
                self._say(("add_span_event", "name", type(name).__name__),
                          f"add_span_event({_shown(span_id)}, name={_shown(name)})",
                          "expected a str; the event is named its str()")
                name = _text(name)
            if attributes is not None and not isinstance(attributes, Mapping):
                attributes = self._no_attributes("add_span_event", name, attributes, "added")
        if not self._commands.dispatch(c.AddSpanEventCommand(span_id, name, attributes)):
            self._unknown_id("add_span_event", span_id, name)

    def _span_arguments(self, method: str, name: Any, kind: Any,
                        attributes: Any) -> tuple[str, str, Attributes]:
        """Slow path of ``start_span``/``span``: a ``SpanKind`` or a kind in capitals is
        taken as meant; anything else is said once (see the module doc)."""
        if not isinstance(name, str):
            self._say((method, "name", type(name).__name__), f"{method}(name={_shown(name)})",
                      "expected a str; the span is named its str()")
            name = _text(name)
        if not (type(kind) is str and kind in _KIND_NAMES):
            from opentelemetry.trace import SpanKind

            meant = kind.name if isinstance(kind, SpanKind) else kind
            meant = meant.lower() if isinstance(meant, str) else None
            if meant not in _KIND_NAMES:
                self._say((method, "kind", _shown(kind)),
                          f"{method}({_shown(name)}, kind={_shown(kind)})",
                          f"expected one of {_KINDS_SHOWN} (or an opentelemetry.trace."
                          "SpanKind); the span is 'internal'")
                meant = "internal"
            kind = meant
        if attributes is not None and not isinstance(attributes, Mapping):
            attributes = self._no_attributes(method, name, attributes, "the span is started")
        return name, kind, attributes

    def _not_an_id(self, method: str, span_id: Any) -> None:
        self._say((method, "span_id", type(span_id).__name__),
                  f"{method}(span_id={_shown(span_id)})",
                  "expected the id start_span() returned (a str of 16 hex digits); ignored")

    def _unknown_id(self, method: str, span_id: str, event: str | None = None) -> None:
        """The handler found no open span under ``span_id``: said, once per call and
        reason. Unsampled spans are tracked like recorded ones, so a well-formed id is
        told apart too: ended already, evicted from the full table, ended at shutdown,
        or none of ours (``event``: the name of the event that was to be added)."""
        shown = f"{method}({_shown(span_id)}{'' if event is None else ', ' + _shown(event)})"
        if len(span_id) != 16 or not _HEX_DIGITS.issuperset(span_id):
            self._say((method, "span_id", "unknown"), f"{method}({_shown(span_id)})",
                      "no span has this id: expected the id start_span() returned (a str of "
                      "16 hex digits); ignored")
            return
        from .infrastructure import handler as h

        why = self._handler.why_no_span(span_id)
        if why == h.ENDED:
            said = "this span was already ended"
        elif why == h.EVICTED:
            said = (f"this span was dropped unended: more than {h.MAX_ACTIVE_SPANS} spans "
                    "were open at once (get_status()['active_spans_evicted'] counts them)")
        elif why == h.ENDED_AT_SHUTDOWN:
            said = "this span was ended at shutdown"
        else:
            said = ("no open span has this id (not one start_span() returned, or one ended "
                    "long ago)")
        outcome = "the event is dropped" if event is not None and why == h.ENDED \
            else "ignored"
        self._say((method, "span_id", why or "unknown-id"), shown, f"{said}; {outcome}")

    @contextmanager
    def span(
        self, name: str, kind: str = "internal", attributes: Attributes = None
    ) -> Iterator[str]:
        """A span that is current inside the block, so spans and logs there are its children.

        An exception leaving the block is recorded on the span and re-raised unchanged. The
        block ends its span unless it was ended inside it (``end_span`` with the id it
        yields; then an exception leaving the block is not the span's).
        """
        if not self._initialized:
            self._ensure()
        handler = self._handler
        ot = _otel()
        if type(name) is str and type(kind) is str and (attributes is None
                                                         or type(attributes) is dict):
            span_kind = ot.kinds.get(kind)
        else:
            span_kind = None
        if span_kind is None:
            name, kind, attributes = self._span_arguments("span", name, kind, attributes)
            span_kind = ot.kinds[kind]
        span = handler.tracer.start_span(name, kind=span_kind, attributes=attributes)
        # (tracked recorded or not: its id then works, and is checked, as start_span's)
        span_id = handler.track_span(span)
        token = ot.attach(ot.set_span_in_context(span))
        try:
            yield span_id
        except BaseException as error:
            if not isinstance(error, GeneratorExit) and span.is_recording():
                ot.record_error(span, error)
            raise
        finally:
            ot.detach(token)
            if handler.untrack_span(span_id) is not None or _unended(handler, span_id, span):
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
        status["bad_arguments"] = list(self._bad_calls.values())
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


_INF = float("inf")
_NAMELESS = object()
_NUMBERS = (int, float)
_DEFAULT_TIMEOUT = 5.0
_MAX_TIMEOUT = 86_400.0  # (as TELEMETRYFLOW_TIMEOUT: a longer thread wait overflows)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_HEX_DIGITS = frozenset("0123456789abcdef")
# (handler._SEVERITIES and handler._KINDS own the mapping; the client, importable without
# OpenTelemetry, keeps their names: a test checks they agree)
_SEVERITIES = frozenset({"debug", "info", "warn", "warning", "error", "fatal"})
_SEVERITY_ALIASES = {"critical": "fatal"}  # (Python's logging says CRITICAL)
_SEVERITIES_SHOWN = "'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'critical'"
_KIND_NAMES = frozenset({"internal", "server", "client", "producer", "consumer"})
_KINDS_SHOWN = "'internal', 'server', 'client', 'producer', 'consumer'"
# (method, whether the value must be >= 0, what is expected, its command)
_COUNTER = ("increment_counter", True, "a finite number >= 0 (int or float)",
            c.RecordCounterCommand)
_GAUGE = ("record_gauge", False, "a finite number (int or float)", c.RecordGaugeCommand)
_HISTOGRAM = ("record_histogram", True, "a finite number >= 0 (int or float)",
              c.RecordHistogramCommand)
_MAX_REFUSED = 100  # refused names remembered (and said); beyond, dropped without a word
_NAME_RULE = None  # compiled at first use (``re`` is not the launcher's to import)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number_problem(value: Any, non_negative: bool) -> str | None:
    """Why a metric call's ``value`` cannot be recorded (a short key), or None if it can."""
    try:
        if (value >= 0 if non_negative else value > -_INF) and value < _INF:
            return None
        if value != value:
            return "NaN"
        return "negative" if -_INF < value < 0 else "infinite"
    except TypeError:
        return f"type {type(value).__name__}"


def _encodable(value: Any, depth: int = 0) -> bool:
    """Whether an OTLP ``AnyValue`` (a log body) can carry ``value``, as our encoder
    (``otlp_wire.any_value``) and the exporter's both require: one that cannot makes the
    whole batch fail to encode."""
    if value is None or isinstance(value, (bool, str, float, bytes)):
        return True
    if isinstance(value, int):
        return _INT64_MIN <= value <= _INT64_MAX
    if depth >= 16:  # (also ends a list that holds itself)
        return False
    if isinstance(value, (list, tuple)):
        return all(_encodable(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return all(_encodable(item, depth + 1) for item in value.values())
    return False


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


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


def _unended(handler: Any, span_id: str, span: Any) -> bool:
    """Whether ``span()`` must still end its span, no longer open when its block exits (the
    slow path): ended already (``end_span`` inside the block, here or on another thread, or
    at shutdown), it must not be ended twice (OpenTelemetry warns); evicted from the full
    table of open spans, nobody ended it but its block will."""
    from .infrastructure.handler import EVICTED

    why: str | None = handler.why_no_span(span_id)
    if why is None:  # forgotten (ended long ago): the span itself tells
        return getattr(span, "end_time", None) is None
    return why == EVICTED


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
