"""Process and CPython runtime metrics, observed at each metric export.

Produces (names, units and attributes from the process/CPython semantic conventions)
    ``process.cpu.time``                    counter, s, ``cpu.mode`` = user | system
    ``process.memory.usage``                up-down counter, By (resident set size)   [/proc]
    ``process.memory.virtual``              up-down counter, By                       [/proc]
    ``process.thread.count``                up-down counter, {thread} (OS threads where /proc
                                            exists, Python threads elsewhere)
    ``process.unix.file_descriptor.count``  up-down counter, {file_descriptor}        [/proc]
                                            (the current name of the deprecated
                                            ``process.open_file_descriptor.count``)
    ``process.context_switches``            counter, {context_switch},
                                            ``process.context_switch.type`` = voluntary |
                                            involuntary                               [Unix]
    ``process.uptime``                      gauge, s
    ``cpython.gc.collections``              counter, {collection}, ``cpython.gc.generation``
    ``cpython.gc.collected_objects``        counter, {object}, ``cpython.gc.generation``
    ``cpython.gc.uncollectable_objects``    counter, {object}, ``cpython.gc.generation``
    An instrument whose source this platform lacks is not registered at all (no empty
    metric).

Reads
    TELEMETRYFLOW_RUNTIME_METRICS (false: none of this), TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS
    (``runtime_metrics``), through the config object; TELEMETRYFLOW_METRIC_EXPORT_INTERVAL
    sets how often the callbacks run.

Why no dependency (psutil): everything comes from /proc/self, ``os.times``,
``resource.getrusage`` and ``gc.get_stats``, a few microseconds per export. Callbacks run on
the metric reader's thread and are read fresh each time, so a forked child reports itself. A
callback that fails yields nothing; the first failure per metric is reported, then it stays
quiet (a metric missing on a platform is not worth a line a minute).
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from .. import _diagnostics

_PROC = "/proc/self"
_Reader = Callable[[], Iterable[Observation]]


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as file:
        return file.read()


def _statm() -> tuple[int, int]:
    """(virtual, resident) bytes."""
    size, resident = _read(f"{_PROC}/statm").split()[:2]
    page = os.sysconf("SC_PAGE_SIZE")
    return int(size) * page, int(resident) * page


def _cpu_time() -> Iterable[Observation]:
    times = os.times()
    return (Observation(times.user, {"cpu.mode": "user"}),
            Observation(times.system, {"cpu.mode": "system"}))


def _memory_usage() -> Iterable[Observation]:
    return (Observation(_statm()[1]),)


def _memory_virtual() -> Iterable[Observation]:
    return (Observation(_statm()[0]),)


def _thread_count() -> Iterable[Observation]:
    try:
        for line in _read(f"{_PROC}/status").splitlines():
            if line.startswith("Threads:"):
                return (Observation(int(line.split()[1])),)
    except OSError:
        pass
    return (Observation(threading.active_count()),)


def _file_descriptors() -> Iterable[Observation]:
    # listdir holds one descriptor open on the directory while it reads: not the program's.
    return (Observation(max(len(os.listdir(f"{_PROC}/fd")) - 1, 0)),)


def _context_switches() -> Iterable[Observation]:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads, unlike /proc/self/status
    return (Observation(usage.ru_nvcsw, {"process.context_switch.type": "voluntary"}),
            Observation(usage.ru_nivcsw, {"process.context_switch.type": "involuntary"}))


_started = time.monotonic()


def _reset_start_after_fork() -> None:
    global _started
    _started = time.monotonic()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_start_after_fork)


def _uptime() -> Iterable[Observation]:
    try:
        # /proc/self/stat: field 22 (starttime, in clock ticks after boot) counts from after
        # the command name, which may itself contain spaces and parentheses.
        fields = _read(f"{_PROC}/stat").rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        since_boot = float(_read("/proc/uptime").split()[0])
        return (Observation(max(since_boot - started, 0.0)),)
    except (OSError, ValueError, IndexError):
        # No /proc: time since we started, which is the interpreter's start give or take
        # the import of site.
        return (Observation(time.monotonic() - _started),)


def _gc_stat(key: str) -> _Reader:
    def read() -> Iterable[Observation]:
        return [Observation(stats[key], {"cpython.gc.generation": generation})
                for generation, stats in enumerate(gc.get_stats())]

    return read


def _instruments() -> list[tuple[str, str, str, str, _Reader]]:
    """(name, kind, unit, description, reader) for what this platform can measure."""
    has_proc = os.path.exists(f"{_PROC}/statm")
    specs: list[tuple[str, str, str, str, _Reader]] = [
        ("process.cpu.time", "counter", "s", "Total CPU seconds broken down by CPU mode.",
         _cpu_time),
        ("process.thread.count", "up_down_counter", "{thread}", "Process threads count.",
         _thread_count),
        ("process.uptime", "gauge", "s", "The time the process has been running.", _uptime),
    ]
    if has_proc:
        specs += [
            ("process.memory.usage", "up_down_counter", "By",
             "The amount of physical memory in use.", _memory_usage),
            ("process.memory.virtual", "up_down_counter", "By",
             "The amount of committed virtual memory.", _memory_virtual),
        ]
    if os.path.isdir(f"{_PROC}/fd"):
        specs.append(("process.unix.file_descriptor.count", "up_down_counter",
                      "{file_descriptor}", "Number of file descriptors in use by the process.",
                      _file_descriptors))
    if sys.platform != "win32":
        specs.append(("process.context_switches", "counter", "{context_switch}",
                      "Number of times the process has been context switched.",
                      _context_switches))
    if sys.implementation.name == "cpython" and hasattr(gc, "get_stats"):
        specs += [
            ("cpython.gc.collections", "counter", "{collection}",
             "The number of times a generation was collected since interpreter start.",
             _gc_stat("collections")),
            ("cpython.gc.collected_objects", "counter", "{object}",
             "The total number of objects collected inside a generation since interpreter "
             "start.", _gc_stat("collected")),
            ("cpython.gc.uncollectable_objects", "counter", "{object}",
             "The total number of objects which were found to be uncollectable inside a "
             "generation since interpreter start.", _gc_stat("uncollectable")),
        ]
    return specs


def _guarded(name: str, read: _Reader) -> Callable[[CallbackOptions], Iterable[Observation]]:
    reported = False

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        nonlocal reported
        try:
            return list(read())
        except Exception as exc:
            if not reported:
                reported = True
                _diagnostics.warn(f"runtime metric {name} could not be read "
                                  f"({type(exc).__name__}: {exc}); it is left out")
            return []

    return callback


_CREATE = {"counter": "create_observable_counter",
           "up_down_counter": "create_observable_up_down_counter",
           "gauge": "create_observable_gauge"}


def install(meter: Any) -> list[str]:
    """Register the runtime instruments on ``meter``; returns the metric names registered."""
    names = []
    for name, kind, unit, description, read in _instruments():
        create = getattr(meter, _CREATE[kind])
        create(name, callbacks=[_guarded(name, read)], unit=unit, description=description)
        names.append(name)
    return names
