"""Error hierarchy: every error the SDK raises is a ``TelemetryFlowError``.

Messages always name the field (or the environment variable it came from), the bad value
(secrets redacted) and what is expected, so a user can fix the problem from the message alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One invalid setting: where it came from, what was given, what is accepted."""

    source: str
    shown_value: str
    expected: str

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
