"""API key credentials: a value object that can be used but never printed."""

from __future__ import annotations

from ._values import FrozenValue
from .errors import CredentialsError, Problem

KEY_ID_PREFIX = "tfk_"
KEY_SECRET_PREFIX = "tfs_"


def redact_secret(secret: str) -> str:
    """What a secret looks like in messages: its fixed prefix at most, never a real character."""
    return f"{KEY_SECRET_PREFIX}****" if secret.startswith(KEY_SECRET_PREFIX) else "****"


class Credentials(FrozenValue):
    """A TelemetryFlow API key pair.

    ``repr``/``str`` show the key id (an identifier, not a secret) but never a character of the
    secret, so credentials can sit in a config that gets logged. (A frozen value object, see
    ``_values``.)
    """

    _FIELDS = ("key_id", "key_secret", "collector_id")
    __slots__ = _FIELDS
    __match_args__ = _FIELDS
    _NOT_SHOWN = frozenset({"key_secret"})

    def __init__(self, key_id: str, key_secret: str, collector_id: str | None = None) -> None:
        key_id = (key_id or "").strip()
        key_secret = (key_secret or "").strip()
        collector_id = (collector_id or "").strip() or None
        problems = []
        if not key_id.startswith(KEY_ID_PREFIX) or len(key_id) == len(KEY_ID_PREFIX):
            problems.append(
                Problem(
                    "key_id",
                    repr(key_id),
                    f"expected an API key id starting with '{KEY_ID_PREFIX}'",
                )
            )
        if not key_secret.startswith(KEY_SECRET_PREFIX) or len(key_secret) == len(
            KEY_SECRET_PREFIX
        ):
            problems.append(
                Problem(
                    "key_secret",
                    redact_secret(key_secret),
                    f"expected an API key secret starting with '{KEY_SECRET_PREFIX}'",
                )
            )
        if problems:
            raise CredentialsError(problems)
        _set = object.__setattr__
        _set(self, "key_id", key_id)
        _set(self, "key_secret", key_secret)
        _set(self, "collector_id", collector_id)

    def __str__(self) -> str:
        return f"{self.key_id}:{redact_secret(self.key_secret)}"

    def authorization_header(self) -> str:
        return f"Bearer {self.key_id}:{self.key_secret}"

    def auth_headers(self) -> dict[str, str]:
        """The headers every export carries; the TelemetryFlow collector checks these."""
        headers = {
            "Authorization": self.authorization_header(),
            "X-TelemetryFlow-Key-ID": self.key_id,
            "X-TelemetryFlow-Key-Secret": self.key_secret,
        }
        if self.collector_id:
            headers["X-TelemetryFlow-Collector-ID"] = self.collector_id
        return headers
