"""``domain.redaction``: what of an endpoint, or of a text quoting one, may be shown."""

from __future__ import annotations

import pytest

from telemetryflow_bootstrap import _diagnostics
from telemetryflow_bootstrap.domain.environment import show_value
from telemetryflow_bootstrap.domain.redaction import redact_text, redact_url, url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("collector:4317", "collector:4317"),
        ("https://user:pw@collector:4318/base", "https://****@collector:4318/base"),
        ("token@collector:4317", "****@collector:4317"),
        ("http://user:TOP/SECRET@localhost:4318", "http://****@localhost:4318"),
        ("http://user:TOP SECRET@localhost:4318", "http://****@localhost:4318"),
        ("http://user:p@ss@localhost:4318", "http://****@localhost:4318"),
        ("http://c:4318/v1?api_key=abc&x", "http://c:4318/v1?api_key=****&x"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    """A URL's userinfo, up to its last '@' whatever it contains, and its query values are
    masked; the rest stays readable."""
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "errors resolving user:TOPSECRET@127.0.0.1:46001: lookup failed for "
            "user:TOPSECRET@127.0.0.1:46001",
            "errors resolving ****@127.0.0.1:46001: lookup failed for ****@127.0.0.1:46001",
        ),
        (
            "Transient error exporting traces to https://u:TOP/SECRET@host:1, retrying",
            "Transient error exporting traces to https://****@host:1, retrying",
        ),
        (
            "TELEMETRYFLOW_ENDPOINT='http://user:pw@localhost:4318': expected host:port",
            "TELEMETRYFLOW_ENDPOINT='http://****@localhost:4318': expected host:port",
        ),
        ("see http://c/x?token=abc&y=2 now", "see http://c/x?token=****&y=**** now"),
        ("at 10:30, nothing to hide", "at 10:30, nothing to hide"),
    ],
)
def test_redact_text(text: str, shown: str) -> None:
    """URL userinfo (with or without a scheme, as gRPC quotes its target) and query values are
    masked wherever they appear in a text."""
    assert redact_text(text) == shown


def test_redact_text_masks_known_secrets_even_outside_urls() -> None:
    """Known secrets (a header value, a password with a space) are masked anywhere; strings too
    short to be secrets are left alone, so messages stay readable."""
    text = "rejected 'Bearer abc123' for PASS W0RD, id ok"
    assert redact_text(text, ["Bearer abc123", "PASS W0RD", "ok"]) == (
        "rejected '****' for ****, id ok"
    )


def test_url_secrets_are_raw_and_decoded() -> None:
    """An endpoint's userinfo counts as a secret both as configured and percent-decoded."""
    assert url_secrets("http://user:p%40ss@h:1") == ["user:p%40ss", "user:p@ss", "p%40ss", "p@ss"]
    assert url_secrets("http://h:1/a") == []


@pytest.mark.parametrize("password", ["TOP/SECRET", "TOP SECRET"])
def test_show_value_masks_an_endpoint_with_an_odd_password(password: str) -> None:
    """The "malformed value" message quotes a rejected endpoint without its password, even
    one with '/' or a space (the regex used before stopped at them)."""
    shown = show_value(f"http://user:{password}@localhost:4318")
    assert shown == "'http://****@localhost:4318'"


def test_diagnostics_mask_registered_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """Every line telemetryflow prints, whoever wrote it (the SDK's log records are routed
    there), has the registered secrets and URL passwords masked."""
    _diagnostics.reset_for_tests()
    try:
        _diagnostics.add_secrets(["Basic dXNlcjpwdw=="])
        _diagnostics.warn("sent Basic dXNlcjpwdw== to user:pw@collector:4317")
        assert capsys.readouterr().err == (
            "telemetryflow: warning: sent **** to ****@collector:4317\n"
        )
        assert _diagnostics.recorded() == [("warn", "sent **** to ****@collector:4317")]
    finally:
        _diagnostics.reset_for_tests()
