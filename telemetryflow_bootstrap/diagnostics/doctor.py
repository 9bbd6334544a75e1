"""``telemetryflow-run doctor``: the ``--info`` report plus live checks, each PASS, WARN,
FAIL or SKIP with a fix, and an exit code a container health check can use (1 on any FAIL).

The checks follow the path an export takes — configuration, hook, DNS, TCP, TLS, then one
EMPTY OTLP export per exported signal — so the first FAIL is usually the cause and the ones
after it are skipped rather than repeated. Signals with their own endpoint
(OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT) get DNS, TCP and TLS once per distinct destination,
and each export check uses its signal's own settings (headers, TLS, CA, compression).

The export check sends a request built by hand (the same endpoint, headers, TLS settings and
compression the exporters use) instead of going through the SDK exporters: those retry
transient errors until their own timeout and only log the status, while a single direct
request reports the status itself (``UNAUTHENTICATED``, HTTP 401…) within the check's
timeout. An empty request carries no data, so nothing shows up in the backend.

Every check is bounded: ``TELEMETRYFLOW_TIMEOUT`` when set (a signal's own
OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT for its checks), else 5 seconds (blocking calls
without their own timeout, like ``getaddrinfo``, run in a daemon thread that is abandoned
when late). Nothing printed contains a secret: details that come back from the server are
scrubbed of the credentials that were sent.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from .. import _launch
from .._version import __version__
from ..domain import per_signal
from ..domain.config import TelemetryConfig, load_config
from ..domain.environment import EnvironmentReading
from ..domain.redaction import redact_text
from ..domain.signals import ExporterKind, Protocol, SignalType
from . import info

__all__ = [
    "FAIL",
    "PASS",
    "SKIP",
    "WARN",
    "Check",
    "DoctorReport",
    "render_json",
    "render_text",
    "run",
]

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"

_DEFAULT_TIMEOUT = 5.0
_MAX_DETAIL = 160
# Starting an interpreter (and the SDK in it) is not a network wait: a short network timeout
# must not turn a slow cold start into a false FAIL.
_MIN_PROBE_TIMEOUT = 5.0
_AUTH_VARS = "TELEMETRYFLOW_API_KEY_ID and TELEMETRYFLOW_API_KEY_SECRET"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_PROBE_MARK = "telemetryflow-probe"
# `-c` puts the working directory first on sys.path, which the hook never sees (it runs
# before that): drop it, or a checkout in the working directory would hide a missing install.
_PROBE = (
    "import sys\n"
    "sys.path = [entry for entry in sys.path if entry != '']\n"
    "import telemetryflow_bootstrap as t\n"
    "try:\n"
    "    from telemetryflow_bootstrap import _runtime\n"
    "    started = _runtime.current_client() is not None\n"
    "except Exception:\n"
    "    started = None\n"
    f"print({_PROBE_MARK!r}, t.__version__, sys.version.split()[0], started)\n"
)
_SERVICES = {
    SignalType.TRACES: ("trace", "TraceService", "ExportTraceService"),
    SignalType.METRICS: ("metrics", "MetricsService", "ExportMetricsService"),
    SignalType.LOGS: ("logs", "LogsService", "ExportLogsService"),
}


@dataclass(frozen=True)
class Check:
    """One live check: PASS, WARN, FAIL or SKIP, what was seen, and how to fix it."""

    name: str
    outcome: str
    detail: str
    hint: str = ""


@dataclass
class DoctorReport:
    info: info.InfoReport
    checks: list[Check]
    timeout: float

    @property
    def ok(self) -> bool:
        """All passed; WARN and SKIP do not fail a health check."""
        return not any(check.outcome == FAIL for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "timeout": self.timeout,
            "checks": [asdict(check) for check in self.checks],
            "info": self.info.to_dict(),
        }


def run(
    environ: Mapping[str, str], *, target: str | None = None, catalog: Sequence[Any] | None = None
) -> DoctorReport:
    """Every check for the program environment ``environ``; ``target`` is the interpreter
    the program will run with (default: ``python`` on that environment's PATH)."""
    config, reading = load_config(environ)
    timeout = _check_timeout(config, reading)
    probe = (
        _InterpreterProbe(target, environ, max(timeout, _MIN_PROBE_TIMEOUT))
        if config.enabled
        else None
    )
    report = info.collect(environ, catalog=catalog)
    checks = [_check_configuration(config, reading, report)]
    if probe is None:
        checks.append(Check("hook", SKIP, "telemetry is disabled: the launcher adds nothing"))
        return DoctorReport(report, checks, timeout)
    checks.append(_check_hook_file())
    network = _network_checks(config, reading, timeout)
    checks.append(probe.result())
    checks.extend(network)
    return DoctorReport(report, checks, timeout)


def _check_timeout(config: TelemetryConfig, reading: EnvironmentReading) -> float:
    return config.timeout if "timeout" in reading.sources else _DEFAULT_TIMEOUT


# ----- configuration and hook --------------------------------------------------------------


def _check_configuration(
    config: TelemetryConfig, reading: EnvironmentReading, report: info.InfoReport
) -> Check:
    # A run only warns about an invalid value and uses the default, but the user meant
    # something else (an ignored endpoint means "no export"): a health check must fail.
    # The messages come from the report, where they are already redacted.
    if report.problems:
        return Check(
            "configuration",
            FAIL,
            f"{len(report.problems)} invalid setting(s): {report.problems[0]}",
            "fix or unset the variables listed under Warnings",
        )
    if not config.enabled:
        source = reading.sources.get("enabled", "TELEMETRYFLOW_ENABLED")
        return Check(
            "configuration",
            WARN,
            f"telemetry is disabled by {source}",
            f"unset {source} to instrument programs",
        )
    if report.warnings:
        return Check(
            "configuration",
            WARN,
            f"{len(report.warnings)} warning(s): {report.warnings[0]}",
            "see Warnings above",
        )
    return Check("configuration", PASS, "no problems")


def _check_hook_file() -> Check:
    hook = _launch.hook_file()
    if hook.is_file():
        return Check("hook file", PASS, str(hook))
    return Check(
        "hook file",
        FAIL,
        f"{hook} is missing",
        "reinstall telemetryflow-bootstrap (pip install --force-reinstall telemetryflow-bootstrap)",
    )


def _default_python(environ: Mapping[str, str]) -> str:
    # `telemetryflow-run python app.py` is the documented use: check the interpreter that
    # `python` means there, which is not necessarily the one running the launcher.
    for name in ("python", "python3"):
        try:
            _launch.resolve_command(name, environ.get("PATH"))
        except _launch.LaunchError:
            continue
        return name
    return sys.executable


class _InterpreterProbe:
    """Starts the program's interpreter with the program's environment and sees the hook
    start in it (exports switched off, so it sends nothing).

    Started first and collected last: the interpreter and the SDK start in the background
    while the network checks run, which roughly halves the time ``doctor`` takes.
    """

    def __init__(self, target: str | None, environ: Mapping[str, str], timeout: float) -> None:
        self._timeout = timeout
        self._started = time.monotonic()
        self._proc: subprocess.Popen[str] | None = None
        self._early: Check | None = None
        python = target or _default_python(environ)
        try:
            self._path = _launch.resolve_command(python, environ.get("PATH"))
        except _launch.LaunchError as exc:
            self._path = python
            self._early = Check(
                "hook loads",
                FAIL,
                exc.message,
                "name the interpreter the program runs with: "
                "telemetryflow-run doctor -- /path/to/python",
            )
            return
        env = dict(environ)
        env["TELEMETRYFLOW_EXPORTER"] = "none"
        try:
            self._proc = subprocess.Popen(
                [self._path, "-c", _PROBE],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            self._early = Check(
                "hook loads",
                FAIL,
                f"cannot run {self._path}: {exc.strerror or exc}",
                "name a Python interpreter: telemetryflow-run doctor -- /path/to/python",
            )

    def result(self) -> Check:
        if self._early is not None or self._proc is None:
            return self._early or Check("hook loads", FAIL, "not started")
        remaining = max(0.1, self._timeout - (time.monotonic() - self._started))
        try:
            stdout, stderr = self._proc.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            return Check(
                "hook loads",
                FAIL,
                f"{self._path} did not finish starting within {self._timeout:g}s",
                "check that it is a Python interpreter that starts on its own",
            )
        return _probe_outcome(self._path, self._proc.returncode, stdout, stderr)


def _probe_outcome(path: str, returncode: int, stdout: str, stderr: str) -> Check:
    install = (
        f"install telemetryflow-bootstrap there: {path} -m pip install telemetryflow-bootstrap"
    )
    said = _last_telemetryflow_line(stderr)
    marker = next(
        (line.split() for line in stdout.splitlines() if line.startswith(_PROBE_MARK)), None
    )
    if returncode != 0 or marker is None:
        # Strict mode stops the hook with its own error line; otherwise the traceback's last
        # line names what is missing (the hook's line says the same at greater length).
        strict = said if said.startswith("telemetryflow: error") else ""
        last = strict or _last_line(stderr) or f"exit status {returncode}"
        if strict:
            hint = "strict mode refuses to start with configuration problems: fix them"
        elif _missing_package(stderr):
            hint = install
        else:  # (`doctor -- /bin/sleep`: no `-m pip` to suggest)
            hint = ("is it a Python interpreter? name the one the program runs with: "
                    "telemetryflow-run doctor -- /path/to/python")
        return Check("hook loads", FAIL, f"{path}: {last}", hint)
    _mark, version, python_version, started = [*marker, "", "", ""][:4]
    where = f"{path} (Python {python_version})"
    if started == "False":
        return Check(
            "hook loads",
            FAIL,
            f"{where} imports telemetryflow_bootstrap {version} "
            f"but the hook did not start: {said or 'no message'}",
            install if _missing_package(stderr) else
            "fix what the hook says; `telemetryflow-run --info` shows the configuration",
        )
    if version != __version__:
        return Check(
            "hook loads",
            WARN,
            f"{where} loads the hook with telemetryflow-bootstrap "
            f"{version}, the launcher is {__version__}",
            "install the same version in both environments",
        )
    return Check("hook loads", PASS, f"{where} loads the hook (telemetryflow-bootstrap {version})")


def _missing_package(stderr: str) -> bool:
    """Whether the interpreter ran Python but could not import us (or what we need)."""
    return "No module named" in stderr or "cannot import" in stderr


def _shown(text: str) -> str:
    return info.printable(text, _MAX_DETAIL)


def _last_telemetryflow_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.startswith("telemetryflow:")]
    return _shown(lines[-1]) if lines else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _shown(lines[-1]) if lines else ""


# ----- network ------------------------------------------------------------------------------


def _network_checks(
    config: TelemetryConfig, reading: EnvironmentReading, timeout: float
) -> list[Check]:
    """DNS, TCP and TLS once per distinct destination (signals may each have their own
    endpoint, OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT), then one empty export per signal, all
    exports at once. With several destinations each check's name says for which signals."""
    exported = [
        signal
        for signal in config.enabled_signals
        if config.exporter_for(signal) is ExporterKind.OTLP
    ]
    if not exported:
        if config.endpoint is None and not any(
            config.overrides(signal).endpoint for signal in config.enabled_signals
        ):
            why = (
                "no endpoint configured: telemetry is printed on stderr (console exporter); "
                "network checks skipped"
            )
            return [
                Check(
                    "network",
                    SKIP,
                    why,
                    "set TELEMETRYFLOW_ENDPOINT to send telemetry to a collector",
                )
            ]
        return [Check("network", SKIP, "no signal is exported over OTLP; network checks skipped")]
    destinations: dict[tuple[Any, ...], list[SignalType]] = {}
    for signal in exported:
        destinations.setdefault(_destination(config, signal), []).append(signal)
    checks: list[Check] = []
    attempted: list[SignalType] = []
    for signals in destinations.values():
        suffix = f" ({', '.join(s.value for s in signals)})" if len(destinations) > 1 else ""
        path = _path_checks(config, reading, signals[0],
                            max(_signal_timeout(config, timeout, s) for s in signals))
        checks.extend(dataclasses.replace(check, name=check.name + suffix) for check in path)
        if path[-1].outcome == FAIL:
            reason = f"not attempted: the {path[-1].name + suffix} check failed"
            checks.extend(Check(f"export {signal.value}", SKIP, reason) for signal in signals)
        else:
            attempted.extend(signals)
    secrets = config.secret_values()
    limits = [_signal_timeout(config, timeout, signal) for signal in attempted]
    exports = _parallel(
        [_export_check(config, signal, limit, secrets)
         for signal, limit in zip(attempted, limits, strict=True)],
        max(limits, default=timeout) + 1.0,
    )
    for signal, limit, outcome in zip(attempted, limits, exports, strict=True):
        if isinstance(outcome, Check):
            checks.append(outcome)
        else:
            checks.append(
                Check(
                    f"export {signal.value}",
                    FAIL,
                    f"no answer within {limit:g}s",
                    _unavailable_hint(config, signal),
                )
            )
    order = {f"export {signal.value}": index for index, signal in enumerate(exported)}
    return sorted(checks, key=lambda check: order.get(check.name, -1))


def _signal_timeout(config: TelemetryConfig, timeout: float, signal: SignalType) -> float:
    """A signal's own OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT bounds its checks, else ``timeout``."""
    own = config.overrides(signal).timeout
    return own if own is not None else timeout


def _host_port(config: TelemetryConfig, signal: SignalType) -> tuple[str, int]:
    """Where ``signal``'s exporter connects: a per-signal OTLP/HTTP URL is used as is, so a
    URL without a port means the scheme's (443 or 80), not OTLP's 4318."""
    target = config.export_target(signal)
    url = urlsplit(target if "://" in target else f"//{target}")
    try:
        port = url.port
    except ValueError:
        port = None
    return url.hostname or "localhost", port or (80 if url.scheme == "http" else 443)


def _destination(config: TelemetryConfig, signal: SignalType) -> tuple[Any, ...]:
    """What the path checks (DNS, TCP, TLS) depend on: signals sharing it share them."""
    view = config.for_signal(signal)
    tls = info.transport_uses_tls(view)
    return (*_host_port(config, signal), tls, view.certificate_file if tls else None,
            view.protocol)


def _path_checks(
    config: TelemetryConfig, reading: EnvironmentReading, signal: SignalType, timeout: float
) -> list[Check]:
    """DNS, then TCP, then TLS (or the plaintext note) to ``signal``'s destination, stopping
    at the first FAIL."""
    view = config.for_signal(signal)
    host, port = _host_port(config, signal)
    checks = [_check_dns(host, port, timeout, _variable_for(config, reading, signal, "endpoint"))]
    if checks[-1].outcome != FAIL:
        checks.append(_check_tcp(host, port, timeout))
    if checks[-1].outcome != FAIL:
        if info.transport_uses_tls(view):
            ca_var = _variable_for(config, reading, signal, "certificate_file")
            checks.append(_check_tls(host, port, view, ca_var, timeout))
        else:
            source = (_variable_for(config, reading, signal, "insecure", "")
                      or _variable_for(config, reading, signal, "endpoint", "the endpoint"))
            checks.append(_plaintext_note(view, host, source))
    return checks


def _variable_for(config: TelemetryConfig, reading: EnvironmentReading, signal: SignalType,
                  setting: str, default: str | None = None) -> str:
    """The variable that set ``setting`` for ``signal``, else ``default`` (our variable's
    name when not given)."""
    found = per_signal.source_of(config, reading, signal, setting)
    if found is not None:
        return found
    return per_signal.SETTINGS[setting][1] if default is None else default


def _check_dns(host: str, port: int, timeout: float, endpoint_var: str) -> Check:
    try:
        infos = _bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except TimeoutError:
        return Check(
            "DNS",
            FAIL,
            f"no answer resolving {host} within {timeout:g}s",
            "check the DNS resolver of this machine/container",
        )
    except (socket.gaierror, UnicodeError) as exc:
        return Check(
            "DNS",
            FAIL,
            f"cannot resolve {host}: {getattr(exc, 'strerror', exc)}",
            f"check the host name in {endpoint_var}; in a container use the "
            "collector's service name, not localhost",
        )
    addresses = list(dict.fromkeys(str(item[4][0]) for item in infos))
    shown = ", ".join(addresses[:3]) + (" ..." if len(addresses) > 3 else "")
    return Check("DNS", PASS, f"{host} -> {shown}")


def _check_tcp(host: str, port: int, timeout: float) -> Check:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    started = time.monotonic()
    try:
        # Bounded as a whole: create_connection gives *each* resolved address the timeout.
        _bounded(connect, timeout)
    except ConnectionRefusedError:
        hint = f"is the collector running and listening on port {port}?"
        if host in _LOOPBACK and os.path.exists("/.dockerenv"):
            hint += (
                " Inside a container localhost is the container itself: use the "
                "collector's service name."
            )
        return Check("TCP", FAIL, f"connection to {where} refused", hint)
    except TimeoutError:
        return Check(
            "TCP",
            FAIL,
            f"no answer from {where} within {timeout:g}s",
            "a wrong host or port, or a firewall/network policy drops the connection",
        )
    except OSError as exc:
        return Check(
            "TCP",
            FAIL,
            f"cannot connect to {where}: {exc.strerror or exc}",
            "check the host and port of the endpoint and the network between",
        )
    return Check("TCP", PASS, f"connected to {where} in {_ms(started)}")


def _plaintext_note(config: TelemetryConfig, host: str, source: str) -> Check:
    if config.credentials is not None and host not in _LOOPBACK:
        return Check(
            "TLS",
            WARN,
            f"plaintext ({source}): the API key crosses the network unencrypted",
            "use an https:// endpoint (TLS) outside a trusted network",
        )
    return Check("TLS", SKIP, f"plaintext ({source})")


def _check_tls(host: str, port: int, config: TelemetryConfig, ca_var: str,
               timeout: float) -> Check:
    cafile = config.certificate_file
    if cafile and not os.path.isfile(cafile):
        return Check(
            "TLS",
            FAIL,
            f"{ca_var}={_shown(cafile)!r} is not a readable file",
            "point it to the PEM file of the CA that signed the collector's certificate",
        )
    try:
        context = ssl.create_default_context(cafile=cafile or None)
    except (ssl.SSLError, OSError) as exc:
        return Check(
            "TLS",
            FAIL,
            f"cannot load {ca_var}: {exc}",
            "it must be a PEM file with one or more CA certificates",
        )
    context.set_alpn_protocols(["h2"] if config.protocol is Protocol.GRPC else ["http/1.1"])
    trust = f"{ca_var}" if cafile else "the system CAs"

    def handshake() -> str | None:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.version()

    try:
        version = _bounded(handshake, timeout)
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or str(exc)
        if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
            hint = f"the certificate is not issued for {host}: use the name it was issued for"
        else:
            hint = f"set {ca_var} to the PEM file of the CA that signed the collector's certificate"
        return Check("TLS", FAIL, f"certificate not trusted ({trust}): {reason}", hint)
    except ssl.SSLError as exc:
        plaintext = any(
            word in str(exc).upper()
            for word in (
                "WRONG_VERSION_NUMBER",
                "RECORD_LAYER",
                "UNKNOWN_PROTOCOL",
                "PACKET_LENGTH_TOO_LONG",
            )
        )
        hint = (
            _plaintext_hint(config)
            if plaintext
            else "check that the endpoint is the collector's TLS port"
        )
        what = "the endpoint does not speak TLS" if plaintext else f"TLS handshake failed: {exc}"
        return Check("TLS", FAIL, what, hint)
    except TimeoutError:
        return Check("TLS", FAIL, f"no TLS handshake within {timeout:g}s", _plaintext_hint(config))
    except OSError as exc:
        return Check(
            "TLS",
            FAIL,
            f"TLS connection failed: {exc.strerror or exc}",
            "check that the endpoint is the collector's TLS port",
        )
    return Check("TLS", PASS, f"{version}, certificate for {host} verified with {trust}")


def _plaintext_hint(config: TelemetryConfig) -> str:
    if config.protocol is Protocol.HTTP:
        return "for a collector without TLS use an http:// endpoint"
    return "for a collector without TLS set TELEMETRYFLOW_INSECURE=true (or use http://)"


# ----- the empty export ----------------------------------------------------------------------


def _export_check(
    config: TelemetryConfig, signal: SignalType, timeout: float, secrets: list[str]
) -> Callable[[], Check]:
    def check() -> Check:
        try:
            if config.for_signal(signal).protocol is Protocol.GRPC:
                return _grpc_export(config, signal, timeout, secrets)
            return _http_export(config, signal, timeout, secrets)
        except Exception as exc:  # a check reports, it never takes the report down
            return Check(
                f"export {signal.value}",
                FAIL,
                _shown(_scrub(f"{type(exc).__name__}: {exc}", secrets)),
                "see the error; `telemetryflow-run --info` shows the configuration",
            )

    return check


def _messages(signal: SignalType) -> tuple[Any, Any, str]:
    import importlib

    package, service, prefix = _SERVICES[signal]
    module = importlib.import_module(
        f"opentelemetry.proto.collector.{package}.v1.{package}_service_pb2"
    )
    full_name = module.DESCRIPTOR.services_by_name[service].full_name
    return (
        getattr(module, f"{prefix}Request"),
        getattr(module, f"{prefix}Response"),
        f"/{full_name}/Export",
    )


def _grpc_export(
    config: TelemetryConfig, signal: SignalType, timeout: float, secrets: list[str]
) -> Check:
    import grpc

    request_type, response_type, method = _messages(signal)
    target = config.export_target(signal)
    view = config.for_signal(signal)  # (the signal's own settings, as its exporter has them)
    if view.uses_tls:
        pem = None
        if view.certificate_file:
            with open(view.certificate_file, "rb") as file:
                pem = file.read()
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=pem))
    else:
        channel = grpc.insecure_channel(target)
    compression = (
        grpc.Compression.Gzip if view.compression == "gzip" else grpc.Compression.NoCompression
    )
    headers = tuple((key.lower(), value) for key, value in view.get_auth_headers().items())
    name = f"export {signal.value}"
    shown = info.safe_url(target)
    started = time.monotonic()
    try:
        export = channel.unary_unary(
            method,
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        response = export(
            request_type(), metadata=headers, timeout=timeout, compression=compression
        )
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() is not None else "UNKNOWN"
        lines = str(exc.details() or "").splitlines()
        details = f" ({_shown(_scrub(lines[0], secrets))})" if lines else ""
        return Check(
            name,
            FAIL,
            f"OTLP/gRPC to {shown}: {code}{details}",
            _grpc_hint(code, config, signal, timeout),
        )
    finally:
        channel.close()
    return _accepted(name, f"OTLP/gRPC to {shown}: OK", started, response, secrets)


def _http_export(
    config: TelemetryConfig, signal: SignalType, timeout: float, secrets: list[str]
) -> Check:
    import http.client
    import urllib.error
    import urllib.request

    request_type, response_type, _method = _messages(signal)
    url = config.export_target(signal)
    view = config.for_signal(signal)  # (the signal's own settings, as its exporter has them)
    body = request_type().SerializeToString()
    headers = {"Content-Type": "application/x-protobuf", **view.get_auth_headers()}
    if view.compression == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    context = None
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=view.certificate_file or None)
    name = f"export {signal.value}"
    shown = info.safe_url(url)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return Check(
            name,
            FAIL,
            f"OTLP/HTTP POST {shown}: HTTP {exc.code} {_shown(_scrub(str(exc.reason), secrets))}",
            _http_hint(exc.code, config, signal),
        )
    except urllib.error.URLError as exc:
        reason = _shown(_scrub(str(exc.reason), secrets))
        return Check(name, FAIL, f"OTLP/HTTP POST {shown}: {reason}",
                     _unavailable_hint(config, signal))
    except TimeoutError:
        return Check(
            name,
            FAIL,
            f"OTLP/HTTP POST {shown}: no answer within {timeout:g}s",
            _unavailable_hint(config, signal),
        )
    except (http.client.HTTPException, OSError) as exc:
        # What an HTTP client sees when the port speaks gRPC (HTTP/2 only) or TLS.
        return Check(
            name,
            FAIL,
            f"OTLP/HTTP POST {shown}: not an HTTP answer ({type(exc).__name__})",
            _unavailable_hint(config, signal),
        )
    response = None
    if payload:
        try:
            response = response_type.FromString(payload)
        except Exception:
            response = None
    return _accepted(name, f"OTLP/HTTP POST {shown}: HTTP {status}", started, response, secrets)


