"""The SIGTERM watcher's pipe stays out of the program's way."""

from __future__ import annotations

import os
import resource

import pytest

from telemetryflow_bootstrap import _sigterm_watch


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= 513,
                    reason="descriptor limit too low to move a descriptor past 512")
def test_its_descriptors_sit_high_and_are_not_inherited_by_programs_it_starts() -> None:
    """A daemon closes every descriptor and then opens files, which get the lowest free
    numbers: ours must not be one of them (the C handler would write into that file)."""
    read_fd, write_fd = os.pipe()
    moved = [_sigterm_watch._high(fd) for fd in (read_fd, write_fd)]
    try:
        assert all(fd >= 512 for fd in moved), moved
        assert not any(os.get_inheritable(fd) for fd in moved)
        os.write(moved[1], b"\x0f")
        assert os.read(moved[0], 1) == b"\x0f"
        for fd in (read_fd, write_fd):  # the low originals are closed
            with pytest.raises(OSError):
                os.fstat(fd)
    finally:
        for fd in moved:
            os.close(fd)


def test_sigterm_stays_blocked_across_a_fork_until_the_child_has_rearmed() -> None:
    """The hooks block SIGTERM in the forking thread before the fork; the parent gets its
    mask back when the fork returns, the child only once ``rearm`` has run (its SIGTERM,
    pending meanwhile, then reaches its own pipe, never the parent's)."""
    import signal
    import threading

    seen_in_rearm: list[bool] = []
    hooks = _sigterm_watch.fork_hooks(
        lambda: seen_in_rearm.append(signal.SIGTERM in signal.pthread_sigmask(
            signal.SIG_BLOCK, ())))
    assert set(hooks) == {"before", "after_in_parent", "after_in_child"}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    assert signal.SIGTERM not in before

    def fork_path(after: str) -> tuple[bool, bool]:
        hooks["before"]()
        held = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, ())
        hooks[after]()
        return held, signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, ())

    assert fork_path("after_in_parent") == (True, False)
    assert fork_path("after_in_child") == (True, False)
    assert seen_in_rearm == [True]  # still blocked while re-arming
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before
    # forks from two threads at once keep their own saved masks
    results: list[tuple[bool, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(fork_path("after_in_parent")))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [(True, False), (True, False)]
    assert not _sigterm_watch._fork_masks.get(threading.get_ident())


def test_a_child_that_does_not_arm_stops_writing_into_the_parents_pipe() -> None:
    """``disarm_inherited`` clears the wakeup fd a forked child inherited (and does nothing
    in the process that armed it)."""
    import signal

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd)
    saved = dict(_sigterm_watch._armed)
    try:
        _sigterm_watch._armed.update(read=read_fd, write=write_fd, pid=os.getpid())
        _sigterm_watch.disarm_inherited()  # the arming process: nothing changes
        assert signal.set_wakeup_fd(write_fd) == write_fd
        pid = os.fork()
        if pid == 0:  # the child: as after a fork whose program took SIGTERM over
            code = 1
            try:
                _sigterm_watch.disarm_inherited()
                code = 0 if signal.set_wakeup_fd(-1) == -1 else 2
            finally:
                os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        signal.set_wakeup_fd(previous)
        _sigterm_watch._armed.clear()
        _sigterm_watch._armed.update(saved)
        os.close(read_fd)
        os.close(write_fd)


_FD_TABLE_PROBE = """
import os, sys, threading
def fd_table_size():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("FDSize:"))
from telemetryflow_bootstrap import _sigterm_watch
if sys.argv[1] == "threaded":
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
before = fd_table_size()
_sigterm_watch.prepare()
print(before, fd_table_size(), len(os.listdir("/proc/self/fd")))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= 513,
                    reason="descriptor limit too low to move a descriptor past 512")
@pytest.mark.parametrize("threads", ["single", "threaded"])
def test_prepare_grows_the_descriptor_table_only_while_single_threaded(threads: str) -> None:
    """``prepare`` (the hook, before the SDK starts threads) grows the table past 512 so
    that ``arm`` moving its pipe up later does not make the kernel wait for an RCU grace
    period (3-7 ms per process start, measured). With threads running it would pay that
    wait itself: it leaves the table alone. Either way it leaves no descriptor open."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _FD_TABLE_PROBE, threads],
                            capture_output=True, text=True, timeout=60, check=True)
    before, after, open_fds = map(int, result.stdout.split())
    assert before < 512
    assert (after > 512) is (threads == "single"), (before, after)
    baseline = subprocess.run(
        [sys.executable, "-c", "import os; print(len(os.listdir('/proc/self/fd')))"],
        capture_output=True, text=True, timeout=60, check=True)
    assert open_fds == int(baseline.stdout)


_HOOK_PROBE = """
import threading
from telemetryflow_bootstrap import _bootstrap, _sigterm_watch
seen = []
prepare = _sigterm_watch.prepare
def noting_prepare():
    seen.append(threading.active_count())
    prepare()
_sigterm_watch.prepare = noting_prepare
client = _bootstrap.start()
assert client is not None
print(seen, threading.active_count(), min(_sigterm_watch._armed[k] for k in ("read", "write")))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= 513,
                    reason="descriptor limit too low to move a descriptor past 512")
def test_the_hook_prepares_the_table_before_the_sdk_starts_any_thread() -> None:
    """The hook's start calls ``prepare`` once, while the process has one thread; the SDK's
    threads start after it, and the watcher's pipe lands past 512."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_"))}
    env["TELEMETRYFLOW_EXPORTER"] = "console"
    result = subprocess.run([sys.executable, "-c", _HOOK_PROBE], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    seen, threads, lowest_pipe_fd = result.stdout.rsplit(" ", 2)
    assert seen.strip() == "[1]"
    assert int(threads) > 1  # (the SDK's threads, started after prepare)
    assert int(lowest_pipe_fd) >= 512


def test_a_second_sigterm_while_the_watchers_termination_runs_abandons_it() -> None:
    """The watcher runs the termination it starts on a thread of its own and keeps reading:
    a further SIGTERM meanwhile (its export waits for a collector that does not answer)
    calls ``abandon`` at once, as a second SIGTERM kills a bare program. ``abandon`` may
    return (it took the signal for a copy of the first): the watcher then reads on, until
    its pipe closes."""
    import signal
    import threading

    read_fd, write_fd = os.pipe()
    exporting, release = threading.Event(), threading.Event()
    abandoned = threading.Event()
    terminating: list[bool] = []

    def terminate() -> None:
        terminating.append(True)
        exporting.set()
        release.wait(10)

    watcher = threading.Thread(target=_sigterm_watch._watch, daemon=True,
                               args=(read_fd, lambda: bool(terminating), terminate,
                                     abandoned.set))
    watcher.start()
    try:
        os.write(write_fd, bytes([signal.SIGINT]))  # (other signals: not the watcher's)
        os.write(write_fd, bytes([signal.SIGTERM]))
        assert exporting.wait(5), "the first SIGTERM did not start the termination"
        assert not abandoned.is_set()
        os.write(write_fd, bytes([signal.SIGTERM]))
        assert abandoned.wait(5), "the second SIGTERM did not abandon the termination"
        watcher.join(0.5)
        assert watcher.is_alive(), "the watcher stopped reading after abandon() returned"
    finally:
        release.set()
        os.close(write_fd)
        watcher.join(5)
        os.close(read_fd)
    assert not watcher.is_alive(), "the watcher did not end with its pipe"
