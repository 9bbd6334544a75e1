"""``OTLPExporterFactory``: span, metric and log exporters from a ``TelemetryConfig``.

The OTLP exporters (and with them grpc, protobuf, requests) are imported only inside the
``create_*`` and ``warm_up`` methods. The handler wraps each in a ``LazyExporter`` so that
the import happens on the export worker thread once the first item is queued, off the
program's start-up path (a program that never emits never imports them) — and the build
again, freshly, in a forked child, so no gRPC channel is ever shared across a fork.

Each signal's exporter is built from that signal's settings (``TelemetryConfig.for_signal``:
an OTEL_EXPORTER_OTLP_<SIGNAL>_* variable in place of the all-signals setting), so traces,
metrics and logs may each go to their own endpoint, protocol, credentials and CA.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .. import _diagnostics
from ..domain import per_signal
from ..domain.config import TelemetryConfig
from ..domain.errors import ConfigError, Problem
from ..domain.signals import ExporterKind, Protocol, SignalType

_GRPC_MODULES = {
    SignalType.TRACES: "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    SignalType.METRICS: "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    SignalType.LOGS: "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
}
# What the HTTP exporter sets itself (not from the environment): kept when pinning headers.
_TRANSPORT_HEADERS = frozenset({"user-agent", "content-type", "content-encoding"})

class OTLPExporterFactory:
    """Builds exporters for one config; every ``create_*`` returns a new, real exporter."""

    def __init__(self, config: TelemetryConfig) -> None:
        self._config = config

    def kind(self, signal: SignalType) -> ExporterKind:
        return self._config.exporter_for(signal)

    def endpoint_for(self, signal: SignalType) -> str:
        """Where ``signal`` is sent: ``host:port`` for gRPC, a full URL for HTTP (the
        all-signals endpoint with ``/v1/<signal>`` appended, a per-signal one as is)."""
        return self._config.export_target(signal)

    def _settings(self, signal: SignalType) -> TelemetryConfig:
        """``signal``'s configuration; its secrets (its own headers and endpoint password
        included) registered with the diagnostics before an exporter can quote them."""
        config = self._config.for_signal(signal)
        _diagnostics.add_secrets(config.secret_values())
        return config

    def _check_certificate(self, config: TelemetryConfig, signal: SignalType) -> None:
        path = config.certificate_file
        if path and not os.path.isfile(path):
            name = (per_signal.variable(signal, "certificate_file")
                    if self._config.overrides(signal).certificate_file is not None
                    else "TELEMETRYFLOW_CERTIFICATE")
            raise ConfigError([Problem(name, repr(path),
                                       "expected the path of a readable PEM file")])

    @staticmethod
    def _common(config: TelemetryConfig) -> dict[str, Any]:
        return {"headers": config.get_auth_headers(), "timeout": config.timeout}

    def warm_up(self, signal: SignalType) -> None:
        """Import what ``create_*`` will need for spans or logs (grpc or requests, protobuf,
        the exporter, our encoder: ~0.2 s) and make the exporter class, so that building
        the exporter afterwards (``LazyExporter.warm_up``) is quick. The console exporter
        needs nothing, nor do metrics (their reader exports at its own pace)."""
        if signal is SignalType.METRICS or self.kind(signal) is not ExporterKind.OTLP:
            return
        from . import otlp_exporters

        protocol = self._config.for_signal(signal).protocol
        otlp_exporters.exporter_class(signal.value, grpc=protocol is Protocol.GRPC)

    def create_span_exporter(self) -> Any:
        return self._create(SignalType.TRACES, _console_span, _grpc_span, _http_span)

    def create_metric_exporter(self) -> Any:
        return self._create(SignalType.METRICS, _console_metric, _grpc_metric, _http_metric)

    def create_log_exporter(self) -> Any:
        return self._create(SignalType.LOGS, _console_log, _grpc_log, _http_log)

    def _create(self, signal: SignalType, console: Callable[[], type],
                grpc: Callable[[], Callable[..., Any]],
                http: Callable[[], Callable[..., Any]]) -> Any:
        """``signal``'s exporter from its own settings; each maker imports its stack only
        when called (the console one needs neither grpc nor requests)."""
        if self.kind(signal) is ExporterKind.CONSOLE:
            return console()(fmt=self._config.console_format)
        config = self._settings(signal)
        if config.protocol is Protocol.GRPC:
            kwargs = self._grpc_kwargs(config, signal)
            with _bad_signal_timeout_hidden(signal):
                return self._pinned(grpc()(**kwargs), config)
        return self._pinned(http()(**self._http_kwargs(config, signal)), config)

    @staticmethod
    def _pinned(exporter: Any, config: TelemetryConfig) -> Any:
        """``exporter`` sending exactly the configured headers (and, over HTTP, verifying
        with the configured CA or the system's). The SDK's exporters read
        OTEL_EXPORTER_OTLP_HEADERS (and the per-signal variable) themselves: gRPC's when it
        is given none, HTTP's always, merged with what it is given; HTTP's reads
        OTEL_EXPORTER_OTLP_CERTIFICATE when given no file. So a value our reader rejected
        (and said so) would still be used, and TELEMETRYFLOW_HEADERS would not win as
        documented, nor would a per-signal variable replace the all-signals headers as
        OpenTelemetry specifies: what the environment added is taken out again after
        construction. (``config`` is the signal's: its headers are the ones to send.)"""
        ours = {name.lower(): value for name, value in config.get_auth_headers().items()}
        if config.protocol is Protocol.GRPC:
            if hasattr(exporter, "_headers"):
                exporter._headers = tuple(ours.items())
                return exporter
        else:
            client = getattr(exporter, "_client", None)
            current = getattr(client, "_headers", None)
            session = getattr(getattr(client, "_transport", None), "_session", None)
            if session is not None and not config.certificate_file:
                session.verify = True  # (not an OTEL_*_CERTIFICATE our reader rejected)
            if isinstance(current, dict):
                kept = {name: value for name, value in current.items()
                        if name.lower() in _TRANSPORT_HEADERS and name.lower() not in ours}
                client._headers = {**kept, **ours}  # type: ignore[union-attr]
                return exporter
        _diagnostics.debug(f"cannot pin the headers of {type(exporter).__name__}: the "
                           "exporter may add OTEL_EXPORTER_OTLP_HEADERS from the environment")
        return exporter

    def _grpc_kwargs(self, config: TelemetryConfig, signal: SignalType) -> dict[str, Any]:
        import grpc

        self._check_certificate(config, signal)
        kwargs = self._common(config)
        kwargs["headers"] = tuple((k.lower(), v) for k, v in kwargs["headers"].items())
        kwargs["endpoint"] = self.endpoint_for(signal)
        kwargs["insecure"] = not config.uses_tls
        kwargs["compression"] = (grpc.Compression.Gzip if config.compression == "gzip"
                                 else grpc.Compression.NoCompression)
        if config.uses_tls:
            # Always given: without them the exporter reads OTEL_EXPORTER_OTLP_CERTIFICATE
            # (and the per-signal variable) itself, even when our reader rejected it.
            root = None
            if config.certificate_file:
                with open(config.certificate_file, "rb") as pem:
                    root = pem.read()
            kwargs["credentials"] = grpc.ssl_channel_credentials(root_certificates=root)
        return kwargs

    def _http_kwargs(self, config: TelemetryConfig, signal: SignalType) -> dict[str, Any]:
        from opentelemetry.exporter.otlp.proto.http import Compression

        self._check_certificate(config, signal)
        kwargs = self._common(config)
        kwargs["endpoint"] = self.endpoint_for(signal)
        kwargs["compression"] = (Compression.Gzip if config.compression == "gzip"
                                 else Compression.NoCompression)
        if config.certificate_file:
            kwargs["certificate_file"] = config.certificate_file
            kwargs["session"] = _pinned_ca_session(config.certificate_file)
        return kwargs


# The exporter makers ``_create`` calls: each imports its own stack, when called.

def _console_span() -> type:
    from .console import ConsoleSpanExporter

    return ConsoleSpanExporter


def _console_metric() -> type:
    from .console import ConsoleMetricExporter

    return ConsoleMetricExporter


def _console_log() -> type:
    from .console import ConsoleLogExporter

    return ConsoleLogExporter


def _grpc_span() -> Callable[..., Any]:
    from .otlp_exporters import grpc_span_exporter

    return grpc_span_exporter


def _http_span() -> Callable[..., Any]:
    from .otlp_exporters import http_span_exporter

    return http_span_exporter


def _grpc_log() -> Callable[..., Any]:
    from .otlp_exporters import grpc_log_exporter

    return grpc_log_exporter


def _http_log() -> Callable[..., Any]:
    from .otlp_exporters import http_log_exporter

    return http_log_exporter


def _grpc_metric() -> Callable[..., Any]:
    from .otlp_metric_exporters import grpc_metric_exporter

    return grpc_metric_exporter


def _http_metric() -> Callable[..., Any]:
    from .otlp_metric_exporters import http_metric_exporter

    return http_metric_exporter


@contextlib.contextmanager
def _bad_signal_timeout_hidden(signal: SignalType) -> Iterator[None]:
    """The SDK's gRPC exporters parse OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT with ``float()`` in
    their constructor even when given a timeout, so a value our reader rejected (``5s``: said
    once, naming it, and the all-signals timeout used) would fail the build and lose the
    signal. While one is built, its module sees the environment without that variable (a
    copy: the process environment is never changed, a child process started meanwhile gets
    all of it). Only when the value is one ``float()`` refuses, which is rare."""
    name = per_signal.variable(signal, "timeout")
    raw = os.environ.get(name)
    if raw is None or not _float_refuses(raw):
        yield
        return
    module = importlib.import_module(_GRPC_MODULES[signal])
    seen = module.environ
    module.environ = {key: value for key, value in os.environ.items() if key != name}
    try:
        yield
    finally:
        module.environ = seen


def _float_refuses(raw: str) -> bool:
    try:
        float(raw)
    except ValueError:
        return True
    return False


def _pinned_ca_session(ca_file: str) -> Any:
    """A requests session that verifies with ``ca_file`` even when REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE is set: requests lets those override the CA the exporter was given, which
    would make a configured TELEMETRYFLOW_CERTIFICATE silently useless."""
    import requests

    class _PinnedCASession(requests.Session):
        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                       cert: Any) -> Any:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = ca_file
            return settings

    return _PinnedCASession()


class LazyExporter:
    """Builds the real exporter at first use, and again after a fork (fresh channel/session).

    A build failure (bad certificate, missing package) is reported once and the signal's
    items are counted as failed instead of raising into the exporting thread.
    """

    def __init__(self, build: Callable[[], Any], signal: str,
                 warm_up: Callable[[], None] | None = None) -> None:
        self._build = build
        self._signal = signal
        self._warm_up = warm_up
        self._real: Any = None
        self._pid = -1
        self._lock = threading.Lock()
        self._failed_build = False
        if hasattr(os, "register_at_fork"):
            # Never fork while the exporter stack is half imported on the export thread: the
            # child would inherit a partially initialised module and fail to import it.
            os.register_at_fork(before=self._lock.acquire,
                                after_in_parent=self._lock.release,
                                after_in_child=self._reset_lock_in_child)

    def get(self) -> Any:
        real = self._real
        if real is not None and self._pid == os.getpid():
            return real
        with self._lock:
            return self._get_locked()

    def _get_locked(self) -> Any:
        if self._real is None or self._pid != os.getpid():
            if self._failed_build:
                return None
            try:
                self._real = self._build()
                self._pid = os.getpid()
            except Exception as exc:
                self._failed_build = True
                _diagnostics.warn(f"cannot create the {self._signal} exporter: {exc}")
                return None
        return self._real

    def warm_up(self) -> None:
        """Build the exporter now, on the calling thread (the export worker, when the first
        item is queued), its imports first (``warm_up``, given): the first export then
        only encodes and sends. Why: a program that goes on queueing items while the worker
        imports fills the queue, and what comes next is dropped; with the program's thread
        busy, the import takes seconds, each of its file reads waiting for the GIL again
        (3.8 s instead of 0.18 s, measured). The queue makes a program that fills it that
        fast wait for this, once (``BatchQueue._wait_for_preparation``); a program that is
        busy but queues little lets it take its time, which keeps it from slowing the
        program's requests meanwhile. Building does not reach the backend (a channel
        connects at its first call). Under the build's lock, so that a fork waits for it as
        for any build.

        (Shortening the GIL switch interval while this runs made it finish in 0.5 s under a
        busy program, but then its ~0.2 s of CPU landed on the program's first requests:
        +100 µs of wall time each in per_request.py's hello route.)"""
        warm_up = self._warm_up
        if warm_up is None or self.built is not None:
            return
        with self._lock:
            try:
                warm_up()
            except Exception as exc:  # the build reports what is wrong, once
                _diagnostics.debug(f"{self._signal} exporter warm-up failed: {exc!r}")
            self._get_locked()

    def _reset_lock_in_child(self) -> None:
        self._lock = threading.Lock()

    @property
    def built(self) -> Any:
        return self._real if self._pid == os.getpid() else None

    def shutdown(self) -> None:
        real = self.built
        if real is not None:
            real.shutdown()