def _accepted(name: str, what: str, started: float, response: Any, secrets: list[str]) -> Check:
    partial = getattr(response, "partial_success", None)
    message = getattr(partial, "error_message", "") if partial is not None else ""
    if message:
        return Check(
            name,
            WARN,
            f"{what}, with a partial-success message: {_shown(_scrub(message, secrets))}",
            "see the collector's logs",
        )
    return Check(name, PASS, f"{what} in {_ms(started)} (empty request accepted)")


def _auth_hint(config: TelemetryConfig, signal: SignalType) -> str:
    headers_var = _to_set(config, signal, "headers")
    if config.credentials is None:
        return (
            f"the collector wants credentials: set {_AUTH_VARS} "
            f"(or the header it expects in {headers_var})"
        )
    return (
        f"check {_AUTH_VARS} (the key may be wrong, revoked or for another collector) "
        f"and {headers_var}"
    )


def _to_set(config: TelemetryConfig, signal: SignalType, setting: str) -> str:
    """The variable a hint tells to set for ``signal``: its own when it has its own
    endpoint or that setting (the all-signals one would not reach it), else ours."""
    own = config.overrides(signal)
    if own.endpoint is not None or getattr(own, setting) is not None:
        return per_signal.variable(signal, setting)
    return per_signal.SETTINGS[setting][1]


