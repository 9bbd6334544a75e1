"""What the launcher's ``sitecustomize`` runs in every instrumented Python process.

Builds the config from the environment, starts the SDK, arms the library patches and the
lifecycle hooks. It must never break the program: the hook wraps ``start()`` and turns any
exception into one stderr line; problems found here are reported, not raised.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from . import _diagnostics, _runtime
from ._context_env import context_from_environment, keep_for_children
from ._service_name import DERIVED_ENV, derive_service_name
from .domain.errors import TelemetryFlowError

# Programs that serve requests: a span around their whole run would be one endless trace.
_SERVERS = frozenset(
    {
        "gunicorn",
        "uvicorn",
        "uwsgi",
        "hypercorn",
        "daphne",
        "waitress-serve",
        "celery",
        "flask",
        "manage",
        "django-admin",
        "granian",
        "rq",
        "dramatiq",
        "huey_consumer",
        "supervisord",
        "jupyter",
        "ipython",
    }
)

REPORTED_ENV = "_TELEMETRYFLOW_REPORTED"
_UWSGI_AFTER_FORK = "UWSGI_PY_CALL_OSAFTERFORK"  # (the launcher's, see _launch)


class StrictModeError(TelemetryFlowError):
    """Configuration problems while TELEMETRYFLOW_STRICT=true."""


def start() -> Any:
    """Start instrumentation once per process; returns the client (or None when disabled)."""
    if _runtime.current_client() is not None:
        return _runtime.current_client()  # started already (nested launcher, double import)
    from .domain.config import load_config

    if _is_the_launcher():
        return None  # a nested telemetryflow-run: it is about to exec the real program
    program = derive_service_name()
    derived = os.environ.get(DERIVED_ENV) or program
    config, reading = load_config(os.environ, default_service_name=derived)
    if not config.enabled:
        return None
    _diagnostics.set_level(config.log_level)
    _report(reading, _own_checks(reading))
    if config.strict and reading.problems:
        raise StrictModeError("; ".join(str(p) for p in reading.problems))
    # Children report as the same service; uWSGI read its option at its start already.
    keep_for_children({
        DERIVED_ENV: derived if reading.sources.get("service_name") == "derived" else None,
        _UWSGI_AFTER_FORK: None})

    _quiet_sdk_loggers()  # (before the SDK is imported: it logs at import, see there)
    from . import _sigterm_watch
    from .client import TelemetryFlowClient
    from .instrumentation import registry
    from .lifecycle import install

    _sigterm_watch.prepare()  # (before the SDK starts its threads)
    client = TelemetryFlowClient(config).initialize()
    handler = client.handler
    context = registry.PatchContext(
        tracer=handler.tracer,
        meter=handler.meter,
        logger_provider=handler.logger_provider,
        config=config,
        handler=handler,
    )
    armed = registry.arm(context)
    from .instrumentation import _process_level

    armed += len(_process_level.install(context))
    open_spans = _track_open_spans(handler)
    parent = context_from_environment(os.environ)
    process_span = _start_process_span(config, handler, parent, program)
    install(client, config.shutdown_timeout, process_span=process_span, open_spans=open_spans)
    if _diagnostics.enabled_for("info"):
        _diagnostics.info(_startup_line(config, armed))
    return client


def _track_open_spans(handler: Any) -> Any:
    if handler.tracer_provider is None:
        return None
    from .infrastructure.open_spans import OpenSpans

    open_spans = OpenSpans()
    handler.tracer_provider.add_span_processor(open_spans)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=open_spans.after_fork_in_child)
    return open_spans


def _start_process_span(config: Any, handler: Any, parent: Any, program: str) -> Any:
    """Continue a parent process's trace; with a process span, make one span the root of
    everything this run does (named after the program)."""
    from opentelemetry import context, trace

    wanted = config.process_span
    if wanted is None:
        wanted = program not in _SERVERS
    if _is_multiprocessing_worker():
        wanted = False  # (whatever the inherited setting: it was meant for the program)
    if not wanted or handler.tracer_provider is None:
        if parent is not None:
            context.attach(parent)
        return None
    span = handler.tracer.start_span(
        program, context=parent, attributes={"process.pid": os.getpid()}
    )
    context.attach(trace.set_span_in_context(span, parent))
    return span


def _quiet_sdk_loggers() -> None:
    """The OpenTelemetry SDK and exporters log through ``logging``: when the backend is down
    that is a retry warning per batch, which would land in the program's logs or, through
    logging's last resort, flood its stderr. Route them to our rate-limited diagnostics
    (which mask secrets). Installed before the SDK is imported: importing its logs module
    parses OTEL_RESOURCE_ATTRIBUTES (a default argument ``Resource.create({})``) and
    complains about a malformed pair, which our reader reports already, in our words, or
    ignores because TELEMETRYFLOW_RESOURCE_ATTRIBUTES overrides it: that one is debug."""
    import logging

    class _ToDiagnostics(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                message = record.getMessage()
            except Exception:
                return
            if record.name == "opentelemetry.sdk.resources" and str(record.msg).startswith(
                "Invalid key value resource attribute pair"
            ):
                _diagnostics.debug(f"{record.name}: {message}")
            elif record.levelno >= logging.WARNING:
                _diagnostics.warn_every_minute(
                    f"{record.name}:{record.msg}", f"{record.name}: {message}"
                )
            else:
                _diagnostics.debug(f"{record.name}: {message}")

    otel = logging.getLogger("opentelemetry")
    otel.addHandler(_ToDiagnostics())
    otel.propagate = False
    if otel.level == logging.NOTSET:
        otel.setLevel(logging.DEBUG if _diagnostics.enabled_for("debug") else logging.INFO)


def _is_the_launcher() -> bool:
    """A nested launcher, or a helper process with nothing to trace (multiprocessing's
    resource tracker): starting the SDK there would only slow it down."""
    argv = getattr(sys, "orig_argv", sys.argv)
    script = os.path.basename(argv[1]) if len(argv) > 1 else ""
    if script == "telemetryflow-run" or argv[1:3] == ["-m", "telemetryflow_bootstrap"]:
        return True
    code = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else ""
    return code.startswith("from multiprocessing.resource_tracker import")


def _is_multiprocessing_worker() -> bool:
    """A process multiprocessing started to run work (spawn, ``--multiprocessing-fork``)
    or to fork the processes that do (the forkserver). Like a server's worker it gets no
    process span: its work is the tasks it runs, each in the trace that submitted it (see
    ``instrumentation.multiprocessing``), and a span for its whole life would be a trace of
    its own (spawn) or hold every task of every request (forkserver)."""
    argv = getattr(sys, "orig_argv", sys.argv)
    code = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else ""
    return code.startswith(("from multiprocessing.spawn import",
                            "from multiprocessing.forkserver import"))


def _own_checks(reading: Any) -> list[str]:
    """What the hook checks beyond the reading (the launcher leaves it to the hook, see
    ``_disabled_names``); with the variable unset nothing is even imported."""
    if "disabled_instrumentations" not in reading.sources:
        return []
    from .instrumentation import _disabled_names

    warning = _disabled_names.check(reading)
    return [warning] if warning else []


def _report(reading: Any, own: list[str]) -> None:
    """Print the reading's problems and warnings, and the hook's ``own`` checks (see
    ``_disabled_names``), unless a parent process's hook printed the same already: the
    launcher leaves all of it to the hook (see ``_launch``).

    Once something was printed, ``REPORTED_ENV`` is set to the digest of everything, so
    the Python processes this program starts (same environment) do not print it again.
    """
    if not (reading.problems or reading.warnings or own):
        return
    from ._launch import problem_messages

    lines = problem_messages(reading)
    everything = lines + own
    reported = os.environ.get(REPORTED_ENV)
    if reported == _digest(everything):
        return  # a parent process's hook printed all of it
    new = own if lines and reported == _digest(lines) else everything
    for line in new:
        _diagnostics.warn(line)
    os.environ[REPORTED_ENV] = _digest(everything)


def _digest(lines: list[str]) -> str:
    from ._launch import problems_digest

    return problems_digest(lines)


def _startup_line(config: Any, armed: int) -> str:
    """``shop → grpc+http://collector:4317, traces metrics logs, ...``; with per-signal
    destinations, each with its signals (``traces → ...; metrics logs → ...``)."""
    destinations: dict[str, list[str]] = {}
    for signal in config.enabled_signals:
        destinations.setdefault(_destination(config, signal), []).append(signal.value)
    if len(destinations) > 1:
        where = "; ".join(f"{' '.join(names)} → {target}"
                          for target, names in destinations.items())
    else:
        target, names = next(iter(destinations.items()), ("nowhere", []))
        where = f"{target}, {' '.join(names) or 'no signals'}"
    return (
        f"{config.service_name} → {where}, {armed} instrumentations armed "
        f"(pid {os.getpid()}, python {sys.version.split()[0]})"
    )


def _destination(config: Any, signal: Any) -> str:
    kind = config.exporter_for(signal).value
    if kind != "otlp":
        return kind
    from .domain.redaction import redact_url

    view = config.for_signal(signal)
    # (a signal's own OTLP/HTTP endpoint is its full URL; the all-signals one is the base)
    url = config.export_target(signal) \
        if config.overrides(signal).endpoint and view.protocol.value == "http" \
        else view.resolved_endpoint()
    return f"{view.protocol.value}+{redact_url(url)}"
