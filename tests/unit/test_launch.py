"""The launcher's pure steps: the program's environment, command lookup, problem digests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telemetryflow_bootstrap import _launch
from telemetryflow_bootstrap._launch import (
    LaunchError,
    child_environment,
    disabled_instrumentations,
    exec_program,
    hook_directory,
    problem_messages,
    problems_digest,
    resolve_command,
)
from telemetryflow_bootstrap.domain.config import load_config

_HOOK = str(hook_directory())


def _executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_hook_directory_holds_the_sitecustomize() -> None:
    """The folder put on PYTHONPATH really contains the hook Python imports at start-up."""
    assert (hook_directory() / "sitecustomize.py").is_file()
    assert hook_directory().is_absolute()


def test_hook_directory_prefers_the_copy_shipped_in_the_package(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """An installed wheel's ``_hook`` folder wins over the checkout layout."""
    package = tmp_path / "telemetryflow_bootstrap"
    (package / "_hook").mkdir(parents=True)
    (package / "_hook" / "sitecustomize.py").write_text("")
    monkeypatch.setattr(_launch, "__file__", str(package / "_launch.py"))
    assert hook_directory() == package / "_hook"


def test_hook_directory_falls_back_to_the_checkout_folder(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a shipped copy the top-level ``sitecustomize/`` folder of a checkout is used."""
    package = tmp_path / "telemetryflow_bootstrap"
    package.mkdir()
    monkeypatch.setattr(_launch, "__file__", str(package / "_launch.py"))
    assert hook_directory() == tmp_path / "sitecustomize"


def test_pythonpath_set_to_the_hook_when_absent() -> None:
    """With no PYTHONPATH (or an empty one) the program's is just the hook folder."""
    assert child_environment({}, {})["PYTHONPATH"] == _HOOK
    assert child_environment({"PYTHONPATH": ""}, {})["PYTHONPATH"] == _HOOK


def test_pythonpath_keeps_user_entries_after_the_hook() -> None:
    """The user's entries follow the hook, in their order, verbatim."""
    user = os.pathsep.join(["/a", "relative/b", "/c"])
    assert child_environment({"PYTHONPATH": user}, {})["PYTHONPATH"] == f"{_HOOK}{os.pathsep}{user}"


def test_pythonpath_hook_is_not_stacked() -> None:
    """A hook entry already present (first or later) appears once, first."""
    first = os.pathsep.join([_HOOK, "/a"])
    later = os.pathsep.join(["/a", _HOOK + "/", "/b"])
    assert child_environment({"PYTHONPATH": first}, {})["PYTHONPATH"] == first
    assert child_environment({"PYTHONPATH": later}, {})["PYTHONPATH"] == os.pathsep.join(
        [_HOOK, "/a", "/b"])
    assert child_environment({"PYTHONPATH": _HOOK}, {})["PYTHONPATH"] == _HOOK


def test_child_environment_applies_overrides_and_keeps_the_rest() -> None:
    """Options become variables; every other variable passes through; the input is untouched."""
    environ = {"HOME": "/home/u", "TELEMETRYFLOW_SERVICE_NAME": "old"}
    env = child_environment(environ, {"TELEMETRYFLOW_SERVICE_NAME": "new"})
    assert env == {"HOME": "/home/u", "TELEMETRYFLOW_SERVICE_NAME": "new", "PYTHONPATH": _HOOK,
                   "UWSGI_PY_CALL_OSAFTERFORK": "1"}
    assert environ == {"HOME": "/home/u", "TELEMETRYFLOW_SERVICE_NAME": "old"}


def test_uwsgi_after_fork_hooks_are_asked_for_unless_the_user_said_otherwise() -> None:
    """uWSGI is told to run Python's after-fork hooks in its workers (UWSGI_* options come
    from the environment), and a value the user set is kept."""
    assert child_environment({}, {})["UWSGI_PY_CALL_OSAFTERFORK"] == "1"
    env = child_environment({"UWSGI_PY_CALL_OSAFTERFORK": "0"}, {})
    assert env["UWSGI_PY_CALL_OSAFTERFORK"] == "0"


def test_override_updates_a_set_otel_fallback_so_they_agree() -> None:
    """An option also rewrites the OTEL_* fallback already set, so no conflict is reported."""
    env = child_environment({"OTEL_SERVICE_NAME": "old"}, {"TELEMETRYFLOW_SERVICE_NAME": "new"})
    assert env["OTEL_SERVICE_NAME"] == env["TELEMETRYFLOW_SERVICE_NAME"] == "new"
    assert load_config(env)[1].warnings == []


def test_protocol_override_uses_the_otel_spelling_for_the_fallback() -> None:
    """``--protocol http`` writes ``http/protobuf`` where OpenTelemetry reads it too."""
    env = child_environment({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
                            {"TELEMETRYFLOW_PROTOCOL": "http"})
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == env["TELEMETRYFLOW_PROTOCOL"] == "http/protobuf"
    config, reading = load_config(env)
    assert config.protocol.value == "http"
    assert reading.warnings == []
    plain = child_environment({}, {"TELEMETRYFLOW_PROTOCOL": "http"})
    assert plain["TELEMETRYFLOW_PROTOCOL"] == "http"
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in plain


@pytest.mark.parametrize("switch", [{"TELEMETRYFLOW_ENABLED": "false"},
                                    {"OTEL_SDK_DISABLED": "true"}])
def test_disabled_environment_is_returned_unchanged(switch: dict[str, str]) -> None:
    """Disabled, neither the hook nor the options touch the environment."""
    environ = {"PYTHONPATH": "/a", **switch}
    assert child_environment(environ, {"TELEMETRYFLOW_SERVICE_NAME": "x"}) == environ


def test_disable_option_merges_with_the_variable_in_effect() -> None:
    """--disable adds to ours, else to the OTEL fallback, without duplicates."""
    assert disabled_instrumentations({}, []) is None
    assert disabled_instrumentations({}, ["requests", "flask, urllib3"]) == "requests,flask,urllib3"
    ours = {"TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS": "django,requests"}
    assert disabled_instrumentations(ours, ["requests", "flask"]) == "django,requests,flask"
    theirs = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis"}
    assert disabled_instrumentations(theirs, ["flask"]) == "redis,flask"


def test_problem_messages_name_variable_and_value() -> None:
    """Each problem is one message saying the default is used; warnings follow."""
    _config, reading = load_config({"TELEMETRYFLOW_BATCH_MAX_SIZE": "lots",
                                    "TELEMETRYFLOW_SERVICE_NAME": "a", "OTEL_SERVICE_NAME": "b"})
    lines = problem_messages(reading)
    assert len(lines) == 2
    assert lines[0].startswith("TELEMETRYFLOW_BATCH_MAX_SIZE='lots': ")
    assert lines[0].endswith(" (using the default)")
    assert lines[1] == (
        "TELEMETRYFLOW_SERVICE_NAME and OTEL_SERVICE_NAME are both set and differ; "
        "using TELEMETRYFLOW_SERVICE_NAME"
    )


def test_problems_digest_is_short_stable_and_content_sensitive() -> None:
    """The digest identifies exactly the printed lines, in 12 hex characters."""
    digest = problems_digest(["a", "b"])
    assert digest == problems_digest(["a", "b"])
    assert len(digest) == 12
    assert int(digest, 16) >= 0
    assert digest != problems_digest(["a", "c"])


def test_resolve_searches_path_in_order(tmp_path: Path) -> None:
    """The first executable match on PATH wins, like ``env``."""
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    _executable(second / "tool")
    (first / "tool").write_text("not executable")
    path = os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)])
    assert resolve_command("tool", path) == str(second / "tool")
    _executable(first / "tool")
    assert resolve_command("tool", path) == str(first / "tool")


