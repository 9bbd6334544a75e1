"""The program's objects are collected and finalized as without the launcher, at exit too.

Why this is a test: ``gc.freeze()`` at the end of the hook would cut ~15 ms off every
process's exit (shutdown's collections would no longer walk the SDK's objects), but it
also freezes ``__main__`` and the modules imported so far. A cycle the program hangs off a
module global is then never collected at shutdown and its ``__del__`` never runs, where
plain CPython runs it. The hook must not freeze anything.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from .launcher import python, receiver_env, run

pytestmark = pytest.mark.e2e

# Cycles that die at run time (gc.collect) and at exit (a module global: garbage once
# shutdown drops the module); each __del__ writes to fd 1 directly (print is silent once
# sys.stdout is gone). One span through the API, so the telemetry is seen arriving too.
_PROGRAM = """
import gc, os
from opentelemetry import trace

class Cycle:
    def __init__(self, label):
        self.label = label
        self.me = self
    def __del__(self, _write=os.write):
        _write(1, f"finalized {self.label}\\n".encode())

Cycle("at run time")
print("collected", gc.collect() > 0, flush=True)
keep = Cycle("at exit")
with trace.get_tracer("finalizers").start_as_current_span("program-span"):
    pass
print("frozen", gc.get_freeze_count(), flush=True)
"""
_EXPECTED = ["finalized at run time", "collected True", "frozen 0", "finalized at exit"]


def test_bare_python_finalizes_the_cycles_as_this_test_expects():
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                          check=True)
    assert done.stdout.splitlines() == _EXPECTED


def test_the_programs_cycles_are_finalized_at_run_time_and_at_exit(otlp_receiver):
    done = run(python("-c", _PROGRAM), receiver_env(otlp_receiver))

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == _EXPECTED
    names = {span.name for span in otlp_receiver.wait_for_spans(2, timeout=10)}
    assert {"program-span", "python"} <= names
