"""An in-process OTLP receiver (gRPC + HTTP) for tests.

It accepts real OTLP export requests from the OpenTelemetry SDK exporters (or anything
else that speaks OTLP), records them, and offers flattened views of the received spans,
metric points and log records.

Run one by hand with ``python -m tests.otlp_receiver [--grpc-port 4317 --http-port 4318]``;
it prints one line per received span / metric point / log record until Ctrl-C.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "HTTP_STATUS_FOR_GRPC",
    "OTLPReceiver",
    "ReceivedLog",
    "ReceivedMetricPoint",
    "ReceivedRequest",
    "ReceivedSpan",
    "ReceivedSpanLink",
    "any_value_to_python",
    "attributes_to_dict",
    "free_port",
    "logs_from_request",
    "make_self_signed_cert",
    "metric_points_from_request",
    "spans_from_request",
]

SIGNALS = ("traces", "metrics", "logs")

# signal -> (request class, response class, gRPC service full name)
_SIGNAL_TYPES: dict[str, tuple[type[Message], type[Message], str]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
    ),
}

#: HTTP status used when a gRPC status name is injected with ``set_failure`` (default 500).
HTTP_STATUS_FOR_GRPC: dict[str, int] = {
    "UNAVAILABLE": 503,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
}

_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------- records


@dataclass
class ReceivedRequest:
    """One OTLP export request as it reached the receiver."""

    signal: str  # 'traces' | 'metrics' | 'logs'
    transport: str  # 'grpc' | 'http'
    path: str | None  # HTTP path (with query string stripped); gRPC method path for grpc
    headers: dict[str, str]  # lower-case keys
    compressed: bool
    content_type: str | None
    message: Any  # decoded Export*ServiceRequest, or None if it could not be decoded
    encoding: str | None = None  # 'gzip' / 'deflate' when compressed
    peer: str | None = None
    status: str = "OK"  # gRPC status name the receiver answered with
    error: str | None = None  # why it was rejected, if it was
    received_at: float = field(default_factory=time.time)


@dataclass
class ReceivedSpanLink:
    trace_id: str
    span_id: str
    attributes: dict[str, Any]
    trace_state: str = ""


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str  # 32 lower-case hex chars
    span_id: str  # 16 hex chars
    parent_span_id: str  # 16 hex chars or ''
    kind: str  # 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER' | 'UNSPECIFIED'
    attributes: dict[str, Any]
    status_code: str  # 'UNSET' | 'OK' | 'ERROR'
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    links: list[ReceivedSpanLink]
    resource: dict[str, Any]
    scope_name: str
    start_ns: int
    end_ns: int
    scope_version: str = ""
    trace_state: str = ""
    flags: int = 0
    request: ReceivedRequest | None = field(default=None, repr=False, compare=False)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass
class ReceivedMetricPoint:
    name: str
    kind: str  # 'sum' | 'gauge' | 'histogram' | 'exponential_histogram' | 'summary'
    value: int | float | None  # sum/gauge only
    count: int | None  # histogram / exponential_histogram / summary
    sum: float | None
    bucket_counts: list[int]  # histogram; positive buckets for exponential_histogram
    explicit_bounds: list[float]
    attributes: dict[str, Any]
    is_monotonic: bool | None  # sum only
    temporality: str | None  # 'CUMULATIVE' | 'DELTA' | 'UNSPECIFIED' (sum/histograms only)
    unit: str
    resource: dict[str, Any]
    scope_name: str
    time_ns: int
    start_time_ns: int = 0
    description: str = ""
    min: float | None = None
    max: float | None = None
    point: Any = field(default=None, repr=False, compare=False)  # the raw data point proto
    request: ReceivedRequest | None = field(default=None, repr=False, compare=False)


@dataclass
class ReceivedLog:
    body: Any
    severity_number: int
    severity_text: str
    attributes: dict[str, Any]
    trace_id: str  # hex or ''
    span_id: str  # hex or ''
    resource: dict[str, Any]
    scope_name: str
    time_ns: int
    observed_time_ns: int
    event_name: str = ""
    flags: int = 0
    request: ReceivedRequest | None = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------- decoding


def any_value_to_python(value: AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` into the matching Python value (None when unset)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, which)


def attributes_to_dict(key_values: Iterable[Any]) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` into a plain dict."""
    return {kv.key: any_value_to_python(kv.value) for kv in key_values}


