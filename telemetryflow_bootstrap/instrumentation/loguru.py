"""loguru: every message the program logs with loguru also becomes an OpenTelemetry log
record, as the stdlib ``logging`` bridge does for ``logging`` records (loguru does not go
through ``logging``).

Produces
    One OpenTelemetry log record per loguru message at or above the export level, from a
    module loguru has not ``disable()``-d, whatever sinks the program has (none included):
    the export is not a sink of the program's. The OpenTelemetry logger (instrumentation
    scope) is named after the record's ``name``, the ``__name__`` of the module that logged.

    - severity number from the level's ``no`` (TRACE 5 → TRACE3, DEBUG, INFO, SUCCESS 25 →
      INFO3, WARNING → WARN, ERROR, CRITICAL → FATAL; custom levels land inside the nearest
      band, as in the stdlib bridge), severity text = the level's name; timestamp = the
      record's ``time``, to the microsecond
    - body: the formatted message only (``record["message"]``: ``{}`` arguments applied,
      ``opt(colors=True)`` markup stripped), never the sink's line with time and level
    - ``code.function.name``, ``code.file.path``, ``code.line.number`` (``opt(depth=)``
      honoured), ``thread.id``, ``thread.name``
    - ``exception.type``, ``exception.message``, ``exception.stacktrace`` (a plain Python
      traceback: never loguru's ``diagnose`` variable values) from ``logger.exception``,
      ``opt(exception=...)`` and ``logger.catch``
    - the record's ``extra`` (``bind``, ``contextualize``, ``configure(extra=)``, keyword
      arguments of the call) under their own names, in their order: str/bool/int/float
      as they are, any other value as its text (at most 1024 characters); bounded like the
      stdlib bridge's ``extra=`` fields (the SDK's attribute count limit, our own
      attributes first, the rest counted as dropped, one warning per process)
    - trace id, span id and flags of the span current where the message was logged

Reads
    TELEMETRYFLOW_LOG_EXPORT_LEVEL (the same floor as the stdlib bridge: loguru's TRACE is
    below every choice, so never exported), TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS
    (``loguru``). Nothing is installed when logs are not exported.

The hook point, and why not a sink
    A sink added with ``logger.add`` is gone at the first ``logger.remove()``, the idiom
    that starts most loguru programs (``logger.remove(); logger.add(sys.stderr, ...)``),
    takes a handler id the program may count on, and shows in ``repr(logger)``. We wrap
    the class's ``Logger._log`` instead, the one function every logging call (``info``,
    ``log``, ``exception``, ``opt(...)``, ``bind(...)``, ``catch``) goes through, on every
    ``Logger`` (they share one ``Core``). For a message at or above the export level, the
    original ``_log`` runs with a view of the program's ``Core``: the very same attributes
    (the view shares the ``Core``'s ``__dict__``: levels, ``extra``, patchers and
    ``enable``/``disable`` state are the live ones), except that ``handlers`` also holds
    our emitter, after the program's, and ``min_level`` is at most the export level. So
    loguru builds the record once, the program's patchers run once, the program's sinks
    get exactly what they got without us (each still applies its own level and filter),
    and then we see the finished record. Below the export level the original runs on the
    real ``Core`` and nothing of ours is built; a message no sink wants either is refused
    by our wrapper itself with the same two tests loguru would make (that path costs about
    what loguru's own refusal does).

    The wrapper is one frame more (two on the export path) between the logging call and
    ``_log``, which finds the caller by depth: every path adds its frames to the depth it
    passes on.

Cost (callgrind, main-thread instructions per ``logger.X("user {} did {}", i, "thing")``,
bare loguru → with this module)
    below the export level and every sink's: 3.0k → 2.9k (our wrapper refuses it itself);
    below the export level, a sink at DEBUG writing it: 127.5k → 131.0k; at the export
    level, written by a sink: 127.5k → 231.2k (+104k, what the stdlib bridge adds to a
    ``logging`` record: +102k to +106k); at the export level, no sink wanting it (or no
    sink): 3.0k → 182.8k (loguru now builds the record). The stdlib bridge installed too
    (the ``InterceptHandler`` look-up): +2.6k more per exported message.

Hazards handled
    - One record, exported once, with the program routing loguru into ``logging`` (a sink
      calling ``logging.getLogger(name).log(...)``, the way this README used to suggest):
      while the program's sinks run for a record we export, the stdlib bridge exports
      nothing on this thread, so the record is exported once, by us, with loguru's own
      code location and extras. (``logger.add(some_logging_handler)`` hands records to
      that handler directly, never to the bridge.) A sink with ``enqueue=True`` runs on
      loguru's writer thread instead: a ``logging`` call there is exported by the bridge
      too (not handled).
    - And in the other direction, ``logging`` intercepted into loguru (the
      ``InterceptHandler`` of loguru's README): when the stdlib bridge is going to export
      the ``logging`` record the loguru message came from, we do not export the message
      (the bridge's record keeps the ``logging`` logger's name as scope). Found by looking
      for the bridge's ``callHandlers`` among the 12 frames above the loguru call; a
      handler deeper than that, or one run by a ``QueueListener`` thread, gets both.
    - A message below the levels of all the program's sinks but at the export level is now
      built: loguru applies its arguments and runs the patchers (``opt(lazy=True)``
      functions are called). Where that fails (``logger.info("{x}")`` with a missing
      argument), the program gets what it got without us, nothing: the failure is not
      raised (it is said once at TELEMETRYFLOW_LOG_LEVEL=debug). Where a sink wants the
      message, loguru's errors are raised as before (with our wrapper's frame in the
      traceback).
    - Feedback loops: messages logged while instrumentation is suppressed (our exports run
      so), while we or the stdlib bridge are exporting (a ``logging`` warning of the SDK
      intercepted into loguru) are shown to the program's sinks but not exported.
    - Never raises into the program: a record we cannot convert is reported once and
      skipped; a loguru whose ``_log`` has neither known shape (0.6, 0.7) is left
      unpatched, and the registry says so once (``--info``: failed, with the reason).

Code: this module wraps ``_log``; ``_log_loguru_emitter`` converts and exports;
``_log_records`` holds what the stdlib bridge shares with it.
"""

