"""Names in TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS that match no instrumentation: the check,
and how the hook prints its warning once across the launcher and the program's processes.

The contrib side (a fake distribution with a real ``opentelemetry_instrumentor`` entry
point) is tested next to the other contrib tests, in
``tests/instrumentation/test_contrib.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pytest

from telemetryflow_bootstrap import _bootstrap, _diagnostics
from telemetryflow_bootstrap._launch import REPORTED_ENV, problem_messages, problems_digest
from telemetryflow_bootstrap.domain.config import load_config
from telemetryflow_bootstrap.domain.environment import EnvironmentReading
from telemetryflow_bootstrap.instrumentation import _disabled_names, registry

_VAR = "TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS"
_OTEL_VAR = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
_OURS = _disabled_names.our_names(registry._catalog())


def _reading(**environ: str) -> EnvironmentReading:
    return load_config(environ)[1]


def _no_contrib() -> Iterable[str]:
    return ()


def _warning(value: str, contrib: Iterable[str] = ()) -> str | None:
    return _disabled_names.unknown_names_warning(_reading(**{_VAR: value}), _OURS, lambda: contrib)


def test_every_name_the_hook_disables_by_is_known() -> None:
    """Each catalog entry and the process-level logging/runtime_metrics pass silently."""
    names = {entry.name for entry in registry._catalog()} | {"logging", "runtime_metrics"}
    assert {"http_client", "requests", "flask", "subprocess", "sqlite3"} <= names
    assert names == _OURS
    assert _warning(",".join(sorted(names))) is None


def test_a_typo_gives_one_warning_naming_variable_value_suggestion_and_known_names() -> None:
    """An unknown name is named with the closest known one and the sorted list of names."""
    known = ", ".join(sorted(_OURS))
    assert _warning("reqests,flask") == (
        f"{_VAR} names unknown instrumentation 'reqests' (did you mean 'requests'?); "
        f"it disables nothing (expected one of: {known})"
    )


def test_several_unknown_names_share_one_line_each_named_once() -> None:
    """Several unknown names (repeats counted once) give one line in the plural."""
    warning = _warning("reqests,nosuchthing,reqests,flsk")
    assert warning is not None
    assert "\n" not in warning
    assert warning.startswith(
        f"{_VAR} names unknown instrumentations 'reqests' (did you mean 'requests'?), "
        "'nosuchthing', 'flsk' (did you mean 'flask'?); they disable nothing ("
    )


def test_a_long_list_of_unknown_names_is_cut() -> None:
    """Past five unknown names the rest are counted, so the line stays readable."""
    warning = _warning(",".join(f"zz{i}" for i in range(40)))
    assert warning is not None
    assert "'zz4'" in warning and "'zz5'" not in warning
    assert " and 35 more; they disable nothing" in warning


def test_case_and_whitespace_are_normalised_as_the_registry_matches() -> None:
    """The parser strips and lowercases each name, the registry compares exactly: ' Flask '
    disables flask, so it is known; an unknown one is shown normalised."""
    assert _warning("  Flask , REQUESTS,http_client ") is None
    assert _reading(**{_VAR: " Flask "}).values["disabled_instrumentations"] == ("flask",)
    warning = _warning(" Reqests ")
    assert warning is not None and "'reqests' (did you mean 'requests'?)" in warning


@pytest.mark.parametrize("value", ["requests,,flask, ,", ",", " , ,"])
def test_empty_items_are_ignored(value: str) -> None:
    """Empty items between commas are no names at all, so they are not reported."""
    assert _warning(value) is None


def test_spellings_the_registry_does_not_match_are_reported() -> None:
    """There are no aliases: ``http.client`` disables nothing (ours is ``http_client``), and
    ``urllib`` only a contrib instrumentor of that name, so both are reported without one."""
    warning = _warning("http.client")
    assert warning is not None and "'http.client' (did you mean 'http_client'?)" in warning
    assert _warning("urllib") is not None
    assert _warning("urllib", contrib=["urllib"]) is None


def test_installed_contrib_names_are_known_and_listed() -> None:
    """A contrib entry point name passes; with an unknown one it is among the known names."""
    assert _warning("aws_lambda", contrib=["aws_lambda"]) is None
    warning = _warning("aws_lamda", contrib=["aws_lambda"])
    assert warning is not None
    assert "(did you mean 'aws_lambda'?)" in warning
    assert "aws_lambda, celery, django" in warning


def test_contrib_names_are_asked_for_only_when_a_name_is_not_ours() -> None:
    """Known names never lead to a look at the installed packages."""
    asked: list[bool] = []

    def contrib() -> Iterable[str]:
        asked.append(True)
        return ()

    reading = _reading(**{_VAR: "requests,logging"})
    assert _disabled_names.unknown_names_warning(reading, _OURS, contrib) is None
    assert asked == []
    reading = _reading(**{_VAR: "reqests"})
    assert _disabled_names.unknown_names_warning(reading, _OURS, contrib) is not None
    assert asked == [True]


def test_names_from_the_opentelemetry_variable_are_not_reported() -> None:
    """OTEL_PYTHON_DISABLED_INSTRUMENTATIONS is shared with opentelemetry-instrument and lists
    contrib instrumentors not installed here, so a value read from it is not checked."""
    reading = _reading(**{_OTEL_VAR: "reqests,aws_lambda"})
    assert reading.sources["disabled_instrumentations"] == _OTEL_VAR
    assert _disabled_names.unknown_names_warning(reading, _OURS, _no_contrib) is None


def test_our_variable_wins_and_is_checked_when_both_are_set() -> None:
    """With both variables set ours is in effect, so its names are the ones checked."""
    reading = _reading(**{_VAR: "reqests", _OTEL_VAR: "aws_lambda"})
    warning = _disabled_names.unknown_names_warning(reading, _OURS, _no_contrib)
    assert warning is not None and "'reqests'" in warning and "aws_lambda" not in warning


def test_disable_option_over_the_opentelemetry_variable_makes_the_merged_list_ours() -> None:
    """--disable with only the OTEL variable set: the launcher writes the merged list into
    both (they must not disagree), ours is then in effect and all of it is checked."""
    from telemetryflow_bootstrap import _fast_launch, _launch

    environ = {_OTEL_VAR: "aws_lambda"}
    env = _launch.child_environment(environ, _fast_launch.overrides(environ, ["reqests"], {}))
    assert env[_VAR] == env[_OTEL_VAR] == "aws_lambda,reqests"
    warning = _disabled_names.unknown_names_warning(load_config(env)[1], _OURS, _no_contrib)
    assert warning is not None and "'aws_lambda', 'reqests'" in warning


def test_a_malformed_value_is_a_problem_not_an_unknown_name() -> None:
    """A value the parser refuses is reported as a problem once, and not checked again."""
    reading = _reading(**{_VAR: "requests;flask"})
    assert [problem.source for problem in reading.problems] == [_VAR]
    assert _disabled_names.unknown_names_warning(reading, _OURS, _no_contrib) is None


def test_unset_variable_is_not_checked() -> None:
    """Nothing set, nothing to say (and ``check`` imports nothing for it)."""
    assert _disabled_names.check(_reading()) is None


def test_check_uses_the_shipped_catalog() -> None:
    """``check`` knows the shipped names and reports the others."""
    assert _disabled_names.check(_reading(**{_VAR: "flask,logging"})) is None
    warning = _disabled_names.check(_reading(**{_VAR: "reqests"}))
    assert warning is not None and warning.startswith(f"{_VAR} names unknown instrumentation")


# ----- printed once: the hook's part of the REPORTED_ENV protocol -------------------------


@pytest.fixture
def hook_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> pytest.CaptureFixture[str]:
    """The hook's ``_report`` writing to a captured stderr at the default level; the
    environment variable it sets and the level are restored after the test."""
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != REPORTED_ENV})
    monkeypatch.setattr(_diagnostics, "_level", _diagnostics._level)
    _diagnostics.set_level("warn")
    return capsys


def _warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("telemetryflow: warning: ")
    ]


def test_hook_prints_its_own_line_after_the_launchers_and_marks_it(
    hook_stderr: pytest.CaptureFixture[str],
) -> None:
    """The launcher printed the reading's lines: the hook adds only its own, then records
    the digest of everything so the program's Python children stay silent."""
    reading = _reading(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", **{_VAR: "reqests"})
    launcher_lines = problem_messages(reading)
    own = _disabled_names.check(reading)
    assert own is not None
    os.environ[REPORTED_ENV] = problems_digest(launcher_lines)
    _bootstrap._report(reading, [own])
    assert _warnings(hook_stderr) == [f"telemetryflow: warning: {own}"]
    assert os.environ[REPORTED_ENV] == problems_digest([*launcher_lines, own])
    _bootstrap._report(reading, [own])  # a child process: same environment
    assert _warnings(hook_stderr) == []


def test_hook_without_a_launcher_prints_everything_once(
    hook_stderr: pytest.CaptureFixture[str],
) -> None:
    """Nothing reported yet: the reading's lines and the hook's own, each once."""
    reading = _reading(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", **{_VAR: "reqests"})
    own = _disabled_names.check(reading)
    assert own is not None
    _bootstrap._report(reading, [own])
    lines = _warnings(hook_stderr)
    assert len(lines) == 2 and lines[1] == f"telemetryflow: warning: {own}"
    _bootstrap._report(reading, [own])
    assert _warnings(hook_stderr) == []


def test_hook_without_own_lines_keeps_the_launchers_protocol(
    hook_stderr: pytest.CaptureFixture[str],
) -> None:
    """With nothing of its own the hook stays silent after the launcher and sets nothing."""
    reading = _reading(TELEMETRYFLOW_BATCH_MAX_SIZE="lots", **{_VAR: "requests"})
    digest = problems_digest(problem_messages(reading))
    os.environ[REPORTED_ENV] = digest
    _bootstrap._report(reading, [])
    assert _warnings(hook_stderr) == []
    assert os.environ[REPORTED_ENV] == digest
