"""Per-call cost of database client calls, in a process started bare / under each launcher.

    .venv/bin/python scripts/bench/db_calls.py [--runs N] [--calls N] [--batches N]
        [--redis HOST:PORT]

Two workloads, each run by this very file in a child process (``--child sqlite|redis``),
which knows nothing of any instrumentation:

* **sqlite**: ``cursor.execute("SELECT 1")`` then ``fetchone()`` on an in-memory database;
* **redis**: ``GET`` of an existing key (set by this script) on the Redis at ``--redis``
  (default 127.0.0.1:6379); skipped, with a note, when nothing answers there.

After a warm-up the child times ``--batches`` batches of ``--calls`` calls and prints the
process CPU µs (all threads, exporters included) and wall µs per call of every batch. Each
batch ends with ``--settle`` seconds of sleep inside the CPU window: both launchers run with
a 100 ms batch schedule delay (``OTEL_BSP_SCHEDULE_DELAY=100``, which both read), so every
span of the batch is exported -- and paid for -- inside it, and a batch small enough for the
queues means nothing is dropped (the receiver's span count per process is shown to prove it). Each
variant's process is started ``--runs`` times, interleaved with the others; the table shows
the median over processes of each process's fastest batch (CPU). Both launchers export over
OTLP/gRPC to a real receiver on loopback that this script starts. Ours runs with
TELEMETRYFLOW_PROCESS_SPAN=false, so each call is a root span as under
opentelemetry-instrument (as in per_request.py). The comparison venv gets ``redis`` (our
venv's version) installed with its own pip when it lacks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

TARGET = 0.5  # ours/theirs per-call overhead
REDIS_KEY = "telemetryflow-bench:db_calls"


# --------------------------------------------------------------------------- child side


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=("sqlite", "redis"), required=True)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--redis", default="127.0.0.1:6379")
    p.add_argument("--settle", type=float, default=0.5)
    args = p.parse_args(argv)

    if args.child == "sqlite":
        import sqlite3

        conn = sqlite3.connect(":memory:")
        cursor = conn.cursor()

        def call() -> None:
            cursor.execute("SELECT 1")
            if cursor.fetchone() != (1,):
                raise SystemExit("SELECT 1 returned something else")
    else:
        import redis

        host, _, port = args.redis.rpartition(":")
        client = redis.Redis(host=host, port=int(port))

        def call() -> None:
            if client.get(REDIS_KEY) is None:
                raise SystemExit(f"redis key {REDIS_KEY} is missing")

    def batch(n: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            call()
        wall = time.perf_counter() - wall
        time.sleep(args.settle)  # the exporter thread ships this batch's spans now
        return wall / n * 1e6, (time.process_time() - cpu) / n * 1e6

    if args.warmup:
        batch(args.warmup)
    batches = [batch(args.calls) for _ in range(args.batches)]
    print(json.dumps({"workload": args.child,
                      "batches_us": [b[0] for b in batches],
                      "batches_cpu_us": [b[1] for b in batches]}))
    return 0


def _hot_path_child() -> int:
    """Under telemetryflow-run: the added main-thread CPU of one patched sqlite execute vs
    the raw SDK calls it stands for (start_span + end with the same attributes, and one
    histogram record), interleaved in one process. Spans are exported as usual."""
    import sqlite3

    from opentelemetry.trace import SpanKind

    from telemetryflow_bootstrap.instrumentation import dbapi

    bare_cursor = sqlite3.Cursor(sqlite3.connect(":memory:"))  # the driver's class: untraced
    cursor = sqlite3.connect(":memory:").cursor()
    cursor.execute("SELECT 1")
    telemetry = dbapi._telemetry[0][1]
    attributes = {"db.system.name": "sqlite", "db.namespace": "main",
                  "db.query.text": "SELECT 1", "db.operation.name": "SELECT"}
    metric_attributes = {"db.system.name": "sqlite", "db.operation.name": "SELECT"}
    tracer, histogram = telemetry.tracer, telemetry.duration

    def patched() -> None:
        cursor.execute("SELECT 1")

    def unpatched() -> None:
        bare_cursor.execute("SELECT 1")

    def raw_sdk() -> None:
        tracer.start_span("SELECT", kind=SpanKind.CLIENT, attributes=attributes).end()
        histogram.record(0.0001, metric_attributes)

    def batch(fn: Any, n: int = 1000) -> float:
        start = time.thread_time()
        for _ in range(n):
            fn()
        spent = (time.thread_time() - start) / n * 1e6
        time.sleep(0.3)  # let the exporter ship this batch outside the next window
        return spent

    best = {"patched": 1e9, "unpatched": 1e9, "raw": 1e9}
    for _ in range(7):
        best["patched"] = min(best["patched"], batch(patched))
        best["unpatched"] = min(best["unpatched"], batch(unpatched))
        best["raw"] = min(best["raw"], batch(raw_sdk))
    print(json.dumps(best))
    return 0


if __name__ == "__main__" and "--child" in sys.argv[1:]:
    if "hot-path" in sys.argv[1:]:
        sys.exit(_hot_path_child())
    sys.exit(_child(sys.argv[1:]))


# --------------------------------------------------------------------------- parent side

import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

SCRIPT = str(Path(__file__).resolve())


SCHEDULE = {"OTEL_BSP_SCHEDULE_DELAY": "100"}  # read by both launchers


def variants(endpoint: str, venv: Path | None) -> list[common.Variant]:
    out = [common.bare(),
           common.ours(endpoint, TELEMETRYFLOW_PROCESS_SPAN="false", **SCHEDULE)]
    if venv is not None:
        out += [common.bare_anchor(venv),
                common.theirs(venv, endpoint, name="theirs", **SCHEDULE)]
    return out


def ensure_redis_client(venv: Path) -> None:
    """``redis`` in the comparison venv (our venv's version), installed with its own pip."""
    python = venv / "bin" / "python"
    if subprocess.run([str(python), "-c", "import redis"], capture_output=True,
                      env=common.clean_env()).returncode == 0:
        return
    try:
        import redis
        spec = f"redis=={redis.__version__}"
    except ImportError:
        spec = "redis"
    common.log(f"installing {spec} into {venv}")
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", spec],
                          capture_output=True, text=True, env=common.clean_env())
    if done.returncode != 0:
        raise RuntimeError(f"pip install {spec} failed:\n{done.stderr[-2000:]}")