from __future__ import annotations

import logging
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .. import _diagnostics
from . import _log_stdlib_handler, stdlib_logging
from ._log_loguru_emitter import LoguruExport as _Emitter
from ._log_loguru_emitter import guard as _guard
from ._log_records import export_levelno, suppressed

_DISPATCH_FRAMES = 12  # how far up a loguru call we look for the stdlib bridge's dispatch
_OUR_HANDLER_ID = object()  # our key in the view's handlers: no handler id can equal it


# ----- the view of the program's Core that _log is given on the export path -----------------


class _CoreView:
    """The program's loguru ``Core`` with our emitter among its handlers (see the module).

    It shares the ``Core``'s ``__dict__`` (everything ``_log`` reads is the live value, and
    what it caches, new levels and module activation, goes into the real ``Core``); only
    ``handlers`` and ``min_level`` are ours, as properties, which win over the shared
    dict. Its own state lives in slots, out of the ``Core``'s dict (which loguru pickles
    for ``enqueue`` sinks in child processes)."""

    __slots__ = ("__dict__", "_emitter", "_merged")

    def __init__(self, core: Any, emitter: _Emitter) -> None:
        self.__dict__ = core.__dict__
        self._emitter = emitter
        # (the program's handlers dict, the same plus ours): one tuple, replaced whole, so
        # racing threads never pair one dict with the other's merge. loguru replaces its
        # handlers dict on every add/remove, so identity says when to merge again.
        self._merged: tuple[Any, dict[Any, Any]] = (None, {})

    @property
    def handlers(self) -> dict[Any, Any]:
        handlers = self.__dict__["handlers"]
        source, merged = self._merged
        if source is not handlers:
            merged = {**handlers, _OUR_HANDLER_ID: self._emitter}
            self._merged = (handlers, merged)
        return merged

    @property
    def min_level(self) -> Any:
        return min(self.__dict__["min_level"], self._emitter.levelno)


