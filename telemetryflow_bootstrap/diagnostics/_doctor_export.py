"""doctor's last check per signal: one EMPTY OTLP export, built by hand with the
exporters' endpoint, headers, TLS and compression, whose status (UNAUTHENTICATED, HTTP
401...) is reported as it comes, with a fix."""

from __future__ import annotations

import gzip
import ssl
import time
from collections.abc import Callable
from typing import Any

from ..domain import per_signal
from ..domain.config import TelemetryConfig
from ..domain.signals import Protocol, SignalType
from . import info
from ._doctor_check import FAIL, PASS, WARN, Check, elapsed_ms, quoted, scrub

_AUTH_VARS = "TELEMETRYFLOW_API_KEY_ID and TELEMETRYFLOW_API_KEY_SECRET"

_SERVICES = {
    SignalType.TRACES: ("trace", "TraceService", "ExportTraceService"),
    SignalType.METRICS: ("metrics", "MetricsService", "ExportMetricsService"),
    SignalType.LOGS: ("logs", "LogsService", "ExportLogsService"),
}


def export_check(
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
                quoted(scrub(f"{type(exc).__name__}: {exc}", secrets)),
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
        details = f" ({quoted(scrub(lines[0], secrets))})" if lines else ""
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
            f"OTLP/HTTP POST {shown}: HTTP {exc.code} {quoted(scrub(str(exc.reason), secrets))}",
            _http_hint(exc.code, config, signal),
        )
    except urllib.error.URLError as exc:
        reason = quoted(scrub(str(exc.reason), secrets))
        return Check(name, FAIL, f"OTLP/HTTP POST {shown}: {reason}",
                     unavailable_hint(config, signal))
    except TimeoutError:
        return Check(
            name,
            FAIL,
            f"OTLP/HTTP POST {shown}: no answer within {timeout:g}s",
            unavailable_hint(config, signal),
        )
    except (http.client.HTTPException, OSError) as exc:
        # What an HTTP client sees when the port speaks gRPC (HTTP/2 only) or TLS.
        return Check(
            name,
            FAIL,
            f"OTLP/HTTP POST {shown}: not an HTTP answer ({type(exc).__name__})",
            unavailable_hint(config, signal),
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
            f"{what}, with a partial-success message: {quoted(scrub(message, secrets))}",
            "see the collector's logs",
        )
    return Check(name, PASS, f"{what} in {elapsed_ms(started)} (empty request accepted)")


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


def unavailable_hint(config: TelemetryConfig, signal: SignalType) -> str:
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
        return unavailable_hint(config, signal)
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
