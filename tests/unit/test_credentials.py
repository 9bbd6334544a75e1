"""``Credentials``: validation, headers, and never printing the secret."""

from __future__ import annotations

import dataclasses

import pytest

from telemetryflow_bootstrap.domain.config import load_config
from telemetryflow_bootstrap.domain.credentials import Credentials
from telemetryflow_bootstrap.domain.errors import ConfigError, CredentialsError

_SECRET_BODY = "0ddly-specific-secret"
_SECRET = f"tfs_{_SECRET_BODY}"


def test_valid_credentials_are_trimmed() -> None:
    """Surrounding whitespace (a common copy-paste accident) is removed from every part."""
    credentials = Credentials("  tfk_id\n", f"\t{_SECRET} ", "  col-1 ")
    assert (credentials.key_id, credentials.key_secret, credentials.collector_id) == (
        "tfk_id",
        _SECRET,
        "col-1",
    )


def test_blank_collector_id_is_none() -> None:
    """A blank collector id counts as not configured."""
    assert Credentials("tfk_id", _SECRET, "   ").collector_id is None


@pytest.mark.parametrize(
    ("key_id", "key_secret", "bad"),
    [
        ("key_123", _SECRET, ["key_id"]),
        ("tfk_id", _SECRET_BODY, ["key_secret"]),
        ("tfs_id", "tfk_secret", ["key_id", "key_secret"]),
        ("tfk_", _SECRET, ["key_id"]),
        ("tfk_id", "tfs_", ["key_secret"]),
        ("", "", ["key_id", "key_secret"]),
        ("TFK_ID", _SECRET, ["key_id"]),
    ],
    ids=repr,
)
def test_wrong_prefixes_are_rejected_listing_each_part(
    key_id: str, key_secret: str, bad: list[str]
) -> None:
    """An id not starting tfk_ or a secret not starting tfs_ (or nothing after the prefix)
    raises one CredentialsError listing every bad part and the expected prefix."""
    with pytest.raises(CredentialsError) as caught:
        Credentials(key_id, key_secret)
    assert [p.source for p in caught.value.problems] == bad
    for problem in caught.value.problems:
        assert ("'tfk_'" if problem.source == "key_id" else "'tfs_'") in problem.expected


@pytest.mark.parametrize("key_secret", [_SECRET_BODY, f"x{_SECRET}", f"  {_SECRET_BODY}  "])
def test_rejected_secret_is_never_in_the_error(key_secret: str) -> None:
    """The error about a malformed secret shows no character of it."""
    with pytest.raises(CredentialsError) as caught:
        Credentials("tfk_id", key_secret)
    assert _SECRET_BODY not in str(caught.value)
    assert _SECRET_BODY not in repr(caught.value.problems)


def test_credentials_error_can_be_caught_as_config_error() -> None:
    """Callers handling ConfigError also handle bad credentials."""
    with pytest.raises(ConfigError):
        Credentials("nope", "nope")


def test_authorization_header() -> None:
    """The Authorization header is a bearer token of id:secret."""
    assert Credentials("tfk_id", _SECRET).authorization_header() == f"Bearer tfk_id:{_SECRET}"


def test_auth_headers_without_collector_id() -> None:
    """Without a collector id the collector header is absent."""
    assert Credentials("tfk_id", _SECRET).auth_headers() == {
        "Authorization": f"Bearer tfk_id:{_SECRET}",
        "X-TelemetryFlow-Key-ID": "tfk_id",
        "X-TelemetryFlow-Key-Secret": _SECRET,
    }


def test_auth_headers_with_collector_id() -> None:
    """A configured collector id adds X-TelemetryFlow-Collector-ID."""
    headers = Credentials("tfk_id", _SECRET, "col-9").auth_headers()
    assert headers["X-TelemetryFlow-Collector-ID"] == "col-9"
    assert len(headers) == 4


def test_credentials_are_frozen() -> None:
    """Credentials cannot be changed after construction."""
    credentials = Credentials("tfk_id", _SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        credentials.key_secret = "tfs_other"  # type: ignore[misc]


def test_repr_and_str_show_the_id_but_never_the_secret() -> None:
    """Printing credentials shows the key id and a redacted secret."""
    credentials = Credentials("tfk_id", _SECRET, "col-1")
    for text in (repr(credentials), str(credentials)):
        assert "tfk_id" in text
        assert _SECRET_BODY not in text
    assert str(credentials) == "tfk_id:tfs_****"


# ----- from the environment ---------------------------------------------------------------


def test_credentials_from_environment() -> None:
    """Id, secret and collector id from the environment make the config's credentials."""
    config, reading = load_config(
        {
            "TELEMETRYFLOW_API_KEY_ID": "tfk_id",
            "TELEMETRYFLOW_API_KEY_SECRET": _SECRET,
            "TELEMETRYFLOW_COLLECTOR_ID": "col-3",
        }
    )
    assert reading.problems == []
    assert config.credentials == Credentials("tfk_id", _SECRET, "col-3")
    assert config.get_auth_headers()["X-TelemetryFlow-Collector-ID"] == "col-3"


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("TELEMETRYFLOW_API_KEY_ID", "TELEMETRYFLOW_API_KEY_SECRET"),
        ("TELEMETRYFLOW_API_KEY_SECRET", "TELEMETRYFLOW_API_KEY_ID"),
    ],
)
def test_only_one_of_id_and_secret_is_a_problem(given: str, missing: str) -> None:
    """Setting only the id or only the secret reports the missing one; no credentials used."""
    value = "tfk_id" if given.endswith("_ID") else _SECRET
    config, reading = load_config({given: value})
    assert config.credentials is None
    (problem,) = reading.problems
    assert problem.source == missing
    assert given in problem.expected
    assert _SECRET_BODY not in str(problem)


def test_wrong_prefixes_in_environment_name_the_variables() -> None:
    """Malformed credentials from the environment are reported against the variables,
    with the secret redacted."""
    config, reading = load_config(
        {"TELEMETRYFLOW_API_KEY_ID": "key_1", "TELEMETRYFLOW_API_KEY_SECRET": _SECRET_BODY}
    )
    assert config.credentials is None
    assert [p.source for p in reading.problems] == [
        "TELEMETRYFLOW_API_KEY_ID",
        "TELEMETRYFLOW_API_KEY_SECRET",
    ]
    assert "'key_1'" in str(reading.problems[0])
    assert all(_SECRET_BODY not in str(p) for p in reading.problems)


def test_malformed_id_is_reported_once_not_also_as_unset() -> None:
    """An id that is set but unprintable is one problem; it is not also called 'unset'."""
    _, reading = load_config(
        {"TELEMETRYFLOW_API_KEY_ID": "tfk_\x01", "TELEMETRYFLOW_API_KEY_SECRET": _SECRET}
    )
    (problem,) = reading.problems
    assert problem.source == "TELEMETRYFLOW_API_KEY_ID"
    assert "unset" not in str(problem)
