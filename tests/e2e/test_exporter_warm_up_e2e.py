"""The exporter stack is imported once the first item is queued, not at the first export
(``LazyExporter.warm_up``): a program that goes on logging meanwhile does not fill the
queue while the first export waits for its imports. Run the way a user runs it."""

from __future__ import annotations

import pytest

from .launcher import python, receiver_env, run

pytestmark = pytest.mark.e2e

_GRPC_LOGS = "opentelemetry.exporter.otlp.proto.grpc._log_exporter"

# One record, then wait (no export can happen: the batch timeout is a minute) until the
# worker has imported the exporter; the record is exported at exit.
_WARMS_UP = f"""
import logging, sys, time
logging.getLogger("app").warning("first")
deadline = time.monotonic() + 20
while {_GRPC_LOGS!r} not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.01)
print("warmed", {_GRPC_LOGS!r} in sys.modules, flush=True)
"""

# Fork right after the first record, while the worker may be in the middle of the import:
# the fork waits for it (the build lock), so the child imports and exports as well.
_FORKS = """
import logging, os, sys
log = logging.getLogger("app")
log.warning("parent first")
pid = os.fork()
if pid == 0:
    log.warning("child %s", os.getpid())
    sys.exit(0)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_the_first_record_warms_the_exporter_up_before_any_export(otlp_receiver):
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    python_ = python("-c", "import sys; print(sys.modules.get('grpc'))")
    assert run(python_, env).stdout.strip() == "None"  # nothing queued, nothing imported

    done = run(python("-c", _WARMS_UP), env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["warmed True"]
    assert [log.body for log in otlp_receiver.wait_for_logs(1)] == ["first"]


@pytest.mark.parametrize("attempt", range(3))
def test_a_fork_during_the_warm_up_leaves_both_processes_exporting(otlp_receiver, attempt):
    done = run(python("-c", _FORKS), receiver_env(otlp_receiver))

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child exit 0"]
    assert "Traceback" not in done.stderr and "error" not in done.stderr.lower()
    bodies = sorted(log.body for log in otlp_receiver.wait_for_logs(2))
    assert bodies[1] == "parent first" and bodies[0].startswith("child ")
