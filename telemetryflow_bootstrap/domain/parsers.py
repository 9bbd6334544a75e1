"""Parsers for environment-variable values (stdlib only).

Each parser turns a raw string into a value or raises ``ValueError`` whose text says what is
expected; the environment reader turns that into a ``Problem`` naming the variable and value.
Values are never silently replaced by a default: a malformed value is always reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

Parser = Callable[[str], Any]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_UNIT_SUFFIX = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)\s*[a-zA-Z]+")
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_HOST = re.compile(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:.]+\]")


def _unprintable(value: str) -> bool:
    """Control characters, or surrogates (undecodable bytes that ``os.fsdecode`` escaped)."""
    return any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected a boolean: true/false, 1/0, yes/no or on/off")


def _number(raw: str, what: str, unit: str) -> float:
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    if _UNIT_SUFFIX.fullmatch(text):
        raise ValueError(f"expected {what} in {unit} without a unit suffix, e.g. 10")
    raise ValueError(f"expected {what} in {unit}")


def integer(*, minimum: int = 0, maximum: int = 2**31 - 1, unit: str = "") -> Parser:
    """A whole number in ``[minimum, maximum]``: the upper bound keeps absurd values (a queue of
    10**5000 items, a timer of 10**20 ms that overflows a thread wait) out of the SDK."""
    unit_text = f" ({unit})" if unit else ""
    expected = f"expected a whole number{unit_text} from {minimum} to {maximum}"

    def parse(raw: str) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            if _UNIT_SUFFIX.fullmatch(text):
                raise ValueError(
                    f"expected a whole number{unit_text} without a unit suffix, e.g. 5000"
                )
            raise ValueError(expected)
        if len(text.lstrip("+-0")) > len(str(maximum)):
            raise ValueError(expected)
        value = int(text)
        if not minimum <= value <= maximum:
            raise ValueError(expected)
        return value

    return parse


MAX_SECONDS = 86_400.0  # a day: beyond it a thread wait overflows, and it is surely a typo


def seconds(*, from_unit: str = "seconds", positive: bool = True) -> Parser:
    """A duration; given in ``from_unit`` (seconds or milliseconds), returned in seconds."""
    scale = 1000.0 if from_unit == "milliseconds" else 1.0
    limit = MAX_SECONDS * scale

    def parse(raw: str) -> float:
        value = _number(raw, "a number", from_unit)
        if value < 0 or (positive and value == 0) or not value <= limit:
            raise ValueError(f"expected a positive number of {from_unit} up to {limit:g}")
        return value / scale

    return parse


def ratio(raw: str) -> float:
    value = _number(raw, "a ratio", "the range 0..1")
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a ratio between 0 and 1, e.g. 0.25")
    return value


def choice(*choices: str, aliases: dict[str, str] | None = None) -> Parser:
    mapping = {c: c for c in choices}
    mapping.update(aliases or {})

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value in mapping:
            return mapping[value]
        raise ValueError("expected one of: " + ", ".join(choices))

    return parse


def text(raw: str) -> str:
    value = raw.strip()
    if _unprintable(value):
        raise ValueError("expected printable UTF-8 text")
    return value


def pem_file(raw: str) -> str:
    """The path of a readable file of PEM CA certificates. Checked when read, because
    otherwise each exporter finds out on its own at its first export: one warning per
    signal for a missing file, and for a file that is not PEM gRPC's C core prints a dozen
    lines on the program's stderr, none naming the variable."""
    path = text(raw)
    try:
        with open(path, "rb") as file:
            content = file.read(4 << 20)
    except OSError as exc:
        raise ValueError(
            f"expected the path of a readable PEM file ({exc.strerror or exc})"
        ) from None
    if b"-----BEGIN CERTIFICATE-----" not in content:
        raise ValueError("expected a PEM file of CA certificates (-----BEGIN CERTIFICATE-----)")
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=content.decode(
            "ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"expected a PEM file of CA certificates ({exc})") from None
    return path


def name_list(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    for name in names:
        if not _NAME.fullmatch(name):
            raise ValueError("expected a comma-separated list of names, e.g. requests,flask")
    return names


_BUILT_IN_PROPAGATORS = frozenset({"tracecontext", "baggage", "none"})


def propagator_names(raw: str) -> tuple[str, ...]:
    """``name_list`` of propagators that exist: ``tracecontext``, ``baggage``, ``none``, or the
    name of an installed ``opentelemetry_propagator`` entry point (b3, jaeger, xray... come
    from packages). Checked here, so that a name nobody can load is one line naming the
    variable (and, in strict mode, a refused launch) instead of a failure later; the entry
    points are only scanned when a name is not built in."""
    names = name_list(raw)
    unknown = [name for name in names if name not in _BUILT_IN_PROPAGATORS]
    if unknown:
        from importlib.metadata import entry_points

        installed = {point.name.lower() for point in entry_points(group="opentelemetry_propagator")}
        missing = [name for name in unknown if name not in installed]
        if missing:
            raise ValueError(
                f"propagator {', '.join(missing)} is not installed: expected tracecontext, "
                "baggage, none or the name of an installed propagator package's entry point "
                "(e.g. b3 from opentelemetry-propagator-b3)"
            )
    return names


def regex_list(raw: str) -> tuple[str, ...]:
    patterns = tuple(part.strip() for part in raw.split(",") if part.strip())
    for pattern in patterns:
        if _unprintable(pattern):
            raise ValueError("expected comma-separated regular expressions in printable UTF-8")
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"expected comma-separated regular expressions ({exc})") from None
    return patterns


def key_value_list(raw: str) -> tuple[tuple[str, str], ...]:
    """``k=v,k2=v2`` as in OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS (values
    percent-decoded)."""
    pairs = []
    for part in raw.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = unquote(key.strip()), unquote(value.strip())
        if not sep or not key or _unprintable(key + value):
            raise ValueError("expected comma-separated key=value pairs, e.g. team=shop,region=eu")
        pairs.append((key, value))
    return tuple(pairs)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
GRPC_METADATA_NAME = re.compile(r"[0-9a-z_.\-]+")


def header_list(raw: str) -> tuple[tuple[str, str], ...]:
    """``key_value_list`` for export headers, checked the way the transports will check
    them: a name of HTTP token characters, a value of printable ASCII. Checked here, once,
    because the transports do it per export (every export fails, and gRPC's C core prints
    its complaint on the program's stderr). The message names the header, never its value.
    (gRPC's stricter rule for names depends on the protocol: see ``config.load_config``.)"""
    pairs = key_value_list(raw)
    for key, value in pairs:
        if not _HEADER_NAME.fullmatch(key):
            raise ValueError(
                f"header name {key.encode('ascii', 'backslashreplace').decode()!r} is not "
                "valid: expected letters, digits and !#$%&'*+-.^_`|~ (no spaces)"
            )
        if not all(" " <= ch <= "~" for ch in value):
            raise ValueError(
                f"the value of header {key!r} is not valid: expected printable ASCII"
            )
    return pairs


def endpoint(raw: str) -> str:
    """An OTLP endpoint: ``host``, ``host:port``, ``http://host:port[/path]``, ``https://…``."""
    value = raw.strip()
    expected = "expected host:port, http://host:port or https://host:port, e.g. collector:4317"
    if not value or _unprintable(value) or any(ch.isspace() for ch in value):
        raise ValueError(expected)
    has_scheme = "://" in value
    try:
        parts = urlsplit(value if has_scheme else f"//{value}")
        port = parts.port  # raises ValueError for non-numeric or out-of-range ports
    except ValueError:
        raise ValueError(expected) from None
    if has_scheme and parts.scheme not in ("http", "https", "grpc", "grpcs"):
        raise ValueError(expected)
    host = parts.hostname or ""
    netloc_host = parts.netloc.rpartition("@")[2]
    if port is not None:
        netloc_host = netloc_host.rsplit(":", 1)[0]
    if not host or not _HOST.fullmatch(netloc_host) or port == 0:
        raise ValueError(expected)
    if not has_scheme and (parts.path or parts.query):
        raise ValueError(expected)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(expected + " (no query string or fragment)")
    return value


def log_level(raw: str) -> str:
    return choice(
        "debug", "info", "warn", "error", "off", aliases={"warning": "warn", "none": "off"}
    )(raw)