class _LoggerView:
    """What the original ``_log`` is called on: it reads ``self._core`` only."""

    __slots__ = ("_core",)

    def __init__(self, core: _CoreView) -> None:
        self._core = core


_views: weakref.WeakKeyDictionary[Any, _LoggerView] = weakref.WeakKeyDictionary()
_last_view: tuple[Any, _LoggerView | None] = (None, None)


def _view_of(core: Any, emitter: _Emitter) -> _LoggerView:
    global _last_view
    last_core, view = _last_view
    if last_core is core and view is not None and view._core._emitter is emitter:
        return view
    with _lock:  # (once per Core and install)
        view = _views.get(core)
        if view is None or view._core._emitter is not emitter:
            view = _LoggerView(_CoreView(core, emitter))
            _views[core] = view
        _last_view = (core, view)
    return view


# ----- the wrapper -------------------------------------------------------------------------

_emitter: _Emitter | None = None
_export_levelno: float = float("inf")  # the emitter's level; inf: nothing exported
_lock = threading.Lock()
_patched: tuple[Any, Callable[..., Any]] | None = None  # (Logger class, original _log)
_quiet_failure_reported = False


def _deeper(options: Any, frames: int = 1) -> tuple[Any, ...]:
    """loguru's options with ``frames`` more of depth: ours, between the call and ``_log``."""
    return (options[0], options[1] + frames, *options[2:])


def _bridge_exports_the_dispatched_record() -> bool:
    """Is this loguru call made from a ``logging`` handler (an ``InterceptHandler``) for a
    record that the stdlib bridge exports? Then that record stands for this message."""
    bridge = stdlib_logging._bridge
    call_handlers = stdlib_logging._our_call_handlers
    if bridge is None or call_handlers is None:
        return False
    code = call_handlers.__code__
    try:
        frame = sys._getframe(4)  # (above _exporting, our wrapper and loguru's method)
    except ValueError:  # (a stack that shallow holds no logging call)
        return False
    for _ in range(_DISPATCH_FRAMES):
        if frame is None:
            return False
        if frame.f_code is code:
            local = frame.f_locals
            record, logger = local.get("record"), local.get("self")
            return (isinstance(record, logging.LogRecord)
                    and record.levelno >= bridge.level and not bridge._stopped
                    and stdlib_logging._reaches_top(logger))
        frame = frame.f_back
    return False


def _exporting(original: Callable[..., Any], self: Any, levelno: int,
               arguments: tuple[Any, ...], options: Any, message: Any, args: Any,
               kwargs: Any) -> Any:
    """``_log`` for a message at or above the export level: ``arguments`` are those before
    ``options`` (``level, from_decorator`` or ``level_id, static_level_no,
    from_decorator``)."""
    emitter = _emitter
    refused = False
    try:
        deeper = _deeper(options, 2)  # (our wrapper's frame and this one)
        core = self._core
        if (emitter is None or not emitter.live() or _guard.active
                or _log_stdlib_handler.guard.active or suppressed()
                or _bridge_exports_the_dispatched_record()):
            view = None
        else:
            view = _view_of(core, emitter)
            # Would loguru have refused it (no sink wants it)? Then nothing it raises while
            # building the record for us may reach the program.
            refused = not core.handlers or levelno < core.min_level
    except Exception:
        return original(self, *arguments, _deeper(options, 2), message, args, kwargs)
    if view is None:
        return original(self, *arguments, deeper, message, args, kwargs)
    bridge_guard = _log_stdlib_handler.guard
    previous = bridge_guard.active
    bridge_guard.active = True  # the program's sinks' logging calls: this record, once
    try:
        return original(view, *arguments, deeper, message, args, kwargs)
    except Exception as exc:
        if not refused:
            raise
        _report_quiet_failure(exc)
        return None
    finally:
        bridge_guard.active = previous


def _report_quiet_failure(exc: Exception) -> None:
    global _quiet_failure_reported
    if not _quiet_failure_reported:
        _quiet_failure_reported = True
        _diagnostics.debug(f"a loguru message no sink of the program wanted could not be built "
                           f"for export ({type(exc).__name__}: {exc}); not exported")