def _unavailable_hint(config: TelemetryConfig, signal: SignalType) -> str:
    view = config.for_signal(signal)
    other = Protocol.HTTP if view.protocol is Protocol.GRPC else Protocol.GRPC
    hint = (
        f"is the collector running? If it serves OTLP/{other.value} on this port, set "
        f"{_to_set(config, signal, 'protocol')}={other.value}"
    )
    insecure_var = _to_set(config, signal, "insecure")
    if view.protocol is Protocol.GRPC and not view.uses_tls:
        hint += f"; if it uses TLS, drop {insecure_var}"
    elif view.protocol is Protocol.GRPC:
        hint += f"; if it has no TLS, set {insecure_var}=true"
    return hint


def _grpc_hint(code: str, config: TelemetryConfig, signal: SignalType, timeout: float) -> str:
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return _auth_hint(config, signal)
    if code == "UNAVAILABLE":
        return _unavailable_hint(config, signal)
    if code == "UNIMPLEMENTED":
        return (
            f"the endpoint does not serve OTLP {signal.value} over gRPC: enable a "
            f"{signal.value} pipeline in the collector, or check the port"
        )
    if code == "DEADLINE_EXCEEDED":
        return (
            f"no answer within {timeout:g}s: the collector is overloaded or the network "
            f"is slow (raise {_to_set(config, signal, 'timeout')})"
        )
    if code == "RESOURCE_EXHAUSTED":
        return "the collector is throttling: see its memory_limiter/rate limits"
    return "see the collector's logs"


