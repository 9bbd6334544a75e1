"""Error hierarchy: every error the SDK raises is a ``TelemetryFlowError``.

Messages always name the field (or the environment variable it came from), the bad value
(secrets redacted) and what is expected, so a user can fix the problem from the message alone.
"""

from __future__ import annotations


class Problem:
    """One invalid setting: where it came from, what was given, what is accepted.

    Immutable, compared and hashed by its three fields. (A plain class rather than a frozen
    dataclass: the launcher imports this module before it execs the program, and importing
    ``dataclasses`` would add ~12 ms to every launch.)"""

    __slots__ = ("expected", "shown_value", "source")
    source: str
    shown_value: str
    expected: str

    def __init__(self, source: str, shown_value: str, expected: str) -> None:
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "shown_value", shown_value)
        object.__setattr__(self, "expected", expected)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Problem is immutable: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Problem is immutable: cannot delete {name!r}")

    def _fields(self) -> tuple[str, str, str]:
        return self.source, self.shown_value, self.expected

    def __eq__(self, other: object) -> bool:
        if type(other) is not Problem:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"Problem(source={self.source!r}, shown_value={self.shown_value!r}, "
                f"expected={self.expected!r})")

    def __str__(self) -> str:
        return f"{self.source}={self.shown_value}: {self.expected}"


class TelemetryFlowError(Exception):
    """Base class of every error raised by telemetryflow_bootstrap."""


class ConfigError(TelemetryFlowError):
    """Invalid configuration; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class CredentialsError(ConfigError):
    """An API key id or secret is missing or malformed."""


class BuilderError(TelemetryFlowError):
    """``TelemetryFlowBuilder.build()`` found missing or invalid fields (all listed)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("cannot build TelemetryFlowClient: " + "; ".join(self.problems))


class NotInitializedError(TelemetryFlowError):
    """A client method that needs a running SDK was called before ``initialize()``."""
