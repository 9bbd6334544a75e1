"""The hook pauses the cyclic GC while it starts (see ``sitecustomize``): the program must
get it back on, however the start ends, and nothing frozen."""

from __future__ import annotations

import json

import pytest

from .launcher import clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e

_REPORT = (
    "import gc, json\n"
    "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n"
)


def _state(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_gc_is_back_on_after_start_up(otlp_receiver):
    state = _state(run(python("-c", _REPORT), receiver_env(otlp_receiver)))
    assert state == {"enabled": True, "frozen": 0}


def test_the_program_s_cycles_are_collected_automatically_and_telemetry_flows(otlp_receiver):
    """No explicit gc.collect: the allocations alone trigger the collections that finalize
    the program's cycles; a span the program makes arrives."""
    code = (
        "import gc\n"
        "from opentelemetry import trace\n"
        "finalized = []\n"
        "class Node:\n"
        "    def __init__(self): self.me = self\n"
        "    def __del__(self): finalized.append(1)\n"
        "for _ in range(20000):\n"
        "    Node()\n"
        "with trace.get_tracer('t').start_as_current_span('after-start-up'):\n"
        "    pass\n"
        "print(len(finalized) > 15000, gc.isenabled())\n"
    )
    proc = run(python("-c", code), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]
    assert "after-start-up" in [span.name for span in otlp_receiver.wait_for_spans(1)]


def test_instrumentation_turned_off_leaves_the_gc_on():
    state = _state(run(python("-c", _REPORT), clean_env(TELEMETRYFLOW_ENABLED="false")))
    assert state == {"enabled": True, "frozen": 0}


def test_a_failed_start_leaves_the_gc_on(otlp_receiver, tmp_path):
    broken = tmp_path / "broken"
    (broken / "opentelemetry").mkdir(parents=True)
    (broken / "opentelemetry" / "__init__.py").write_text("raise ImportError('broken')\n")
    proc = run(python("-c", _REPORT), receiver_env(otlp_receiver, PYTHONPATH=str(broken)))
    assert "instrumentation disabled" in proc.stderr
    assert _state(proc) == {"enabled": True, "frozen": 0}


def test_a_start_with_a_configuration_problem_leaves_the_gc_on(
        otlp_receiver):
    """A configuration problem without strict mode: reported, the start goes on, GC on."""
    proc = run(python("-c", _REPORT),
               receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="lots"))
    assert "TELEMETRYFLOW_SAMPLE_RATE" in proc.stderr
    assert _state(proc) == {"enabled": True, "frozen": 0}