def _enum_suffix(enum_type: Any, number: int, prefix: str) -> str:
    try:
        name = enum_type.Name(number)
    except ValueError:
        return str(number)
    return name[len(prefix) :] if name.startswith(prefix) else name


def spans_from_request(request: ReceivedRequest) -> list[ReceivedSpan]:
    """Flatten an accepted traces request into ``ReceivedSpan`` objects."""
    out: list[ReceivedSpan] = []
    if request.signal != "traces" or request.message is None:
        return out
    for resource_spans in request.message.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=_enum_suffix(trace_pb2.Span.SpanKind, span.kind, "SPAN_KIND_"),
                        attributes=attributes_to_dict(span.attributes),
                        status_code=_enum_suffix(
                            trace_pb2.Status.StatusCode, span.status.code, "STATUS_CODE_"
                        ),
                        status_message=span.status.message,
                        events=[(e.name, attributes_to_dict(e.attributes)) for e in span.events],
                        links=[
                            ReceivedSpanLink(
                                trace_id=link.trace_id.hex(),
                                span_id=link.span_id.hex(),
                                attributes=attributes_to_dict(link.attributes),
                                trace_state=link.trace_state,
                            )
                            for link in span.links
                        ],
                        resource=resource,
                        scope_name=scope_spans.scope.name,
                        scope_version=scope_spans.scope.version,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        trace_state=span.trace_state,
                        flags=span.flags,
                        request=request,
                    )
                )
    return out