def test_resolve_uses_a_name_with_a_slash_as_is(tmp_path: Path) -> None:
    """A path is not searched on PATH."""
    tool = _executable(tmp_path / "tool")
    assert resolve_command(str(tool), "") == str(tool)
    with pytest.raises(LaunchError) as info:
        resolve_command("./definitely-not-here", str(tmp_path))
    assert info.value.exit_code == 127


def test_resolve_not_found_is_127_with_an_env_like_message(tmp_path: Path) -> None:
    """A missing program gives 127 and ``telemetryflow-run: 'name': No such file...``."""
    with pytest.raises(LaunchError) as info:
        resolve_command("no-such-tool", str(tmp_path))
    assert info.value.exit_code == 127
    assert info.value.message == "telemetryflow-run: 'no-such-tool': No such file or directory"
    assert str(info.value) == info.value.message
    with pytest.raises(LaunchError):
        resolve_command("", str(tmp_path))


def test_resolve_not_executable_is_126(tmp_path: Path) -> None:
    """A program found but not executable gives 126, by name or on PATH."""
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o644)
    for name, path in ((str(tmp_path / "tool"), ""), ("tool", str(tmp_path))):
        with pytest.raises(LaunchError) as info:
            resolve_command(name, path)
        assert info.value.exit_code == 126
        assert info.value.message == f"telemetryflow-run: '{name}': Permission denied"


