"""``_context_env.keep_for_children``: the launcher's private variables leave ``os.environ``
but reach every child, and an environment built for a child under the hook gets them back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from telemetryflow_bootstrap import _context_env
from telemetryflow_bootstrap._launch import hook_directory_path

NAME = "_TELEMETRYFLOW_TEST_KEPT"
_READ_C_ENVIRONMENT = (
    "import sys; raw = open('/proc/self/environ', 'rb').read().split(b'\\0'); "
    f"print([v.decode() for v in raw if v.startswith(b'{NAME}=')])")


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_context_env, "_for_children", {})
    monkeypatch.setenv(NAME, "inherited")
    _context_env.keep_for_children({NAME: None})
    yield
    os.unsetenv(NAME)


def test_taken_out_of_os_environ_but_inherited_by_children(kept) -> None:
    assert NAME not in os.environ
    child = subprocess.run([sys.executable, "-c", _READ_C_ENVIRONMENT], check=True,
                           capture_output=True, text=True, env=None)
    assert child.stdout.strip() == f"['{NAME}=inherited']"


def test_an_environment_for_a_child_under_the_hook_gets_them_back(kept) -> None:
    under_hook = {"PATH": "/bin", "PYTHONPATH": os.pathsep.join([hook_directory_path(), "/x"])}
    assert _context_env.child_environment(under_hook)[NAME] == "inherited"
    assert NAME not in under_hook  # (a copy: the caller's dict is left alone)
    own = {**under_hook, NAME: "the program's"}
    assert _context_env.child_environment(own) is None  # nothing to add: used as given


def test_an_environment_for_a_child_outside_the_hook_is_left_alone(kept) -> None:
    assert _context_env.child_environment({"PATH": "/bin"}) is None
    assert _context_env.child_environment({"PATH": "/bin", "PYTHONPATH": "/x"}) is None


def test_no_environment_given_needs_no_copy(kept) -> None:
    """Without ``env`` (and no span current) the child inherits the C environment, which
    has the variables: no copy of ``os.environ`` is made."""
    assert _context_env.child_environment(None) is None


def test_a_given_value_replaces_the_inherited_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_context_env, "_for_children", {})
    monkeypatch.setenv(NAME, "inherited")
    _context_env.keep_for_children({NAME: "mine", "_TELEMETRYFLOW_TEST_ABSENT": None})
    try:
        assert NAME not in os.environ
        assert _context_env._for_children == {NAME: "mine"}
    finally:
        os.unsetenv(NAME)