def _http_hint(status: int, config: TelemetryConfig, signal: SignalType) -> str:
    if status in (401, 403):
        return _auth_hint(config, signal)
    if status in (404, 405) and config.overrides(signal).endpoint is not None:
        return (
            f"{per_signal.variable(signal, 'endpoint')} is used as is (nothing is appended): "
            f"give the full URL, e.g. http://collector:4318/v1/{signal.value}; and the "
            f"collector needs a {signal.value} pipeline"
        )
    if status in (404, 405):
        return (
            "TELEMETRYFLOW_ENDPOINT should be the collector's base URL (e.g. "
            f"http://collector:4318): /v1/{signal.value} is added for you; and the "
            f"collector needs a {signal.value} pipeline"
        )
    if status == 415:
        return "the endpoint does not accept OTLP/protobuf: is it an OTLP receiver?"
    if status in (429, 502, 503, 504):
        return "the collector (or a proxy before it) is unavailable or throttling"
    return "see the collector's logs"


# ----- helpers --------------------------------------------------------------------------------


def _scrub(text: str, secrets: list[str]) -> str:
    """A server (or gRPC, quoting its target) may echo what it got; never print a
    credential we sent, nor a URL's password."""
    return redact_text(text, secrets)


def _ms(started: float) -> str:
    return f"{(time.monotonic() - started) * 1000:.0f} ms"


