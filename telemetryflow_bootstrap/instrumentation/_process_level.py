"""Instrumentation that is not triggered by an import but installed at bootstrap for the
whole process: the stdlib logging bridge (``stdlib_logging``) and runtime metrics
(``runtime_metrics``); see those modules for what they produce.

Reads TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS (``logging``, ``runtime_metrics``),
TELEMETRYFLOW_PREFER_CONTRIB (an installed contrib instrumentor of the same name then runs
instead), TELEMETRYFLOW_RUNTIME_METRICS, TELEMETRYFLOW_LOG_EXPORT_LEVEL and
TELEMETRYFLOW_LOG_CORRELATION, all through ``context.config``. Each piece is installed in its
own ``try``: one that fails is reported and the others, and the program, go on. The outcome
is recorded in ``registry.status()`` next to the library patches, for ``get_status()``.
"""

from __future__ import annotations

from typing import Any

from .. import _diagnostics
from . import registry


def install(context: Any) -> list[str]:
    """Install process-level instrumentation; returns the names installed (``logging`` only
    when records are exported, not for the correlation fields alone)."""
    installed: list[str] = []
    try:
        config = context.config
        disabled = set(config.disabled_instrumentations)
        preferred = _preferred_contrib(config)
        if _wanted("logging", disabled, preferred) and _install_logging(context, config):
            installed.append("logging")
        if not config.runtime_metrics:
            registry._set("runtime_metrics", "disabled", "TELEMETRYFLOW_RUNTIME_METRICS=false")
        elif context.meter is None:
            registry._set("runtime_metrics", "skipped", "metrics are not exported")
        elif (_wanted("runtime_metrics", disabled, preferred)
              and _install_runtime_metrics(context.meter)):
            installed.append("runtime_metrics")
    except Exception as exc:
        _diagnostics.warn(f"process-level instrumentation skipped ({type(exc).__name__}: {exc})")
    return installed


def _preferred_contrib(config: Any) -> frozenset[str]:
    if not config.prefer_contrib:
        return frozenset()  # the common case: no package scan
    from . import contrib

    return contrib.preferred(config)


def _wanted(name: str, disabled: set[str], preferred: frozenset[str]) -> bool:
    if name in disabled:
        registry._set(name, "disabled", "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS")
        return False
    if name in preferred:
        registry._set(name, "skipped",
                      "contrib instrumentor preferred (TELEMETRYFLOW_PREFER_CONTRIB)")
        return False
    return True


def _install_logging(context: Any, config: Any) -> bool:
    try:
        from . import stdlib_logging

        # The correlation fields cost a span lookup per record and help even when logs are
        # not exported (trace ids in the program's own text logs), so they are always on.
        stdlib_logging.install_record_factory(config.service_name)
        stdlib_logging.install_noise_filter()
        if config.log_correlation:
            stdlib_logging.install_correlated_basic_config()
        if context.logger_provider is None:
            registry._set("logging", "skipped", "logs are not exported (trace id fields only)")
            return False
        stdlib_logging.install_bridge(context.logger_provider, config.log_export_level,
                                      sdk=context.handler)
        registry._set("logging", "applied", f"level {config.log_export_level}")
        return True
    except Exception as exc:
        registry._set("logging", "failed", f"{type(exc).__name__}: {exc}")
        _diagnostics.warn(f"could not instrument logging ({type(exc).__name__}: {exc}); "
                          "logs are not exported")
        return False


def _install_runtime_metrics(meter: Any) -> bool:
    try:
        from . import runtime_metrics

        names = runtime_metrics.install(meter)
        registry._set("runtime_metrics", "applied", f"{len(names)} instruments")
        return bool(names)
    except Exception as exc:
        registry._set("runtime_metrics", "failed", f"{type(exc).__name__}: {exc}")
        _diagnostics.warn(f"could not install runtime metrics ({type(exc).__name__}: {exc})")
        return False