def test_resolve_directory_is_126(tmp_path: Path) -> None:
    """A directory is not a program: 126, by path or on PATH."""
    (tmp_path / "tool").mkdir()
    with pytest.raises(LaunchError) as info:
        resolve_command(str(tmp_path / "tool"), "")
    assert info.value.exit_code == 126
    assert info.value.message.endswith(": Is a directory")
    with pytest.raises(LaunchError) as info:
        resolve_command("tool", str(tmp_path))
    assert info.value.exit_code == 126


def test_exec_program_reports_a_missing_program_before_exec(tmp_path: Path) -> None:
    """exec_program raises (and so returns control) when there is nothing to run."""
    with pytest.raises(LaunchError) as info:
        exec_program(["no-such-tool", "--x"], {"PATH": str(tmp_path)})
    assert info.value.exit_code == 127


# --- what a plain launch reads without the configuration parser ---------------------------

_SWITCH_VALUES = (None, "", "  ", "true", "FALSE", " yes ", "No", "1", "0", "on", "OFF",
                  "maybe", "tru", "2", "\u00fces")


@pytest.mark.parametrize("enabled", _SWITCH_VALUES)
@pytest.mark.parametrize("sdk_disabled", _SWITCH_VALUES)
@pytest.mark.parametrize("strict", (None, "true", "off", "sure"))
def test_switches_read_what_the_parser_reads(enabled: str | None, sdk_disabled: str | None,
                                             strict: str | None) -> None:
    """Where ``switches`` answers, the parser agrees on enabled and strict; it answers
    whenever each value is unset, blank or a boolean word, and only then."""
    environ = {name: value for name, value in (("TELEMETRYFLOW_ENABLED", enabled),
                                               ("OTEL_SDK_DISABLED", sdk_disabled),
                                               ("TELEMETRYFLOW_STRICT", strict))
               if value is not None}
    config, _reading = load_config(environ)
    quick = _launch.switches(environ)
    plain = all(v.strip().lower() in ("", "true", "false", "yes", "no", "1", "0", "on", "off")
                for v in environ.values())
    assert (quick is not None) is plain
    if quick is not None:
        assert quick == (config.enabled, config.strict)


def test_switch_words_are_the_parsers() -> None:
    from telemetryflow_bootstrap.domain import parsers

    assert _launch._TRUE_WORDS == parsers._TRUE
    assert _launch._FALSE_WORDS == parsers._FALSE


def test_every_fallback_is_an_otel_variable() -> None:
    """The launcher looks fallbacks up only when an ``OTEL_*`` variable is set: that is
    right only while every fallback is one."""
    from telemetryflow_bootstrap.domain.environment import VARIABLES

    assert all(f.startswith("OTEL_") for var in VARIABLES for f in var.fallbacks)


# ----- interpreter options that keep the hook out ----------------------------------------


@pytest.mark.parametrize(("program", "flag"), [
    (["python", "-I", "app.py"], "-I"),
    (["python3.11", "-IB", "app.py"], "-I"),
    (["/usr/bin/python3", "-sE", "app.py"], "-E"),
    (["python", "-S", "-c", "pass"], "-S"),
    (["pypy3", "-S", "-m", "http.server"], "-S"),
    (["python3-dbg", "-E", "app.py"], "-E"),
    (["python", "-X", "dev", "-I", "app.py"], "-I"),  # -X takes the next word
    (["python", "-WI", "-E", "app.py"], "-E"),  # ... unless its value is attached
    (["python", "--check-hash-based-pycs", "always", "-S"], "-S"),
    (["python.exe", "-I", "app.py"], "-I"),
])
def test_hook_bypassing_interpreter_options_are_named(program: list[str], flag: str) -> None:
    """``python -I/-E/-S`` cannot import the hook (PYTHONPATH ignored, or no site import):
    the reason names the interpreter and the option."""
    why = _launch.hook_bypassed(program)
    assert why is not None and why.startswith(f"{os.path.basename(program[0])[:-4]}"
                                              if program[0].endswith(".exe")
                                              else os.path.basename(program[0]))
    assert f" {flag} " in why


@pytest.mark.parametrize("program", [
    ["python", "app.py", "-I"],  # the program's own arguments
    ["python", "-c", "-I"],  # -c's command
    ["python", "-m", "pkg", "-S"],  # the module's arguments
    ["python", "-W", "I", "app.py"],  # -W's value
    ["python", "-", "-E"],  # stdin as the script
    ["python", "--", "-E"],
    ["python", "-s", "-B", "-u", "app.py"],  # -s (user site only) keeps PYTHONPATH
    ["gunicorn", "-I", "app:app"],  # not an interpreter
    ["pythonista", "-I"],
    ["python"],
    [],
])
def test_other_commands_and_options_do_not_count_as_bypassing(program: list[str]) -> None:
    assert _launch.hook_bypassed(program) is None