def prepare_redis(address: str) -> str | None:
    """Set the key the child reads; None if Redis answers, else why it is skipped."""
    try:
        import redis
    except ImportError:
        return "the `redis` package is not installed in our venv"
    host, _, port = address.rpartition(":")
    try:
        client = redis.Redis(host=host, port=int(port), socket_connect_timeout=2,
                             socket_timeout=2)
        client.set(REDIS_KEY, b"x" * 16)
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return f"Redis at {address} unreachable ({type(exc).__name__}: {exc})"
    return None


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("--calls", type=int, default=1500,
                   help="calls per batch (default 1500: fits both queues of 2048)")
    p.add_argument("--settle", type=float, default=0.5,
                   help="seconds each batch sleeps for its spans to be exported (default 0.5)")
    p.add_argument("--batches", type=int, default=5, help="batches per process (default 5)")
    p.add_argument("--call-warmup", type=int, default=500,
                   help="calls made before the first batch (default 500)")
    p.add_argument("--redis", default="127.0.0.1:6379", help="Redis HOST:PORT")
    args = p.parse_args(argv)
    venv = common.maybe_anchor(args)
    redis_skip = prepare_redis(args.redis)
    if venv is not None and redis_skip is None:
        ensure_redis_client(venv)
    print(common.header("Per-call cost of database client calls (µs per call)", venv))
    print(f"\nEach process: {args.call_warmup} warm-up calls, then {args.batches} batches x "
          f"{args.calls} calls. Each cell: median over processes of each process's fastest "
          "batch, process CPU time (all threads, exporters included). overhead = variant - "
          "its venv's bare python. spans/process: spans the receiver got from one process "
          "(median).\n")

    rows: list[list[object]] = []
    notes: list[str] = []
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        workloads = {"sqlite": 'sqlite3 `execute("SELECT 1")` + fetchone (in-memory)',
                     "redis": f"redis `GET` existing key ({args.redis})"}
        for workload, title in workloads.items():
            if workload == "redis" and redis_skip is not None:
                notes.append(f"redis rows skipped: {redis_skip}")
                continue
            program = [SCRIPT, "--child", workload, "--calls", str(args.calls),
                       "--batches", str(args.batches), "--warmup", str(args.call_warmup),
                       "--settle", str(args.settle),
                       "--redis", args.redis]
            wall: dict[str, list[float]] = {v.name: [] for v in vs}
            spans: dict[str, list[int]] = {v.name: [] for v in vs}

            def measure(v: common.Variant, program: list[str] = program,
                        wall: dict[str, list[float]] = wall,
                        spans: dict[str, list[int]] = spans) -> float:
                receiver.clear()
                out = common.run(v, program, timeout=300)[1].stdout
                result = json.loads(out.strip().splitlines()[-1])
                wall[v.name].append(min(float(x) for x in result["batches_us"]))
                spans[v.name].append(len(receiver.spans()))
                return min(float(x) for x in result["batches_cpu_us"])

            cpu = common.rounds(vs, measure, args.runs, warmup=0, label=workload)
            cpu_s = common.summarize(vs, cpu)
            wall_s = common.summarize(vs, wall)
            print(f"### {title}\n")
            print("Process CPU time per call (fastest batch):\n")
            print(common.summary_table(cpu_s, "µs", 1.0, digits=2))
            print("\nWall time per call (fastest batch):\n")
            print(common.summary_table(wall_s, "µs", 1.0, digits=2))
            print("\nspans/process: " + ", ".join(
                f"{name} {int(common.median(vals))}" for name, vals in spans.items() if vals))
            print()
            by = {s.name: s for s in cpu_s}
            theirs = by.get("theirs")
            r = common.ratio(by["ours"].overhead, theirs.overhead if theirs else None)
            rows.append([workload, f"{by['bare'].median:.2f}",
                         f"+{by['ours'].overhead:.2f}",
                         "—" if theirs is None else f"+{theirs.overhead:.2f}",
                         common.fmt_ratio(r, TARGET if theirs else None)])

        hot = common.json_runs(vs[1], [SCRIPT, "--child", "hot-path"], args.runs,
                               label="hot path")
    added = common.median(hot["patched"]) - common.median(hot["unpatched"])
    raw = common.median(hot["raw"])
    print("### Our hot path vs the raw SDK calls it stands for (main-thread CPU µs)\n")
    print("In one process under telemetryflow-run: a patched sqlite3 execute minus the "
          "driver's own, vs tracer.start_span(...).end() with the same attributes plus one "
          "histogram.record -- what a patch would cost if it just called the SDK. "
          f"Median of {args.runs} processes, each the fastest of 7 interleaved batches.\n")
    print(common.table(["patched execute, added", "raw SDK span + histogram", "ratio"],
                       [[f"{added:.2f}", f"{raw:.2f}",
                         common.fmt_ratio(common.ratio(added, raw), 1.1)]]))
    print()
    print("### Summary (CPU µs per call)\n")
    print(common.table(["workload", "bare", "ours overhead", "theirs overhead",
                        "ours/theirs overhead"], rows))
    for note in notes:
        print(f"\n- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
