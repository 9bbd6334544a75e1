"""What every HTTP instrumentation (clients and servers) shares: suppression checks, URL and
header redaction, excluded URLs, header capture, duration buckets, and the sampler's verdict
known before a span is built (``SamplerShortcut``).

Hot-path rule: everything here that runs per request is a plain function over precomputed
data (compiled regexes, frozensets); configuration is read once, at patch time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    Context,
)
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

from ..infrastructure.current_context import get_current

# Bucket boundaries the HTTP semantic conventions recommend for request durations (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0)

# Headers whose values are never recorded, whatever the capture settings say.
ALWAYS_REDACTED_HEADERS = frozenset({"authorization", "cookie", "set-cookie",
                                     "proxy-authorization", "x-telemetryflow-key-secret"})
# Query parameters whose values are REDACTED (keys compared case-insensitively): the four the
# URL semantic conventions name (AWS SigV2, Azure SAS, Google signed URLs), plus the AWS SigV4
# presigned-URL credentials. Why more: the conventions say to scrub sensitive content an
# instrumentation can identify and call their list subject to change; X-Amz-Signature is
# SigV4's ``Signature``, X-Amz-Credential carries the access key id (SigV2's AWSAccessKeyId)
# and X-Amz-Security-Token is a session credential. Anyone holding a presigned URL can use it
# until it expires, so its exported copy must not be usable.
_SENSITIVE_QUERY_KEYS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature",
                                   "x-amz-signature", "x-amz-credential",
                                   "x-amz-security-token"})
REDACTED = "REDACTED"


def suppressed() -> bool:
    """True while our exporter runs, or inside ``suppress_instrumentation()``."""
    # One context lookup for both keys: this runs on every instrumented call.
    current = get_current()
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation"))


def http_suppressed() -> bool:
    """True inside an outer HTTP client span (requests → urllib3 → http.client): the
    outermost instrumented layer makes the one CLIENT span."""
    current = get_current()
    return bool(current.get(_SUPPRESS_INSTRUMENTATION_KEY)
                or current.get("suppress_instrumentation")
                or current.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))


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
    """Optional header capture (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_<SIDE>_<DIR>``),
    with the syntax of opentelemetry-python-contrib, so settings carry over unchanged.

    Both that variable and ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` are
    comma-separated lists of regular expressions compared with header names without regard
    to case. A header is captured when an entry matches its whole name (``X-.*``: every
    header starting with ``X-``; ``.*``: all of them). Its value is recorded as REDACTED when
    a sanitize entry matches anywhere in its name (``session`` redacts ``X-Session-Token``,
    as ``.*session.*`` does) or it is one of ``ALWAYS_REDACTED_HEADERS``. An entry that does
    not compile is taken as a plain name, with a warning: a typo must neither break the
    program nor let a value through that the user meant to hide.

    Hot path: the lists are compiled once, here. A plain name (letters, digits, ``-``, ``_``)
    is a set lookup, never a regex; and the verdict on each header name is remembered, so a
    request pays one dict lookup per header. Header names come from the network, so at most
    ``_REMEMBERED_NAMES`` verdicts are kept; past that, names are judged afresh each time.
    """

    __slots__ = ("_capture", "_names", "_prefix", "_sanitize", "_verdicts")

    def __init__(self, side: str, direction: str,
                 environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        name = f"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_{side.upper()}_{direction.upper()}"
        names, patterns = _plain_and_patterns(env.get(name, ""), name)
        self._names = frozenset(names)
        self._capture = _one_regex(patterns)
        sanitize_name = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
        # (searched, so a plain name there is a pattern as well: it redacts every header
        # whose name contains it)
        plain, patterns = _plain_and_patterns(env.get(sanitize_name, ""), sanitize_name)
        self._sanitize = _one_regex([*map(re.escape, plain), *patterns])
        self._prefix = f"http.{direction.lower()}.header."
        # header name as received -> (attribute name, redacted) when captured, else None
        self._verdicts: dict[Any, tuple[str, bool] | None] = {}

    def __bool__(self) -> bool:
        return bool(self._names) or self._capture is not None

    def attributes(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]
                   ) -> dict[str, list[str]]:
        """Semconv attributes ``http.request.header.<name>`` (lists of values)."""
        if not self:
            return {}
        items = headers.items() if isinstance(headers, Mapping) else headers
        verdicts = self._verdicts
        found: dict[str, list[str]] = {}
        for key, value in items:
            verdict = verdicts.get(key, _UNJUDGED)
            if verdict is _UNJUDGED:
                verdict = self._judge(key)
                if len(verdicts) < _REMEMBERED_NAMES:
                    verdicts[key] = verdict
            if verdict is not None:
                attribute, redacted = verdict
                shown = REDACTED if redacted else _text(value)
                found.setdefault(attribute, []).append(shown)
        return found

    def _judge(self, key: Any) -> tuple[str, bool] | None:
        lower = _text(key).lower()
        capture = self._capture
        if lower not in self._names and (capture is None or capture.fullmatch(lower) is None):
            return None
        sanitize = self._sanitize
        redacted = lower in ALWAYS_REDACTED_HEADERS or (
            sanitize is not None and sanitize.search(lower) is not None)
        return self._prefix + lower, redacted


# Verdicts kept per HeaderCapture (see there); a name past the limit is judged each time.
_REMEMBERED_NAMES = 512
_UNJUDGED: Any = object()
# A list entry made of these characters alone is a plain header name (matched by equality);
# anything else is a regular expression (``.`` included, as in the contrib syntax).
_PLAIN_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _plain_and_patterns(value: str, variable: str) -> tuple[list[str], list[str]]:
    """The entries of a comma-separated list, as lower-case plain names and as regexes
    (each one checked to compile; one that does not becomes a plain name)."""
    plain: list[str] = []
    patterns: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        if _PLAIN_HEADER_NAME.fullmatch(entry):
            plain.append(entry.lower())
            continue
        try:
            re.compile(entry)
        except re.error as exc:
            from .. import _diagnostics

            _diagnostics.warn_every_minute(
                f"header-pattern:{variable}:{entry}",
                f"{variable}: {entry!r} is not a valid regular expression ({exc}); it is "
                "matched as a plain header name")
            plain.append(entry.lower())
        else:
            patterns.append(entry)
    return plain, patterns


def _one_regex(patterns: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation of ``patterns`` (each in its own group, so an
    anchor or ``|`` inside one stays inside it), or None for an empty list."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _text(value: Any) -> str:
    """A header name or value as text (a server layer or a caller may hand us bytes)."""
    if type(value) is str:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


# ----- the sampler's verdict before a span is built --------------------------------------

# Which delegate a ParentBased sampler asks, by the parent's kind (ParentBased's private
# attribute names: one without them is simply not recognised).
# (in the order of leaf_spans.SAMPLER_DELEGATES)
_ROOT, _REMOTE_SAMPLED, _REMOTE_NOT_SAMPLED, _LOCAL_SAMPLED, _LOCAL_NOT_SAMPLED = range(5)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_NOT_SAMPLED_RANDOM = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)
# The last hex digit of a W3C ``traceparent`` (its flags) when the sampled bit is set.
_SAMPLED_DIGITS = frozenset("13579bdfBDF")
# The parent of a new trace (what extracting a carrier without trace headers gives).
EMPTY_CONTEXT = Context()
# The key set_span_in_context keeps a span under (asked of the API, not imported: private).
(SPAN_KEY,) = set_span_in_context(INVALID_SPAN, EMPTY_CONTEXT)
_UNKNOWN: Any = object()


class Verdict:
    """The sampler's verdict on a server span, known before it is built
    (``SamplerShortcut.decide``): the parent context and the parent's span context (``None``
    for a root), the trace id already drawn for a root (``None``: not drawn yet), and
    whether the span is sampled."""

    __slots__ = ("parent", "parent_span", "sampled", "trace_id")

    def __init__(self, parent: Context, parent_span: SpanContext | None,
                 trace_id: int | None, sampled: bool) -> None:
        self.parent = parent
        self.parent_span = parent_span
        self.trace_id = trace_id
        self.sampled = sampled


class SamplerShortcut:
    """Tells, before any span attribute is built, whether the tracer's sampler drops a
    server span, and makes the very span the SDK would have made for a drop.

    An unsampled request still pays for its duration point, but nothing of what only a
    recorded span keeps (attributes, header capture). Only samplers of the SDK's own classes
    are recognised (always on/off, trace-id ratio, parent-based made of these); their
    verdict does not depend on the span's name, kind or attributes. Where it depends on the
    trace id (a root under a ratio strictly between 0 and 1: ``TELEMETRYFLOW_SAMPLE_RATE=
    0.1``), the id is drawn here, from the tracer's id generator as the SDK would draw it,
    and shown to the sampler: a dropped root takes the unsampled way with that id, a kept
    one is started with it (``TelemetryMiddleware.open(trace_id=)``: a second draw would be
    a second, independent verdict). That needs the leaf tracer, which takes the id; without
    it (``draws_ids`` false) such roots go the usual way. Anything else (another sampler, an
    SDK Tracer of an unknown shape, the SDK's own span metrics switched on, a disabled
    tracer) answers ``None``: the caller starts its span with ``tracer.start_span`` as
    always. The span made here mirrors the SDK's for a ``DROP`` (``Tracer.start_span``,
    opentelemetry-sdk 1.45): the parent's trace id, trace state and random-trace-id flag,
    else a new trace id; a new span id; not sampled.
    """

    __slots__ = ("_draws_ids", "_drops", "_root", "_sampler", "_tracer")

    def __init__(self, tracer: Any, draws_ids: bool = False) -> None:
        self._tracer = tracer
        self._draws_ids = draws_ids
        self._sampler: Any = _UNKNOWN
        self._drops: tuple[bool, ...] | None = None
        self._root: Callable[[None, int], bool] | None = None

    def decide(self, carrier: Mapping[str, str] | None, propagator: Any, getter: Any
               ) -> Verdict | None:
        """The verdict on a span started under what ``carrier`` holds, when known without
        its attributes, else ``None``. A dropped span's verdict comes with its parent (the
        carrier extracted by ``propagator`` and ``getter``, only when the answer depends on
        it); a kept one only for a root whose id was drawn. Nothing else is drawn, so the
        caller may still decide not to start a span at all (an excluded URL)."""
        tracer = self._tracer
        drops = self._current_drops()
        if drops is None:
            return None
        if not carrier:  # a new trace (the commonest: its verdict is made once)
            found = _ROOT_DROPPED if drops[_ROOT] else self._root_verdict(EMPTY_CONTEXT)
        else:
            traceparent = carrier.get("traceparent")
            # A likely-kept parent goes the usual way at once, so its carrier is extracted
            # once (by start_span's caller), not twice; a wrong guess costs only that.
            if traceparent is not None and not drops[
                    _REMOTE_SAMPLED if traceparent[-1:] in _SAMPLED_DIGITS
                    else _REMOTE_NOT_SAMPLED]:
                return None
            # (onto an empty context, as TelemetryMiddleware.open: never the current one)
            parent = propagator.extract(carrier, context=EMPTY_CONTEXT, getter=getter)
            found = self._verdict_under(parent, drops)
        # A disabled tracer (a tracer configurator) makes start_span answer with the parent's
        # span instead: it goes the usual way.
        return found if found is not None and tracer._is_enabled() else None

    def decide_child(self, parent: Context) -> Verdict | None:
        """The verdict on a span started in ``parent`` (a client call's: the current
        context), when known without its attributes, else ``None``; as ``decide``, a new
        trace's id is drawn only when the verdict depends on it."""
        drops = self._current_drops()
        if drops is None:
            return None
        found = self._verdict_under(parent, drops)
        return found if found is not None and self._tracer._is_enabled() else None

    def _current_drops(self) -> tuple[bool, ...] | None:
        """The plan for the tracer's sampler now (made again when it was replaced)."""
        tracer = self._tracer
        sampler = getattr(tracer, "sampler", None)
        if sampler is not self._sampler:
            self._drops, self._root = _plan(tracer, sampler, self._draws_ids)
            self._sampler = sampler
        return self._drops

    def span(self, verdict: Verdict) -> NonRecordingSpan:
        """The non-recording span ``start_span`` makes when the sampler drops, for a
        verdict ``decide`` answered (a new trace's ids drawn when first asked for: see
        ``LazyRootSpan``)."""
        ids = self._tracer.id_generator
        parent_span = verdict.parent_span
        if parent_span is None:  # (a ratio's dropped root comes with its trace id drawn)
            return LazyRootSpan(ids, verdict.trace_id)
        flags = _NOT_SAMPLED_RANDOM if parent_span.trace_flags.random_trace_id \
            else _NOT_SAMPLED
        return NonRecordingSpan(SpanContext(parent_span.trace_id, ids.generate_span_id(),
                                            False, flags, parent_span.trace_state))

    def _root_verdict(self, parent: Context) -> Verdict | None:
        drops = self._drops
        if drops is not None and drops[_ROOT]:
            return _ROOT_DROPPED if parent is EMPTY_CONTEXT else Verdict(parent, None, None,
                                                                          False)
        root = self._root
        if root is None:
            return None
        trace_id = self._tracer.id_generator.generate_trace_id()
        return Verdict(parent, None, trace_id, root(None, trace_id))

    def _verdict_under(self, parent: Context, drops: tuple[bool, ...]) -> Verdict | None:
        parent_span = get_current_span(parent).get_span_context()
        if parent_span is not None and not isinstance(parent_span, SpanContext):
            return None  # start_span raises TypeError: let it, the usual way
        if parent_span is None or not parent_span.is_valid:
            return self._root_verdict(parent)
        if parent_span.is_remote:
            situation = _REMOTE_SAMPLED if parent_span.trace_flags.sampled \
                else _REMOTE_NOT_SAMPLED
        else:
            situation = _LOCAL_SAMPLED if parent_span.trace_flags.sampled \
                else _LOCAL_NOT_SAMPLED
        return Verdict(parent, parent_span, None, False) if drops[situation] else None


class LazyRootSpan(NonRecordingSpan):
    """The non-recording span of a dropped new trace, whose ids are drawn when something
    first reads its span context (a downstream call propagating it, a log record), not
    before. Why: most unsampled requests never read it, and drawing two ids and building a
    ``SpanContext`` cost ~0.7 µs of the ~5 µs such a request adds in a hot loop (more in
    a running server, where that code is cold each time). Once drawn, the ids never change:
    every reader, on any thread, sees the same ones. (Two first readers at once may both
    draw; ``dict.setdefault``, one step under the GIL, keeps the first. No lock: a fork
    taken while another thread held one would leave it held in the child.)"""

    def __init__(self, ids: Any, trace_id: int | None = None) -> None:
        # (NonRecordingSpan's takes a SpanContext; trace_id: drawn already, for the sampler)
        self._ids = ids
        self._trace_id = trace_id

    @property
    def _context(self) -> SpanContext:  # type: ignore[override]
        state = self.__dict__
        drawn = state.get("_drawn")
        if drawn is None:
            ids = self._ids
            trace_id = self._trace_id
            if trace_id is None:
                trace_id = ids.generate_trace_id()
            flags = _NOT_SAMPLED_RANDOM if ids.is_trace_id_random() else _NOT_SAMPLED
            drawn = state.setdefault("_drawn", SpanContext(trace_id, ids.generate_span_id(),
                                                           False, flags, None))
        return drawn  # type: ignore[no-any-return]

    def get_span_context(self) -> SpanContext:
        return self._context


def _draw_before_fork() -> None:
    """A forked child inherits the forking thread's context: the current lazy span draws
    its ids first, so parent and child carry the same trace (drawn apart, they would not)."""
    try:
        span = get_current_span(get_current())
        if type(span) is LazyRootSpan:
            span.get_span_context()
    except Exception:  # pragma: no cover - never in the way of a fork
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_draw_before_fork)


# (verdicts are never changed: the commonest one, a new trace dropped, is made once)
_ROOT_DROPPED = Verdict(EMPTY_CONTEXT, None, None, False)


def _plan(tracer: Any, sampler: Any, draws_ids: bool
          ) -> tuple[tuple[bool, ...] | None, Callable[[None, int], bool] | None]:
    """Per kind of parent (none; remote or local, sampled or not): does ``sampler`` always
    drop? And for a root it may or may not drop: its verdict on a drawn trace id (only with
    ``draws_ids``). ``(None, None)`` when nothing is known beforehand, or when the tracer or
    sampler is not one we know."""
    try:
        from opentelemetry.sdk.trace import Tracer
        from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
    except ImportError:  # pragma: no cover - an SDK laid out differently: no shortcut
        return None, None
    if type(tracer) is not Tracer or type(getattr(tracer, "_tracer_metrics", None)) \
            is not NoOpTracerMetrics or not callable(getattr(tracer, "_is_enabled", None)):
        return None, None  # (the SDK's span metrics count every span start_span starts)
    ids = getattr(tracer, "id_generator", None)
    if not all(callable(getattr(ids, name, None)) for name in (
            "generate_trace_id", "generate_span_id", "is_trace_id_random")):
        return None, None
    drops = tuple(_always_drops(sampler, situation) for situation in range(5))
    root = _root_ratio(sampler) if draws_ids and not drops[_ROOT] else None
    return (drops, root) if any(drops) or root is not None else (None, None)


def _root_ratio(sampler: Any, depth: int = 0) -> Callable[[None, int], bool] | None:
    """The leaf tracer's ``sampled(parent, trace_id)`` for a root when its verdict is a
    trace-id ratio strictly between 0 and 1 (the ratio itself, or a parent-based sampler's
    root delegate), else None."""
    from opentelemetry.sdk.trace import sampling

    from ..infrastructure.leaf_spans import (
        SAMPLER_DELEGATES,
        decider,
        parent_based_sampler_classes,
    )

    kind = type(sampler)
    if kind is sampling.TraceIdRatioBased:
        if not 0 < sampler.bound <= sampling.TraceIdRatioBased.TRACE_ID_LIMIT:
            return None  # never or always: nothing to draw for
        return decider(sampler)
    if kind in parent_based_sampler_classes() and depth < 8:
        return _root_ratio(getattr(sampler, SAMPLER_DELEGATES[_ROOT], None), depth + 1)
    return None


def _always_drops(sampler: Any, situation: int, depth: int = 0) -> bool:
    from opentelemetry.sdk.trace import sampling

    from ..infrastructure.leaf_spans import (
        SAMPLER_DELEGATES,
        parent_based_sampler_classes,
        static_sampler_classes,
    )

    kind = type(sampler)
    if kind in static_sampler_classes():
        return getattr(sampler, "_decision", None) is sampling.Decision.DROP
    if kind is sampling.TraceIdRatioBased:
        # trace_id & TRACE_ID_LIMIT < bound: never true for a bound of 0 (rate 0)
        return sampler.bound <= 0
    if kind in parent_based_sampler_classes() and depth < 8:
        delegate = getattr(sampler, SAMPLER_DELEGATES[situation], None)
        return delegate is not None and _always_drops(delegate, situation, depth + 1)
    return False
