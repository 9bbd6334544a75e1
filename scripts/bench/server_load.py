"""Per-request cost behind a real server: gunicorn (1 sync worker) driven over loopback.

    .venv/bin/python scripts/bench/server_load.py [--runs N] [--requests N]
        [--warmup-requests N] [--no-theirs]

Each variant starts ``gunicorn -w 1 tests.apps.server_flask:app`` bare, under
``telemetryflow-run`` and under ``opentelemetry-instrument`` (both exporting over OTLP/gRPC
to a real receiver on loopback), waits until it answers, sends warm-up requests, then
``--requests`` sequential ``GET /hello/bench`` requests from this process (a new connection
each, as gunicorn's sync worker closes it). Measured: the server's CPU time per request
(master and worker, all threads, from /proc: user + system) and the client-side wall time
per request. Servers are started ``--runs`` times each (after ``--warmup`` dropped rounds),
interleaved; the table shows the median over runs.

A variant that exports spans is measured only once its first export has reached the
receiver: ours builds its exporter stack (importing grpc, ~130 ms of CPU) at the first
export, on the export thread, where opentelemetry-instrument builds it at start-up. Counted
inside the window, that one-time cost came to ~30 µs per request over 4000 requests.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

TARGET = 0.35  # ours/theirs per-request overhead, as for the test-client hello route
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (gunicorn's worker)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                out += [int(c) for c in children.read().split()]
    except OSError:
        pass
    return out


def _get(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/hello/bench")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"server answered {response.status}")
    finally:
        conn.close()


def _gunicorn(variant: common.Variant) -> list[str]:
    gunicorn = str(Path(variant.python).with_name("gunicorn"))
    return [*variant.prefix, gunicorn]


def measure(variant: common.Variant, requests: int, warmup: int,
            exported: Callable[[], bool] | None = None) -> tuple[float, float]:
    """(server CPU µs per request, client wall µs per request) for one server run;
    ``exported()`` (a variant that exports spans) tells when its first export arrived."""
    port = common.free_port()
    cmd = [*_gunicorn(variant), "-w", "1", "-b", f"127.0.0.1:{port}",
           "tests.apps.server_flask:app"]
    proc = subprocess.Popen(cmd, env=variant.env, cwd=str(common.REPO),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise common.CommandFailed(
                        f"{variant.name}: gunicorn did not start: "
                        f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
                    ) from None
                time.sleep(0.1)
        for _ in range(warmup):
            _get(port)
        if exported is not None:  # (one-time start-up work out of the window: see module)
            deadline = time.monotonic() + 30
            while not exported():
                if time.monotonic() > deadline:
                    raise common.CommandFailed(f"{variant.name}: no span export within 30 s")
                _get(port)
                time.sleep(0.05)
            time.sleep(0.3)
        cpu_before, wall_before = _cpu_seconds(proc.pid), time.perf_counter()
        for _ in range(requests):
            _get(port)
        wall = time.perf_counter() - wall_before
        time.sleep(0.3)  # the last batch's export, part of the cost of these requests
        cpu = _cpu_seconds(proc.pid) - cpu_before
        return cpu / requests * 1e6, wall / requests * 1e6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


UNSAMPLED = "ours (sample rate 0)"
UNSAMPLED_TARGET = 0.1  # unsampled / sampled added cost (issue 8)


def variants(endpoint: str, venv: Path | None) -> list[common.Variant]:
    ours = common.ours(endpoint)
    out = [common.bare(), ours, ours.with_env(UNSAMPLED, TELEMETRYFLOW_SAMPLE_RATE="0")]
    if venv is not None:
        common.ensure_in_anchor(venv, "gunicorn")
        out += [common.bare_anchor(venv), common.theirs(venv, endpoint, name="theirs")]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__.split("\n\n")[0], runs=5)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--warmup-requests", type=int, default=300)
    args = parser.parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Per-request cost behind gunicorn (1 sync worker)", venv))
    print(f"\n{args.requests} sequential GET /hello/bench per server run after "
          f"{args.warmup_requests} warm-up requests; a new connection each. cpu: the "
          "server's (master + worker, all threads) per request; wall: the client's per "
          "request.\n")
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        walls: dict[str, list[float]] = {v.name: [] for v in vs}
        spans: dict[str, list[int]] = {v.name: [] for v in vs}
        done: dict[str, int] = {v.name: 0 for v in vs}

        def one(v: common.Variant) -> float:
            receiver.clear()
            exports = v.prefix and v.name != UNSAMPLED
            cpu, wall = measure(v, args.requests, args.warmup_requests,
                                (lambda: bool(receiver.spans())) if exports else None)
            done[v.name] += 1
            if done[v.name] > args.warmup:  # (rounds() drops the warm-up rounds' cpu)
                walls[v.name].append(wall)
                spans[v.name].append(len(receiver.spans()))
            return cpu

        cpus = common.rounds(vs, one, args.runs, warmup=args.warmup, label="gunicorn")
    expected = args.requests + args.warmup_requests
    print("Spans received per server run (expected for a traced variant: about "
          f"{expected}, one per request, and the few sent while waiting for the first "
          "export; none at rate 0): " + ", ".join(
              f"{name} {min(n)}-{max(n)}" for name, n in spans.items() if n) + "\n")
    for title, results in (("Server CPU per request", cpus), ("Client wall per request", walls)):
        summaries = common.summarize(vs, results)
        print(f"{title}:\n")
        print(common.summary_table(summaries, "µs", 1.0))
        by = {s.name: s for s in summaries}
        if "theirs" in by:
            r = common.ratio(by["ours"].overhead, by["theirs"].overhead)
            print(f"\n- ours/theirs overhead {common.fmt_ratio(r, TARGET)}")
        r = common.ratio(by[UNSAMPLED].overhead, by["ours"].overhead)
        print(f"- ours unsampled/sampled overhead {common.fmt_ratio(r, UNSAMPLED_TARGET)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
