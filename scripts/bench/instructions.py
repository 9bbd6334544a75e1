"""Per-request cost on a Flask route counted in CPU instructions (valgrind's callgrind), the
same comparison per_request.py times.

    .venv/bin/python scripts/bench/instructions.py [--no-theirs] [--jobs N] [--route R]

Why: on a shared machine a timed request varies by 10-20% between processes, more than an
unsampled request adds, so per_request.py cannot resolve small differences. An instruction
count does not depend on what else the machine is doing: the same command counts the same
within ~0.02% run after run. Each variant runs ``tests/apps/bench_flask.py`` twice under
``valgrind --tool=callgrind``, with N1 and then N2 measured requests after the same warm-up
(and ``gc.freeze()``, so a full collection's cost grows with the requests made instead of
landing wherever the collector's counters fall). The main thread's count is taken between
two markers the app sets around its measured requests (``--mark``: callgrind dumps its
counts when ``os.getloadavg`` is called), divided by N2: start-up, warm-up and exit are left
out (an exit flush exports whatever spans are left, on the main thread, a varying amount).
Every thread's count is (count(N2) - count(N1)) / (N2 - N1) over the whole runs.
``requests`` reads the proxy settings from the environment at every call, at a cost that
grows with the number of variables (~30k instructions each here); the telemetry settings of
one variant would count against it, so every variant starts with as many variables as the
largest, padded with inert ones. What a launcher itself adds (``PYTHONPATH`` ...) is
counted: that is its cost.

Counted twice: the main thread alone (it serves the requests; what a request's latency
pays) and every thread of the program's process (an exporter's worker too; its work is
driven by timers as well as by spans, and valgrind slows the program ~50x, so that column
is approximate). Instructions are not time: code that misses the caches costs more per
instruction, which is why a request's instrumentation costs more in a running server than
in a hot loop. Read this next to per_request.py, not instead of it. Needs ``valgrind`` on
PATH; runs the variants ``--jobs`` at a time (default: one per CPU): counts do not depend
on it.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    from . import _common as common
    from .per_request import TARGETS, UNSAMPLED_TARGET, upstream_server, variants
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]
    from per_request import (  # type: ignore[no-redef]
        TARGETS,
        UNSAMPLED_TARGET,
        upstream_server,
        variants,
    )

APP = str(common.APPS / "bench_flask.py")
ROUTES = {
    # route: (warm-up requests, N1, N2)
    "hello": (200, 200, 1200),
    "outbound": (50, 50, 250),
}
_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)
# cg.PID-THREAD at exit; cg.PID.N-THREAD at the Nth marker (the counts since the last dump)
_DUMP = re.compile(r"^cg\.(\d+)(?:\.(\d+))?-(\d+)$")
_MARKER = "os_getloadavg"  # the C function behind os.getloadavg (bench_flask.py --mark)


def count(variant: common.Variant, program: list[str]) -> tuple[int, int]:
    """(main thread between the markers, all threads) instructions of the program's
    process, run under callgrind. The launchers exec the program, so it keeps the
    launcher's pid: its dumps are written last and replace the launcher's."""
    with tempfile.TemporaryDirectory(prefix="tf-callgrind-") as tmp:
        cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes",
               "--separate-threads=yes", f"--dump-before={_MARKER}",
               f"--callgrind-out-file={tmp}/cg.%p", *variant.command(program)]
        done = subprocess.run(cmd, env={**variant.env, "PYTHONHASHSEED": "0"},
                              cwd=str(common.REPO), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise common.CommandFailed(f"{variant.name}: {' '.join(cmd)} exited "
                                       f"{done.returncode}:\n{done.stderr[-2000:]}")
        # pid -> thread -> dump number (0: at exit) -> count
        dumps: dict[int, dict[int, dict[int, int]]] = {}
        for path in Path(tmp).iterdir():
            found = _DUMP.match(path.name)
            total = _TOTAL.search(path.read_text(errors="replace"))
            if found and total:
                dumps.setdefault(int(found[1]), {}).setdefault(int(found[3]), {})[
                    int(found[2] or 0)] = int(total[1])
    # the program's process: the one whose main thread dumped at the markers
    marked = [threads for threads in dumps.values() if len(threads.get(1, {})) >= 3]
    if len(marked) != 1:
        raise common.CommandFailed(f"{variant.name}: expected one process with two marker "
                                   f"dumps, found {len(marked)}")
    (threads,) = marked
    main = threads[1]
    return main[max(main)], sum(sum(parts.values()) for parts in threads.values())


def per_request(variant: common.Variant, route: str, upstream: str) -> tuple[float, float]:
    warmup, n1, n2 = ROUTES[route]

    def program(n: int) -> list[str]:
        return [APP, "--route", route, "--upstream", upstream, "--batches", "1",
                "--batch-size", str(n), "--warmup", str(warmup), "--freeze", "--mark"]

    _window1, all1 = count(variant, program(n1))
    window2, all2 = count(variant, program(n2))
    return window2 / n2, (all2 - all1) / (n2 - n1)


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=1)
    p.add_argument("--jobs", type=int, default=0, help="variants counted at once (0: CPUs)")
    p.add_argument("--route", choices=(*ROUTES, "all"), default="all")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH: install it (Debian: apt-get install valgrind)",
              file=sys.stderr)
        return 2
    venv = common.maybe_anchor(args)
    print(common.header("Per-request cost, Flask test client, counted (instructions per "
                        "request)", venv))
    print("\nEach cell, under callgrind: main thread, its count over the N2 measured "
          "requests / N2; all threads, (count of the run with N2 requests - the run with "
          "N1) / (N2 - N1). The counts repeat run after run, so one run is enough. "
          "overhead = variant - its venv's bare python. /outbound includes a real loopback "
          "HTTP call.\n")
    jobs = args.jobs or os.cpu_count() or 1
    routes = list(ROUTES) if args.route == "all" else [args.route]
    with common.otlp_receiver() as receiver, upstream_server() as upstream, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        vs = _same_size_environments(variants(receiver.grpc_endpoint, venv))
        for route in routes:
            futures = {v.name: pool.submit(per_request, v, route, upstream) for v in vs}
            counted = {name: f.result() for name, f in futures.items()}
            warmup, n1, n2 = ROUTES[route]
            print(f"### `GET /{route}` (N1 = {n1}, N2 = {n2}, after {warmup} warm-up "
                  "requests)\n")
            rows = []
            for v in vs:
                main_thread, all_threads = counted[v.name]
                base = counted.get(v.baseline) if v.baseline else None
                rows.append([v.name, f"{main_thread / 1e3:,.1f}k",
                             _over(main_thread, base and base[0]),
                             f"{all_threads / 1e3:,.1f}k", _over(all_threads, base and base[1]),
                             v.baseline or "—"])
            print(common.table(["variant", "main thread", "overhead", "all threads",
                                "overhead", "vs"], rows))
            print()
            for column, what in ((0, "main thread"), (1, "all threads")):
                _ratios(route, what, {name: _overhead(vs, counted, name, column)
                                      for name in counted})
            print()
    return 0


def _same_size_environments(vs: list[common.Variant]) -> list[common.Variant]:
    """The variants with as many environment variables each (see the module)."""
    size = max(len(v.env) for v in vs)
    return [common.Variant(v.name, v.python, list(v.prefix),
                           {**v.env, **{f"_BENCH_PAD_{i}": "1"
                                        for i in range(size - len(v.env))}}, v.baseline)
            for v in vs]


def _overhead(vs: list[common.Variant], counted: dict[str, tuple[float, float]], name: str,
              column: int) -> float | None:
    variant = next(v for v in vs if v.name == name)
    if not variant.baseline or variant.baseline not in counted:
        return None
    return counted[name][column] - counted[variant.baseline][column]


def _over(value: float, base: float | None) -> str:
    if base is None:
        return "—"
    diff = (value - base) / 1e3
    return f"{'+' if diff >= 0 else ''}{diff:,.1f}k"


def _ratios(route: str, what: str, overhead: dict[str, float | None]) -> None:
    def r(a: str, b: str) -> float | None:
        return common.ratio(overhead.get(a), overhead.get(b))

    parts = []
    if overhead.get("theirs") is not None:
        parts.append(f"ours/theirs {common.fmt_ratio(r('ours', 'theirs'), TARGETS[route])}")
    parts.append("unsampled/sampled: ours "
                 f"{common.fmt_ratio(r('ours (sample rate 0)', 'ours'), UNSAMPLED_TARGET)}")
    if overhead.get("theirs (sample rate 0)") is not None:
        parts.append(f"theirs {common.fmt_ratio(r('theirs (sample rate 0)', 'theirs'))}")
    parts.append(f"rate 0.1/sampled: ours {common.fmt_ratio(r('ours (sample rate 0.1)', 'ours'))}")
    if overhead.get("theirs (sample rate 0.1)") is not None:
        parts.append(f"theirs {common.fmt_ratio(r('theirs (sample rate 0.1)', 'theirs'))}")
    print(f"- {what}: " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