def _make_log_07(original: Callable[..., Any]) -> Callable[..., Any]:
    """For loguru 0.7: ``_log(self, level, from_decorator, options, message, args, kwargs)``."""

    def _log(self: Any, level: Any, from_decorator: Any, options: Any, message: Any,
             args: Any, kwargs: Any) -> Any:
        core = self._core
        try:
            levelno = core.levels_lookup[level][2]
        except Exception:  # a number not used before, or loguru's error to raise
            levelno = level if type(level) is int and level >= 0 else -1
        if levelno < _export_levelno:
            if 0 <= levelno < core.min_level:
                return None  # loguru's own refusal (no handlers: min_level is infinite)
            return original(self, level, from_decorator, _deeper(options), message, args,
                            kwargs)
        return _exporting(original, self, levelno, (level, from_decorator), options, message,
                          args, kwargs)

    return _log


def _make_log_06(original: Callable[..., Any]) -> Callable[..., Any]:
    """For loguru 0.6: ``_log(self, level_id, static_level_no, from_decorator, options,
    message, args, kwargs)``."""

    def _log(self: Any, level_id: Any, static_level_no: Any, from_decorator: Any,
             options: Any, message: Any, args: Any, kwargs: Any) -> Any:
        core = self._core
        try:
            levelno = static_level_no if level_id is None else core.levels[level_id].no
        except Exception:  # loguru's error to raise
            levelno = -1
        if levelno < _export_levelno:
            if 0 <= levelno < core.min_level:
                return None
            return original(self, level_id, static_level_no, from_decorator,
                            _deeper(options), message, args, kwargs)
        return _exporting(original, self, levelno, (level_id, static_level_no, from_decorator),
                          options, message, args, kwargs)

    return _log


_SHAPES = {
    ("self", "level", "from_decorator", "options", "message", "args", "kwargs"): _make_log_07,
    ("self", "level_id", "static_level_no", "from_decorator", "options", "message", "args",
     "kwargs"): _make_log_06,
}


# ----- installing --------------------------------------------------------------------------


def patch(module: Any, context: Any) -> None:
    """On ``import loguru``: export its messages when logs are exported."""
    if context.logger_provider is None:
        return
    install(module, context.logger_provider, context.config.log_export_level,
            sdk=context.handler)


def install(module: Any, logger_provider: Any, level: str | int = "info",
            sdk: Any = None) -> _Emitter:
    """Export loguru's messages at or above ``level`` to ``logger_provider`` from now on;
    installing again replaces the provider and level. Raises ``TypeError`` (loguru left as
    it is) when this loguru's ``_log`` is of no shape we know: the registry reports that
    once and records it for ``--info``."""
    global _emitter, _export_levelno, _patched
    levelno = export_levelno(level)
    emitter = _Emitter(logger_provider, levelno, sdk)
    with _lock:
        if _patched is None:
            logger_class = type(module.logger)
            original = logger_class.__dict__.get("_log")
            code = getattr(original, "__code__", None)
            shape = () if code is None else code.co_varnames[:code.co_argcount]
            make = _SHAPES.get(shape)
            if make is None:
                raise TypeError("loguru's Logger._log is of no shape we know (those of "
                                "loguru 0.6 and 0.7)")
            wrapper = make(original)
            wrapper.__wrapped__ = original  # type: ignore[attr-defined]
            logger_class._log = wrapper
            _patched = (logger_class, original)
        previous, _emitter = _emitter, emitter
        _export_levelno = levelno
        _views.clear()
    if previous is not None:
        previous.stopped = True
    return emitter


def _uninstall() -> None:
    """Undo ``install`` (tests): loguru's ``_log`` back, our emitter stopped."""
    global _emitter, _export_levelno, _patched, _last_view, _quiet_failure_reported
    with _lock:
        if _patched is not None:
            logger_class, original = _patched
            logger_class._log = original
            _patched = None
        previous, _emitter = _emitter, None
        _export_levelno = float("inf")
        _views.clear()
        _last_view = (None, None)
        _quiet_failure_reported = False
    if previous is not None:
        previous.stopped = True
