"""``infrastructure.current_context``: the API's current context, read and set directly. What
one side sets, the other must read, and tokens must work across the two; otherwise a server
span attached here would be invisible to the program's own ``trace.get_current_span()``."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import threading

import pytest
from opentelemetry import context as api
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

from telemetryflow_bootstrap.infrastructure import current_context

SPAN = NonRecordingSpan(SpanContext(0x1234, 0x5678, False))


def test_the_standard_runtime_context_is_reached_directly():
    assert current_context.is_direct
    # the ContextVar's own C methods, no Python frame in between
    assert type(current_context.attach).__name__ == "builtin_function_or_method"
    assert type(current_context.get_current).__name__ == "builtin_function_or_method"


def test_what_one_side_sets_the_other_reads():
    ours = trace.set_span_in_context(SPAN)
    token = current_context.attach(ours)
    try:
        assert api.get_current() is ours
        assert trace.get_current_span() is SPAN
    finally:
        api.detach(token)  # the API resets a token made here
    assert api.get_current() is not ours

    theirs = api.set_value("k", "v")
    token = api.attach(theirs)
    try:
        assert current_context.get_current() is theirs
    finally:
        current_context.reset(token)  # and the other way round
    assert api.get_value("k") is None


def test_each_thread_and_task_has_its_own_current_context():
    token = current_context.attach(api.set_value("k", "main"))
    seen: list[object] = []
    try:
        thread = threading.Thread(target=lambda: seen.append(api.get_value("k")))
        thread.start()
        thread.join()

        async def task() -> object:
            current_context.attach(api.set_value("k", "task"))
            return api.get_value("k")

        seen.append(asyncio.run(task()))
        seen.append(api.get_value("k"))  # the task's attach stayed in the task
    finally:
        current_context.reset(token)
    assert seen == [None, "task", "main"]


def test_reset_refuses_a_token_of_another_context():
    """Unlike the API's detach, reset raises: it is only for a token set in the same call
    (which is how the servers use it)."""
    token = contextvars.copy_context().run(current_context.attach, api.set_value("k", 1))
    with pytest.raises(ValueError):
        current_context.reset(token)


def test_another_runtime_context_gets_the_apis_own_calls(tmp_path):
    """``OTEL_PYTHON_CONTEXT`` naming a runtime context of another class: the API's
    functions are used, and still see each other's contexts."""
    package = tmp_path / "othercontext"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext\n"
        "class Other(ContextVarsRuntimeContext):\n    pass\n")
    dist = tmp_path / "othercontext-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: othercontext\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_context]\nother = othercontext:Other\n")
    script = (
        "from opentelemetry import context as api\n"
        "from telemetryflow_bootstrap.infrastructure import current_context as c\n"
        "assert type(api._RUNTIME_CONTEXT).__name__ == 'Other', api._RUNTIME_CONTEXT\n"
        "assert not c.is_direct\n"
        "token = c.attach(api.set_value('k', 'v'))\n"
        "assert api.get_value('k') == 'v'\n"
        "c.reset(token)\n"
        "assert api.get_value('k') is None and c.get_current() is api.get_current()\n"
        "print('ok')\n")
    env = {**os.environ, "OTEL_PYTHON_CONTEXT": "other",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                       os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