def metric_points_from_request(request: ReceivedRequest) -> list[ReceivedMetricPoint]:
    """Flatten an accepted metrics request into one ``ReceivedMetricPoint`` per data point."""
    out: list[ReceivedMetricPoint] = []
    if request.signal != "metrics" or request.message is None:
        return out
    temporality_enum = metrics_pb2.AggregationTemporality
    for resource_metrics in request.message.resource_metrics:
        resource = attributes_to_dict(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                temporality = None
                if kind in ("sum", "histogram", "exponential_histogram"):
                    temporality = _enum_suffix(
                        temporality_enum, data.aggregation_temporality, "AGGREGATION_TEMPORALITY_"
                    )
                common = {
                    "name": metric.name,
                    "kind": kind,
                    "unit": metric.unit,
                    "description": metric.description,
                    "resource": resource,
                    "scope_name": scope_metrics.scope.name,
                    "temporality": temporality,
                    "is_monotonic": data.is_monotonic if kind == "sum" else None,
                    "request": request,
                }
                for point in data.data_points:
                    values: dict[str, Any] = {
                        "value": None,
                        "count": None,
                        "sum": None,
                        "bucket_counts": [],
                        "explicit_bounds": [],
                    }
                    if kind in ("sum", "gauge"):
                        which = point.WhichOneof("value")
                        values["value"] = getattr(point, which) if which else None
                    else:
                        values["count"] = point.count
                        has_sum = kind == "summary" or point.HasField("sum")
                        values["sum"] = point.sum if has_sum else None
                        if kind == "histogram":
                            values["bucket_counts"] = list(point.bucket_counts)
                            values["explicit_bounds"] = list(point.explicit_bounds)
                        elif kind == "exponential_histogram":
                            values["bucket_counts"] = list(point.positive.bucket_counts)
                        if kind != "summary":
                            values["min"] = point.min if point.HasField("min") else None
                            values["max"] = point.max if point.HasField("max") else None
                    out.append(
                        ReceivedMetricPoint(
                            **common,
                            **values,
                            attributes=attributes_to_dict(point.attributes),
                            time_ns=point.time_unix_nano,
                            start_time_ns=point.start_time_unix_nano,
                            point=point,
                        )
                    )
    return out


def logs_from_request(request: ReceivedRequest) -> list[ReceivedLog]:
    """Flatten an accepted logs request into ``ReceivedLog`` objects."""
    out: list[ReceivedLog] = []
    if request.signal != "logs" or request.message is None:
        return out
    for resource_logs in request.message.resource_logs:
        resource = attributes_to_dict(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                out.append(
                    ReceivedLog(
                        body=any_value_to_python(record.body) if record.HasField("body") else None,
                        severity_number=int(record.severity_number),
                        severity_text=record.severity_text,
                        attributes=attributes_to_dict(record.attributes),
                        trace_id=record.trace_id.hex(),
                        span_id=record.span_id.hex(),
                        resource=resource,
                        scope_name=scope_logs.scope.name,
                        time_ns=record.time_unix_nano,
                        observed_time_ns=record.observed_time_unix_nano,
                        event_name=getattr(record, "event_name", ""),
                        flags=record.flags,
                        request=request,
                    )
                )
    return out


_ID_KEYS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON encodes trace/span ids as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {}
    for key, value in node.items():
        size = _ID_KEYS.get(key)
        if size is not None and isinstance(value, str) and len(value) == size * 2:
            # not hex: leave it for the protobuf parser to judge
            with contextlib.suppress(ValueError):
                value = base64.b64encode(bytes.fromhex(value)).decode("ascii")
        converted[key] = _hex_ids_to_base64(value)
    return converted


def _decompress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        try:
            return zlib.decompress(data)
        except zlib.error:
            return zlib.decompress(data, -zlib.MAX_WBITS)
    raise ValueError(f"unsupported encoding {encoding!r}")


def _sniff_grpc_encoding(data: bytes) -> str | None:
    """Recognise a still-compressed gRPC message (the server runs with decompression off).

    An Export*ServiceRequest starts with tag 0x0a; 0x1f is not a valid protobuf tag (wire
    type 7), and a zlib header is (0x78xx % 31 == 0), so the sniffing is unambiguous for
    messages produced by real exporters.
    """
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if len(data) >= 2 and data[0] == 0x78 and ((data[0] << 8) | data[1]) % 31 == 0:
        return "deflate"
    return None


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_self_signed_cert(hostname: str = "localhost") -> tuple[bytes, bytes]:
    """Create a self-signed (cert_pem, key_pem) valid for ``hostname``, localhost, 127.0.0.1.

    Uses the ``cryptography`` package when importable, otherwise the ``openssl`` CLI.
    The certificate is its own CA, so clients can trust it with the cert PEM as root.
    """
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _self_signed_with_openssl(hostname)
    return _self_signed_with_cryptography(hostname)


def _san_names(hostname: str) -> tuple[list[str], list[str]]:
    dns = list(dict.fromkeys([hostname, "localhost"]))
    ips = ["127.0.0.1"]
    try:
        import ipaddress

        ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        dns = ["localhost"]
        ips = list(dict.fromkeys([hostname, "127.0.0.1"]))
    return dns, ips


def _self_signed_with_cryptography(hostname: str) -> tuple[bytes, bytes]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    dns, ips = _san_names(hostname)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(d) for d in dns]
                + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def _self_signed_with_openssl(hostname: str) -> tuple[bytes, bytes]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("make_self_signed_cert needs the 'cryptography' package or 'openssl'")
    dns, ips = _san_names(hostname)
    alt_names = "\n".join(
        [f"DNS.{i} = {d}" for i, d in enumerate(dns, 1)]
        + [f"IP.{i} = {ip}" for i, ip in enumerate(ips, 1)]
    )
    config = f"""\
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no

[dn]
CN = {hostname}

[ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = @alt

[alt]
{alt_names}
"""
    with tempfile.TemporaryDirectory(prefix="otlp-cert-") as tmp:
        cfg, cert, key = (os.path.join(tmp, n) for n in ("openssl.cnf", "cert.pem", "key.pem"))
        with open(cfg, "w", encoding="ascii") as fh:
            fh.write(config)
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-sha256",
                "-days",
                "2",
                "-config",
                cfg,
                "-keyout",
                key,
                "-out",
                cert,
            ],
            check=True,
            capture_output=True,
        )
        with open(cert, "rb") as fh:
            cert_pem = fh.read()
        with open(key, "rb") as fh:
            key_pem = fh.read()
    return cert_pem, key_pem


