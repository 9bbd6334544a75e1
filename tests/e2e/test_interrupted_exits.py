"""Exits the program did not ask for keep the status bare Python gives them: a SIGTERM to
the whole process group (a Pool's workers die with the parent, none is started again while
we export), an unhandled KeyboardInterrupt (death by SIGINT, even while our export
thread is still importing), and a SIGINT or SIGTERM while the exit waits for our last
export (it ends at once, of that signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .blackhole import blackhole
from .launcher import LAUNCHER, REPO, app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e
__all__ = ["blackhole"]  # (the fixture)


def _session_processes(sid: int) -> list[str]:
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                with open(f"/proc/{pid}/cmdline") as cmdline:
                    alive.append(f"{pid}: {cmdline.read().replace(chr(0), ' ')[:80]}")
        except (OSError, IndexError, ValueError):
            pass
    return alive


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc to list a session's processes")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_sigterm_to_the_group_leaves_no_pool_worker_behind(otlp_receiver, method):
    """Bare, a SIGTERM to the group kills the parent and its busy workers at once. While we
    export before dying, the pool used to start new workers in their place, left running
    their 60 s tasks as orphans (and flooding stderr with BrokenPipeError tracebacks)."""
    proc = subprocess.Popen([LAUNCHER, *python(app("pool_busy_app.py"), method)],
                            env=receiver_env(otlp_receiver), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == -signal.SIGTERM
        deadline = time.monotonic() + 5
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _session_processes(proc.pid) == []
        assert "Traceback" not in err, err
    finally:
        for line in _session_processes(proc.pid):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    assert otlp_receiver.wait_for_spans(1, timeout=10)


def test_unhandled_keyboard_interrupt_still_dies_of_sigint(otlp_receiver):
    """Exit status as bare (death by SIGINT: 130 in a shell), and the span still arrives;
    a few times, as the export thread's import is a race with the exit."""
    bare = subprocess.run([sys.executable, str(app("interrupted_app.py"))], env=clean_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bare.returncode == -signal.SIGINT
    for _ in range(3):
        proc = run(python(app("interrupted_app.py")), receiver_env(otlp_receiver))
        assert proc.returncode == -signal.SIGINT, proc.stderr
        assert proc.stderr.rstrip().endswith("KeyboardInterrupt")
    assert [s.name for s in otlp_receiver.wait_for_spans(3, timeout=10)].count(
        "before-interrupt") == 3


# ----- a signal while the exit waits for the last export --------------------------------

_S = signal.Signals


@pytest.mark.parametrize(("first", "second"), [
    (None, _S.SIGTERM), (None, _S.SIGINT),
    (_S.SIGINT, _S.SIGINT), (_S.SIGINT, _S.SIGTERM),
    (_S.SIGTERM, _S.SIGINT), (_S.SIGTERM, _S.SIGTERM),
], ids=lambda s: s.name if s is not None else "exits")
def test_a_signal_while_the_exit_waits_for_the_last_export_ends_it_at_once(
        blackhole, first, second):
    """The program is leaving (it ended, or a first SIGINT/SIGTERM ends it) and only waits
    for the last export to a collector that never answers. A SIGINT or SIGTERM then ends
    it at once, of that signal, as bare Python would have been ended by it: no 30 s wait
    for the shutdown timeout, no traceback of ours (Ctrl-C raised KeyboardInterrupt into
    our exit handler: a traceback and exit status 1), at most one line of ours."""
    env = clean_env(TELEMETRYFLOW_ENDPOINT=blackhole.endpoint, TELEMETRYFLOW_PROTOCOL="grpc",
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="30",
                    TELEMETRYFLOW_BATCH_TIMEOUT="60000")  # (nothing exported before the exit)
    args = [app("all_signals_app.py")] + (["wait"] if first is not None else [])
    proc = subprocess.Popen([LAUNCHER, *python(*args)], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == ("waiting" if first else "exiting")
        if first is not None:
            proc.send_signal(first)
        # the exit's export reached the collector: from now on it waits for an answer
        assert blackhole.connected.wait(20), "no export at exit"
        time.sleep(0.2)
        assert proc.poll() is None, "the exit did not wait for the export"
        sent = time.monotonic()
        proc.send_signal(second)
        _out, err = proc.communicate(timeout=20)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -second, err
    assert took < 3.0, took
    # (the program's own KeyboardInterrupt traceback, after a first Ctrl-C, as bare)
    assert err.count("Traceback") == (1 if first is _S.SIGINT else 0), err
    ours = [line for line in err.splitlines() if line.startswith("telemetryflow:")]
    assert len(ours) <= 1, err
    if ours:
        assert f"(abandoned on {second.name}); dropped: spans=" in ours[0], ours
