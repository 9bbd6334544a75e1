"""doctor's path checks: DNS, TCP and TLS to each distinct destination the signals
export to, in that order, each bounded by the check timeout; the export checks follow."""

from __future__ import annotations

import dataclasses
import os
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from ..domain import per_signal
from ..domain.config import TelemetryConfig
from ..domain.environment import EnvironmentReading
from ..domain.signals import ExporterKind, Protocol, SignalType
from . import info
from ._doctor_check import FAIL, PASS, SKIP, WARN, Check, bounded, elapsed_ms, parallel, quoted
from ._doctor_export import export_check, unavailable_hint

_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def network_checks(
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
    exports = parallel(
        [export_check(config, signal, limit, secrets)
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
                    unavailable_hint(config, signal),
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
        infos = bounded(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
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
        bounded(connect, timeout)
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
    return Check("TCP", PASS, f"connected to {where} in {elapsed_ms(started)}")


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
            f"{ca_var}={quoted(cafile)!r} is not a readable file",
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
        version = bounded(handshake, timeout)
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
