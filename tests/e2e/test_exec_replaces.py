"""A program that replaces itself with ``os.exec*`` loses nothing it made before: the exec
skips atexit, so we export first, and the new program's process span is the child of the
old one's, which arrives too."""

from __future__ import annotations

import pytest

from .launcher import app, python, receiver_env, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("how", ["execv", "execl"])
def test_what_was_made_before_an_exec_arrives(otlp_receiver, how):
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    proc = run(python(app("exec_self_app.py"), how), env)
    assert proc.returncode == 0, proc.stderr
    spans = otlp_receiver.wait_for_spans(4, timeout=15)
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    assert sorted(by_name) == ["after-exec", "before-exec", "exec_self_app"]
    first, second = sorted(by_name["exec_self_app"], key=lambda s: s.start_ns)
    assert first.parent_span_id == "" and second.parent_span_id == first.span_id
    (before,) = by_name["before-exec"]
    (after,) = by_name["after-exec"]
    assert before.parent_span_id == first.span_id and after.parent_span_id == second.span_id
    assert len({s.trace_id for s in spans}) == 1
    assert [r.body for r in otlp_receiver.wait_for_logs(1, timeout=10)] == ["logged before exec"]
