"""Header capture and query redaction shared by every HTTP instrumentation
(``instrumentation._http_common``): the opentelemetry-python-contrib syntax of
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` (comma-separated regexes, case-insensitive;
capture entries match whole names, sanitize entries anywhere in them) and the query
parameters whose values are never exported."""

from __future__ import annotations

import pytest

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.instrumentation import _http_common
from telemetryflow_bootstrap.instrumentation._http_common import (
    HeaderCapture,
    redact_query,
    redact_url,
)

REQUEST = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
SANITIZE = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
HEADERS = [("Host", "example.org"), ("X-Request-Id", "r-1"), ("x-session-token", "SESSTOK"),
           ("X-Api-Key", "APIKEY"), ("Accept-X-Custom", "a"), ("Authorization", "Bearer t")]


def _captured(capture: str, sanitize: str = "", headers: object = HEADERS) -> dict:
    return HeaderCapture("server", "request", {REQUEST: capture, SANITIZE: sanitize}
                         ).attributes(headers)  # type: ignore[arg-type]


def test_plain_names_are_matched_without_regard_to_case() -> None:
    """A plain entry captures the header of that name, whatever the case on either side."""
    assert _captured("x-REQUEST-id, HOST") == {
        "http.request.header.host": ["example.org"],
        "http.request.header.x-request-id": ["r-1"]}


def test_a_capture_regex_must_match_the_whole_name() -> None:
    """``X-.*`` captures every header starting with X- (in any case), not one that merely
    contains x- (Accept-X-Custom)."""
    assert set(_captured("X-.*")) == {"http.request.header.x-request-id",
                                      "http.request.header.x-session-token",
                                      "http.request.header.x-api-key"}


def test_dot_star_captures_every_header_and_still_redacts_credentials() -> None:
    """``.*`` captures all headers; Authorization stays REDACTED without being listed."""
    captured = _captured(".*")
    assert len(captured) == len(HEADERS)
    assert captured["http.request.header.authorization"] == ["REDACTED"]
    assert captured["http.request.header.x-session-token"] == ["SESSTOK"]


def test_sanitize_entries_are_regexes_searched_in_the_name() -> None:
    """``x-api-key,.*session.*`` redacts X-Api-Key and x-session-token; a plain sanitize entry
    redacts every header whose name contains it (``session`` alone does the same)."""
    for sanitize in ("x-api-key,.*session.*", "X-API-KEY, session"):
        captured = _captured(".*", sanitize)
        assert captured["http.request.header.x-api-key"] == ["REDACTED"]
        assert captured["http.request.header.x-session-token"] == ["REDACTED"]
        assert captured["http.request.header.x-request-id"] == ["r-1"]
        assert "SESSTOK" not in repr(captured) and "APIKEY" not in repr(captured)


def test_repeated_headers_keep_every_value_in_order() -> None:
    """A header sent twice becomes one attribute with both values."""
    headers = [("X-Forwarded-For", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8")]
    assert _captured("x-forwarded-.*", headers=headers) == {
        "http.request.header.x-forwarded-for": ["1.2.3.4", "5.6.7.8"]}


def test_bytes_names_and_values_are_read_as_latin_1() -> None:
    """A layer that hands over bytes gets the same attributes (no crash, no b'...')."""
    assert _captured("X-.*", "session", [(b"X-Session", b"SESSTOK"), (b"X-Id", b"caf\xe9")]) == {
        "http.request.header.x-session": ["REDACTED"], "http.request.header.x-id": ["café"]}


def test_an_invalid_regex_is_a_plain_name_with_a_warning() -> None:
    """An entry that does not compile is matched as a plain name (capture) or a literal part
    of names (sanitize), and the user is told which variable and entry."""
    _diagnostics.reset_for_tests()
    headers = [("x-[odd", "1"), ("x-(odd-secret", "SECRET"), ("x-normal", "2")]
    assert _captured("x-[odd,x-normal,x-(odd-secret", "x-(odd", headers) == {
        "http.request.header.x-[odd": ["1"], "http.request.header.x-(odd-secret": ["REDACTED"],
        "http.request.header.x-normal": ["2"]}
    warnings = [m for _, m in _diagnostics.recorded() if "not a valid regular expression" in m]
    assert any(m.startswith(f"{REQUEST}: 'x-[odd'") for m in warnings)
    assert any(m.startswith(f"{SANITIZE}: 'x-(odd'") for m in warnings)


def test_nothing_configured_captures_nothing() -> None:
    """Without the variable (or with only commas and blanks) capture is off."""
    assert not HeaderCapture("client", "response", {})
    assert not HeaderCapture("client", "response", {REQUEST: " , "})
    assert _captured(" , ") == {}


def test_verdicts_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Header names from the network cannot grow the remembered verdicts past the bound, and
    names past it are still judged right."""
    monkeypatch.setattr(_http_common, "_REMEMBERED_NAMES", 4)
    capture = HeaderCapture("server", "request", {REQUEST: "x-keep-.*", SANITIZE: "secret"})
    headers = [(f"x-other-{i}", "o") for i in range(10)] + [("x-keep-secret", "S"),
                                                            ("x-keep-1", "k")]
    for _ in range(2):
        assert capture.attributes(headers) == {"http.request.header.x-keep-secret": ["REDACTED"],
                                               "http.request.header.x-keep-1": ["k"]}
    assert len(capture._verdicts) == 4


@pytest.mark.parametrize("key", ["X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
                                 "x-amz-signature", "AWSAccessKeyId", "Signature", "sig",
                                 "X-Goog-Signature"])
def test_signature_like_query_values_are_redacted(key: str) -> None:
    """The URL conventions' four keys and AWS SigV4's credentials (any case) lose their
    values in url.full and url.query; the key and the other parameters stay."""
    assert redact_url(f"https://s3.example/b/k?{key}=v1&X-Amz-Date=20261127T000000Z") == (
        f"https://s3.example/b/k?{key}=REDACTED&X-Amz-Date=20261127T000000Z")
    assert redact_query(f"page=2&{key}=v1") == f"page=2&{key}=REDACTED"