def _bounded(call: Callable[[], Any], timeout: float) -> Any:
    result = _parallel([call], timeout)[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _parallel(calls: list[Callable[[], Any]], timeout: float) -> list[Any]:
    """Run ``calls`` at once in daemon threads; a call still running after ``timeout`` gives
    ``TimeoutError`` and is abandoned (a daemon thread never delays the exit)."""
    results: list[Any] = [TimeoutError()] * len(calls)

    def runner(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except BaseException as exc:
            results[index] = exc

    threads = [
        threading.Thread(
            target=runner, args=(index, call), daemon=True, name="telemetryflow-doctor"
        )
        for index, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results


# ----- rendering ------------------------------------------------------------------------------


def render_text(report: DoctorReport, *, quiet: bool = False) -> str:
    lines = [] if quiet else [info.render_text(report.info), ""]
    lines.append(f"Checks (each within {report.timeout:g}s)")
    width = max(len(check.name) for check in report.checks) + 2
    for check in report.checks:
        if quiet and check.outcome in (PASS, SKIP):
            continue
        lines.append(f"  {check.outcome}  {check.name:<{width}}{check.detail}")
        if check.hint:
            lines.append(f"        {'':<{width}}fix: {check.hint}")
    failed = sum(check.outcome == FAIL for check in report.checks)
    warned = sum(check.outcome == WARN for check in report.checks)
    summary = f"{failed} failed, {warned} warning(s)"
    lines.append(f"Result: {'PASS' if report.ok else 'FAIL'} ({summary})")
    return "\n".join(lines)


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