# --------------------------------------------------------------------------- HTTP side


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], receiver: OTLPReceiver, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.receiver = receiver
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _HTTPHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the per-connection thread, so a slow TLS handshake blocks nobody else.
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # client went away / receiver stopping: not worth a traceback
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Drop kept-alive client connections so a stopped receiver really stops answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-test-receiver/1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(
        self,
        code: int,
        body: bytes = b"",
        content_type: str = "text/plain",
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        receiver = self.server.receiver
        path = self.path.split("?", 1)[0]
        signal = next((s for s in SIGNALS if path.endswith(f"/v1/{s}")), None)
        body = self._read_body()
        if signal is None:
            self._reply(404, b"unknown OTLP path\n")
            return
        limit = receiver._http_max_request_bytes
        if limit is not None and len(body) > limit:  # (as sent: compressed, if it is)
            receiver._record(ReceivedRequest(
                signal=signal, transport="http", path=path,
                headers={k.lower(): v for k, v in self.headers.items()},
                compressed="content-encoding" in {k.lower() for k in self.headers},
                content_type=self.headers.get("Content-Type"), message=None,
                status="RESOURCE_EXHAUSTED", error=f"payload too large ({len(body)} bytes)"))
            self._reply(413, f"request body of {len(body)} bytes is past {limit}\n".encode())
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        content_type_full = headers.get("content-type")
        content_type = (content_type_full or "").split(";", 1)[0].strip().lower()
        encoding = headers.get("content-encoding", "").strip().lower() or None
        if encoding == "identity":
            encoding = None
        request_cls, response_cls, _ = _SIGNAL_TYPES[signal]
        record = ReceivedRequest(
            signal=signal,
            transport="http",
            path=path,
            headers=headers,
            compressed=encoding is not None,
            content_type=content_type_full,
            message=None,
            encoding=encoding,
            peer=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        is_json = content_type == "application/json"
        try:
            if encoding is not None:
                body = _decompress(body, encoding)
            if is_json:
                message = request_cls()
                json_format.ParseDict(
                    _hex_ids_to_base64(json.loads(body or b"{}")),
                    message,
                    ignore_unknown_fields=True,
                )
            elif content_type in ("application/x-protobuf", "application/protobuf"):
                message = request_cls.FromString(body)
            else:
                record.status, record.error = "INVALID_ARGUMENT", f"unsupported {content_type!r}"
                receiver._record(record)
                self._reply(415, b"unsupported content type\n")
                return
        except Exception as exc:  # anything undecodable is the client's fault: 400
            record.status, record.error = "INVALID_ARGUMENT", f"{type(exc).__name__}: {exc}"
            receiver._record(record)
            self._reply(400, f"cannot decode request: {exc}\n".encode())
            return
        record.message = message

        failure = receiver._before_reply(record)
        if failure is not None:
            status, retry_after = failure
            code = HTTP_STATUS_FOR_GRPC.get(status, 500)
            extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            message = f"injected failure {status}"
            grpc_code = grpc.StatusCode[status].value[0]
            if is_json:
                body = json.dumps({"code": grpc_code, "message": message}).encode()
                self._reply(code, body, "application/json", extra)
            else:
                body = _rpc_status_bytes(grpc_code, message)
                self._reply(code, body, "application/x-protobuf", extra)
            return
        if is_json:
            self._reply(200, json_format.MessageToJson(response_cls()).encode(), "application/json")
        else:
            self._reply(200, response_cls().SerializeToString(), "application/x-protobuf")

    def _not_allowed(self) -> None:
        self._reply(405, b"only POST is supported\n")

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed


def _rpc_status_bytes(code: int, message: str) -> bytes:
    try:
        from google.rpc import status_pb2
    except ImportError:  # googleapis-common-protos missing: an empty body is fine too
        return b""
    return status_pb2.Status(code=code, message=message).SerializeToString()


def _retry_info_bytes(seconds: float) -> bytes:
    from google.rpc import error_details_pb2

    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(round(seconds * 1e9))
    return info.SerializeToString()


# --------------------------------------------------------------------------- receiver


class OTLPReceiver:
    """OTLP gRPC + HTTP receiver on 127.0.0.1 recording everything it gets.

    ``OTLPReceiver()`` does not listen until ``start()`` (or ``with OTLPReceiver() as r:``).
    Ports default to OS-chosen ones; after ``stop()``, ``start()`` reuses the same ports, so
    exporters configured with the old endpoints reconnect.
    """

    def __init__(
        self,
        grpc_port: int = 0,
        http_port: int = 0,
        *,
        tls: tuple[bytes, bytes] | None = None,
        start: bool = False,
        grpc_max_receive_bytes: int | None = None,
        http_max_request_bytes: int | None = None,
    ) -> None:
        """``grpc_max_receive_bytes``: a limit on a gRPC request, as an OpenTelemetry
        Collector has one (``max_recv_msg_size_mib``, 4 MiB by default): a request past it,
        on the wire or once decompressed, is refused with RESOURCE_EXHAUSTED "received
        message larger than max (N vs. LIMIT)" (on the wire by gRPC itself), and not
        recorded. Without it, 64 MiB on the wire, so that no test is refused by accident.

        ``http_max_request_bytes``: a limit on an HTTP request's body as sent (compressed,
        if it is), as a proxy or a Collector (``max_request_body_size``) has one: a request
        past it is read, answered 413 Payload Too Large and recorded as rejected (status
        RESOURCE_EXHAUSTED, no message). Without it, no limit."""
        self._grpc_max_receive_bytes = grpc_max_receive_bytes
        self._http_max_request_bytes = http_max_request_bytes
        self._grpc_port = grpc_port
        self._http_port = http_port
        self._tls = tls
        self._lock = threading.Lock()
        self._accepted: list[ReceivedRequest] = []
        self._rejected: list[ReceivedRequest] = []
        self._listeners: list[Callable[[ReceivedRequest], None]] = []
        self._failure: str | None = None
        self._failure_count: int | None = None
        self._failure_retry_after: float | None = None
        self._delay = 0.0
        self._stopping = threading.Event()
        self._grpc_server: grpc.Server | None = None
        self._grpc_executor: futures.ThreadPoolExecutor | None = None
        self._http_server: _HTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._cert_file: str | None = None
        if tls is not None:
            self._tmpdir = tempfile.mkdtemp(prefix="otlp-receiver-")
            weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
            self._cert_file = os.path.join(self._tmpdir, "cert.pem")
            with open(self._cert_file, "wb") as fh:
                fh.write(tls[0])
        if start:
            self.start()

    # ---------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._grpc_server is not None

    def start(self) -> OTLPReceiver:
        """Start both servers (no-op if running). Raises OSError if a port is taken."""
        if self.running:
            return self
        self._stopping.clear()
        self._start_grpc()
        try:
            self._start_http()
        except BaseException:
            self._stop_grpc()
            raise
        return self

    def start_on(self, grpc_port: int, http_port: int) -> OTLPReceiver:
        """Start on specific ports (e.g. ones taken from ``free_port()`` earlier)."""
        if self.running:
            raise RuntimeError("receiver already running; stop() it first")
        self._grpc_port, self._http_port = grpc_port, http_port
        return self.start()

    def stop(self) -> None:
        """Stop both servers, dropping open connections and freeing the ports."""
        self._stopping.set()
        self._stop_http()
        self._stop_grpc()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_grpc(self) -> None:
        executor = futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="otlp-recv-grpc")
        server = grpc.server(
            executor,
            options=[
                ("grpc.so_reuseport", 0),  # a taken port must fail, not be shared
                ("grpc.per_message_decompression", 0),  # we decompress, to see the encoding
                ("grpc.max_receive_message_length",
                 self._grpc_max_receive_bytes or _MAX_MESSAGE_BYTES),
            ],
        )
        handlers = []
        for signal, (request_cls, response_cls, service) in _SIGNAL_TYPES.items():
            handler = grpc.unary_unary_rpc_method_handler(
                self._make_grpc_export(signal, request_cls, response_cls, service),
                request_deserializer=lambda data: data,
                response_serializer=response_cls.SerializeToString,
            )
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": handler}))
        server.add_generic_rpc_handlers(tuple(handlers))
        address = f"127.0.0.1:{self._grpc_port}"
        try:
            if self._tls is not None:
                cert, key = self._tls
                port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            executor.shutdown(wait=False)
            raise OSError(f"cannot bind gRPC receiver to {address}: {exc}") from exc
        if not port:
            executor.shutdown(wait=False)
            raise OSError(f"cannot bind gRPC receiver to {address}")
        server.start()
        self._grpc_port = port
        self._grpc_server, self._grpc_executor = server, executor

    def _stop_grpc(self) -> None:
        server, executor = self._grpc_server, self._grpc_executor
        self._grpc_server = self._grpc_executor = None
        if server is not None:
            server.stop(grace=None).wait(5)
        if executor is not None:
            executor.shutdown(wait=False)

    def _start_http(self) -> None:
        context = None
        if self._tls is not None:
            assert self._tmpdir is not None and self._cert_file is not None
            key_file = os.path.join(self._tmpdir, "key.pem")
            with open(key_file, "wb") as fh:
                fh.write(self._tls[1])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self._cert_file, key_file)
        server = _HTTPServer(("127.0.0.1", self._http_port), self, context)
        self._http_port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"otlp-recv-http-{self._http_port}",
            daemon=True,
        )
        thread.start()
        self._http_server, self._http_thread = server, thread

    def _stop_http(self) -> None:
        server, thread = self._http_server, self._http_thread
        self._http_server = self._http_thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
        if thread is not None:
            thread.join(5)

    # ---------------------------------------------------------------- addresses

    def _port(self, port: int) -> int:
        if not port:
            raise RuntimeError("receiver has no port yet: start() it first")
        return port

    @property
    def grpc_port(self) -> int:
        return self._port(self._grpc_port)

    @property
    def http_port(self) -> int:
        return self._port(self._http_port)

    @property
    def grpc_endpoint(self) -> str:
        """``127.0.0.1:PORT`` (use with insecure=True, or TLS credentials when ``tls`` given)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` when serving TLS); append ``/v1/traces``."""
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def tls(self) -> bool:
        return self._tls is not None

    @property
    def cert_file(self) -> str | None:
        """Path of a PEM file with the TLS certificate (to trust as CA), or None without TLS."""
        return self._cert_file

    # ---------------------------------------------------------------- behaviour knobs

    def set_failure(
        self, status: str | None, count: int | None = None, retry_after: float | None = None
    ) -> None:
        """Fail the next ``count`` export requests (all if None) with gRPC status ``status``.

        HTTP requests get the matching HTTP code (see ``HTTP_STATUS_FOR_GRPC``, else 500).
        ``retry_after`` (seconds) adds a ``Retry-After`` header (HTTP) / ``RetryInfo``
        trailer (gRPC), which the SDK exporters use as their retry backoff.
        ``set_failure(None)`` restores normal operation.
        """
        if count is not None and count <= 0:
            status = None
        if status is not None:
            status = status.upper()
            if status not in grpc.StatusCode.__members__ or status == "OK":
                raise ValueError(f"not a gRPC error status name: {status!r}")
        with self._lock:
            self._failure = status
            self._failure_count = None if status is None else count
            self._failure_retry_after = None if status is None else retry_after

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (requests are recorded after the delay)."""
        self._delay = max(0.0, float(seconds))

    def add_listener(self, callback: Callable[[ReceivedRequest], None]) -> None:
        """Call ``callback(request)`` for each accepted request (from a server thread)."""
        with self._lock:
            self._listeners.append(callback)

    # ---------------------------------------------------------------- recording

    def _before_reply(self, record: ReceivedRequest) -> tuple[str, float | None] | None:
        """Apply delay and injected failures and record the request.

        Returns None to answer normally, else (gRPC status name, retry_after seconds).
        """
        if self._delay:
            self._stopping.wait(self._delay)
        with self._lock:
            failure, retry_after = self._failure, self._failure_retry_after
            if failure is not None and self._failure_count is not None:
                self._failure_count -= 1
                if self._failure_count <= 0:
                    self._failure = self._failure_count = self._failure_retry_after = None
        if failure is not None:
            record.status, record.error = failure, "injected failure"
        self._record(record)
        return None if failure is None else (failure, retry_after)

    def _record(self, record: ReceivedRequest) -> None:
        with self._lock:
            if record.status == "OK":
                self._accepted.append(record)
                listeners = list(self._listeners)
            else:
                self._rejected.append(record)
                listeners = []
        for listener in listeners:
            try:
                listener(record)
            except Exception:  # a broken listener must not break the receiver
                import traceback

                traceback.print_exc()

    def _make_grpc_export(
        self, signal: str, request_cls: type[Message], response_cls: type[Message], service: str
    ) -> Callable[[bytes, grpc.ServicerContext], Message]:
        def export(data: bytes, context: grpc.ServicerContext) -> Message:
            headers: dict[str, str] = {}
            for key, value in context.invocation_metadata():
                key = key.lower()
                headers[key] = value if isinstance(value, str) else value.hex()
            encoding = _sniff_grpc_encoding(data)
            if encoding is not None:
                # grpc strips grpc-encoding from the metadata; restore what we detected
                headers["grpc-encoding"] = encoding
            record = ReceivedRequest(
                signal=signal,
                transport="grpc",
                path=f"/{service}/Export",
                headers=headers,
                compressed=encoding is not None,
                content_type="application/grpc",
                message=None,
                encoding=encoding,
                peer=context.peer(),
            )
            try:
                payload = _decompress(data, encoding) if encoding else data
                record.message = request_cls.FromString(payload)
            except (OSError, EOFError, ValueError, zlib.error, DecodeError) as exc:
                record.status, record.error = "INVALID_ARGUMENT", f"{type(exc).__name__}: {exc}"
                self._record(record)
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode request: {exc}")
            limit = self._grpc_max_receive_bytes
            if limit is not None and len(payload) > limit:  # (as grpc-go checks it)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              "grpc: received message after decompression larger than max "
                              f"({len(payload)} vs. {limit})")
            failure = self._before_reply(record)
            if failure is not None:
                status, retry_after = failure
                if retry_after is not None:
                    context.set_trailing_metadata(
                        (("google.rpc.retryinfo-bin", _retry_info_bytes(retry_after)),)
                    )
                context.abort(grpc.StatusCode[status], f"injected failure {status}")
            return response_cls()

        return export

    # ---------------------------------------------------------------- views

    def requests(self, signal: str | None = None) -> list[ReceivedRequest]:
        """Accepted requests, optionally only those of ``signal``."""
        with self._lock:
            items = list(self._accepted)
        return [r for r in items if signal is None or r.signal == signal]

    def rejected(self, signal: str | None = None) -> list[ReceivedRequest]:
        """Requests answered with an error (injected failure or undecodable)."""
        with self._lock:
            items = list(self._rejected)
        return [r for r in items if signal is None or r.signal == signal]

    def spans(self) -> list[ReceivedSpan]:
        return [s for r in self.requests("traces") for s in spans_from_request(r)]

    def metrics(self) -> list[ReceivedMetricPoint]:
        return [p for r in self.requests("metrics") for p in metric_points_from_request(r)]

    def logs(self) -> list[ReceivedLog]:
        return [rec for r in self.requests("logs") for rec in logs_from_request(r)]

    def clear(self) -> None:
        """Forget everything received (accepted and rejected)."""
        with self._lock:
            self._accepted.clear()
            self._rejected.clear()

    # ---------------------------------------------------------------- waiting

    def wait_for(
        self,
        predicate: Callable[[OTLPReceiver], bool],
        timeout: float = 10.0,
        interval: float = 0.05,
    ) -> bool:
        """Poll ``predicate(self)`` until it is true (-> True) or ``timeout`` passes (-> False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def _summary(self) -> str:
        spans = self.spans()
        logs = self.logs()
        metric_names = sorted({p.name for p in self.metrics()})
        return (
            f"received {len(spans)} span(s) {[s.name for s in spans]}, "
            f"{len(logs)} log(s) {[lg.body for lg in logs][:20]}, "
            f"metrics {metric_names}; {len(self.rejected())} rejected request(s); "
            f"grpc port {self._grpc_port}, http port {self._http_port}"
        )

    def wait_for_spans(
        self, n: int, timeout: float = 10.0, name: str | None = None
    ) -> list[ReceivedSpan]:
        """Wait for at least ``n`` spans (named ``name`` if given) and return them."""

        def matching() -> list[ReceivedSpan]:
            return [s for s in self.spans() if name is None or s.name == name]

        if self.wait_for(lambda _: len(matching()) >= n, timeout):
            return matching()
        what = f"spans named {name!r}" if name is not None else "spans"
        raise AssertionError(
            f"timed out after {timeout}s waiting for {n} {what}; got {len(matching())}. "
            + self._summary()
        )

    def wait_for_logs(self, n: int, timeout: float = 10.0, body: Any = None) -> list[ReceivedLog]:
        """Wait for at least ``n`` log records (with body == ``body`` if given); return them."""

        def matching() -> list[ReceivedLog]:
            return [lg for lg in self.logs() if body is None or lg.body == body]

        if self.wait_for(lambda _: len(matching()) >= n, timeout):
            return matching()
        what = f"logs with body {body!r}" if body is not None else "logs"
        raise AssertionError(
            f"timed out after {timeout}s waiting for {n} {what}; got {len(matching())}. "
            + self._summary()
        )

    def wait_for_metric(
        self,
        name: str,
        timeout: float = 10.0,
        where: Callable[[ReceivedMetricPoint], bool] | None = None,
    ) -> list[ReceivedMetricPoint]:
        """Wait until a point of metric ``name`` (matching ``where``) arrives; return them all."""

        def matching() -> list[ReceivedMetricPoint]:
            return [p for p in self.metrics() if p.name == name and (where is None or where(p))]

        if self.wait_for(lambda _: bool(matching()), timeout):
            return matching()
        raise AssertionError(
            f"timed out after {timeout}s waiting for metric {name!r}. " + self._summary()
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<OTLPReceiver {state} grpc={self._grpc_port} http={self._http_port}>"


# --------------------------------------------------------------------------- manual use


def _print_request(request: ReceivedRequest) -> None:
    tag = f"[{request.transport}{' gz' if request.compressed else ''}]"
    for span in spans_from_request(request):
        print(
            f"{tag} span {span.name!r} kind={span.kind} trace={span.trace_id} "
            f"span={span.span_id} parent={span.parent_span_id or '-'} "
            f"status={span.status_code} attrs={span.attributes}",
            flush=True,
        )
    for point in metric_points_from_request(request):
        shown = (
            point.value
            if point.kind in ("sum", "gauge")
            else (f"count={point.count} sum={point.sum}")
        )
        print(
            f"{tag} metric {point.name!r} {point.kind} {shown} {point.unit} "
            f"attrs={point.attributes}",
            flush=True,
        )
    for log in logs_from_request(request):
        print(
            f"{tag} log {log.severity_text or log.severity_number} {log.body!r} "
            f"trace={log.trace_id or '-'} attrs={log.attributes}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal as signal_module

    parser = argparse.ArgumentParser(description="Print OTLP data sent to this receiver.")
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--tls", action="store_true", help="serve TLS with a self-signed cert")
    args = parser.parse_args(argv)

    def _interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal_module.signal(signal_module.SIGTERM, _interrupt)
    tls = make_self_signed_cert() if args.tls else None
    receiver = OTLPReceiver(args.grpc_port, args.http_port, tls=tls)
    receiver.add_listener(_print_request)
    with receiver:
        print(f"OTLP gRPC on {receiver.grpc_endpoint}  (grpc port {receiver.grpc_port})")
        print(f"OTLP HTTP on {receiver.http_endpoint}  (http port {receiver.http_port})")
        if receiver.cert_file:
            print(f"TLS certificate: {receiver.cert_file}")
        print("Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
