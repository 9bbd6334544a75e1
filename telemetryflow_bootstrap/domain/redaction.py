"""Masking before showing: the one place that decides what of an endpoint, or of a text that
may quote one, reaches a message, ``--info``, ``doctor`` or ``get_status()``.

An endpoint may carry a password (``https://user:pw@collector``) or a token in its query
string, and it is quoted in more places than anyone remembers: our start-up line, the
status, configuration problems, gRPC's and the SDK's error texts. Every one of them goes
through ``redact_url`` (a single URL value) or ``redact_text`` (free text), so a new message
cannot forget a rule. Over-masking is the accepted failure: a rare ``@`` in a path hides a
little more than needed, never less.

Standard library only: the launcher masks before it execs the program.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "****"
_MIN_SECRET = 4  # shorter strings would garble unrelated words of a message

# userinfo after a scheme, up to the last '@' of the token ('/' and ':' allowed: a password
# with an unencoded '/' still ends at that '@')
_SCHEME_USERINFO = re.compile(r"(?<=://)[^\s'\"<>]*@")
# user:password@host without a scheme, as gRPC targets and its errors quote them
_BARE_USERINFO = re.compile(r"(?:(?<=^)|(?<=[\s'\"(\[,=]))[^\s@'\"/:(\[,=]+:(?!//)[^\s'\"<>]*@")
_QUERY_VALUE = re.compile(r"(?<=[?&])([^=&#\s'\"]+)=[^&#\s'\"]*")
_MASKED_VALUE = r"\1=" + MASK


def redact_url(url: str) -> str:
    """One URL (an endpoint as configured): everything between the scheme (or the start) and
    the last ``@`` masked, and each query value. Spaces and ``/`` in a malformed password
    stay masked too, since the whole value is known to be one URL."""
    at = url.rfind("@")
    if at >= 0:
        start = url.find("://")
        start = 0 if start < 0 or start > at else start + 3
        url = url[:start] + MASK + url[at:]
    if "?" in url:
        base, _, query = url.partition("?")
        url = base + "?" + _QUERY_VALUE.sub(_MASKED_VALUE, "&" + query)[1:]
    return url


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (an error from gRPC, a line the SDK logged, a problem message): each of
    ``secrets`` (header values, the API key secret, an endpoint's userinfo) and every URL
    userinfo or query value in it masked."""
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    if "@" in text:
        text = _SCHEME_USERINFO.sub(MASK + "@", text)
        text = _BARE_USERINFO.sub(MASK + "@", text)
    if "=" in text and ("?" in text or "&" in text):
        text = _QUERY_VALUE.sub(_MASKED_VALUE, text)
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that are secrets (its userinfo, raw and percent-decoded), so that
    ``redact_text`` masks them wherever a library quotes them, even split from the URL."""
    from urllib.parse import unquote

    scheme_end = url.find("://")
    start = 0 if scheme_end < 0 else scheme_end + 3
    at = url.rfind("@")
    if at < start:
        return []
    userinfo = url[start:at]
    password = userinfo.partition(":")[2]
    found = [userinfo, unquote(userinfo), password, unquote(password)]
    return [part for part in found if part]
