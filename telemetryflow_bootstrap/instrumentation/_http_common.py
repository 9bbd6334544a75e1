"""What every HTTP instrumentation (clients and servers) shares: suppression checks, URL and
header redaction, excluded URLs, header capture, duration buckets.

Hot-path rule: everything here that runs per request is a plain function over precomputed
data (compiled regexes, frozensets); configuration is read once, at patch time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    get_value,
)

# Bucket boundaries the HTTP semantic conventions recommend for request durations (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0)

# Headers whose values are never recorded, whatever the capture settings say.
ALWAYS_REDACTED_HEADERS = frozenset({"authorization", "cookie", "set-cookie",
                                     "proxy-authorization", "x-telemetryflow-key-secret"})
# Query parameters the URL semantic conventions say to redact.
_SENSITIVE_QUERY_KEYS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature"})
REDACTED = "REDACTED"


def suppressed() -> bool:
    """True while our exporter runs, or inside ``suppress_instrumentation()``."""
    return bool(get_value(_SUPPRESS_INSTRUMENTATION_KEY)
                or get_value("suppress_instrumentation"))


def http_suppressed() -> bool:
    """True inside an outer HTTP client span (requests → urllib3 → http.client): the
    outermost instrumented layer makes the one CLIENT span."""
    return suppressed() or bool(get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))


def redact_url(url: str) -> str:
    """``url`` without credentials: userinfo becomes REDACTED:REDACTED, signature-like query
    values become REDACTED. Never raises; an unparsable URL comes back unchanged."""
    if "@" not in url and "?" not in url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{REDACTED}:{REDACTED}@{hostport}" if ":" in userinfo \
                else f"{REDACTED}@{hostport}"
        query = parts.query
        if query:
            query = "&".join(_redact_query_item(item) for item in query.split("&"))
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return url


def redact_query(query: str) -> str:
    """A bare query string (``url.query`` of a server span) with signature-like values
    REDACTED; the same string back when nothing needed redacting."""
    if "=" not in query:
        return query
    items = query.split("&")
    redacted = [_redact_query_item(item) for item in items]
    return query if redacted == items else "&".join(redacted)


def _redact_query_item(item: str) -> str:
    key, sep, _ = item.partition("=")
    return f"{key}={REDACTED}" if sep and key.lower() in _SENSITIVE_QUERY_KEYS else item


class ExcludedUrls:
    """``TELEMETRYFLOW_EXCLUDED_URLS``: regexes searched in the full URL (health checks)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = tuple(patterns)
        self._regex = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches(self, url: str) -> bool:
        return self._regex is not None and self._regex.search(url) is not None


class HeaderCapture:
    """Optional header capture (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_<SIDE>_<DIR>``).

    Values of sensitive headers (Authorization, Cookie, ... plus
    ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``) are recorded as REDACTED.
    """

    def __init__(self, side: str, direction: str,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = f"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_{side.upper()}_{direction.upper()}"
        self._names = tuple(h.strip().lower() for h in env.get(name, "").split(",") if h.strip())
        sanitize = env.get("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", "")
        self._redacted = ALWAYS_REDACTED_HEADERS | {
            h.strip().lower() for h in sanitize.split(",") if h.strip()}
        self._prefix = f"http.{direction.lower()}.header."

    def __bool__(self) -> bool:
        return bool(self._names)

    def attributes(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]
                   ) -> dict[str, list[str]]:
        """Semconv attributes ``http.request.header.<name>`` (lists of values)."""
        if not self._names:
            return {}
        items = headers.items() if isinstance(headers, Mapping) else headers
        found: dict[str, list[str]] = {}
        for key, value in items:
            lower = key.lower()
            if lower in self._names:
                shown = REDACTED if lower in self._redacted else str(value)
                found.setdefault(self._prefix + lower, []).append(shown)
        return found
