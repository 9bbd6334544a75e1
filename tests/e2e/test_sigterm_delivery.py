"""SIGTERM still ends the program when its main thread cannot run a Python handler.

Bare, SIGTERM's default action kills a process whatever its threads do. Our handler (flush,
then die) is Python, which runs on the main thread only: a SIGTERM landing on another
thread while the main thread waits in C went unhandled, and ``Pool.terminate()`` could wait
for such a worker forever. These run the program for real under the launcher.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .launcher import LAUNCHER, REPO, app, python, receiver_env, run

pytestmark = pytest.mark.e2e


def _start(receiver, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([LAUNCHER, *python(app("sigterm_elsewhere_app.py"), *args)],
                            env=receiver_env(receiver), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def test_sigterm_landing_on_another_thread_still_exports_and_ends(otlp_receiver):
    proc = _start(otlp_receiver)
    try:
        masks = json.loads(proc.stdout.readline())
        ours = {name: blocked for name, blocked in masks.items()
                if not name.startswith(("main:", "app-thread:"))}
        assert ours, masks  # our exporter/metric threads (and gRPC's, once it exported)
        assert all(ours.values()), f"our threads must not take SIGTERM: {masks}"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), proc.stderr.read()
    assert took < 5, took
    spans = otlp_receiver.wait_for_spans(1, name="before-sigterm")
    assert spans[0].name == "before-sigterm"


def test_a_forked_child_handles_its_own_sigterm_and_the_parent_lives_on(otlp_receiver):
    """The child watches for its own signals: its SIGTERM ends it, not its parent."""
    proc = _start(otlp_receiver, "fork")
    try:
        child = json.loads(proc.stdout.readline())["child"]
        json.loads(proc.stdout.readline())  # the child's masks: it is ready
        os.kill(child, signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # (died of SIGTERM when its main thread got to the handler after all, else our exit)
    exit_code = json.loads(out.strip().splitlines()[-1])["child_exit"]
    assert exit_code in (-signal.SIGTERM, 128 + signal.SIGTERM), err
    assert proc.returncode == 0, err


def test_a_child_signalled_before_its_fork_hooks_ran_never_ends_the_parent(otlp_receiver):
    """Until its after-fork hook gives it a pipe of its own, a forked child shares the
    parent's wakeup fd: a SIGTERM sent the moment ``fork()`` returns (``Pool.terminate()``
    right after a worker started) used to reach the parent's watcher, which ended the
    parent (exit 143, about one fork pool run in eight). Every child must die of it, the
    parent must not."""
    proc = run(python(app("sigterm_forked_children_app.py"), "20"),
               receiver_env(otlp_receiver), timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout.strip() == "parent survived; children ended by SIGTERM: 20/20"
    assert "Traceback" not in proc.stderr


def test_pool_terminate_never_waits_for_a_worker_forever(otlp_receiver):
    """``with Pool(4) as pool: pool.map(...)`` ends with terminate(), often while the last
    worker is just starting to wait for work: the moment a SIGTERM used to be lost in. Each
    run must end (it took about one in fifteen to hang before)."""
    for _ in range(20):
        proc = run(python(app("process_pool_app.py"), "forkserver"),
                   receiver_env(otlp_receiver), timeout=30)
        assert proc.returncode == 0, proc.stderr


def test_a_program_with_its_own_sigterm_handler_shuts_down_its_own_way(otlp_receiver):
    """Our watcher acts only for our own handler: a program that took SIGTERM over (a server's
    graceful shutdown) keeps its handler, however long it takes."""
    proc = subprocess.Popen([LAUNCHER, *python(app("own_sigterm_app.py"))],
                            env=receiver_env(otlp_receiver), cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out.strip() == "graceful", err
    assert proc.returncode == 0, err
