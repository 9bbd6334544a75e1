"""Per-record cost of stdlib ``logging`` records exported as OpenTelemetry logs.

    .venv/bin/python scripts/bench/log_records.py [--runs N] [--records N]

The program, run by this very file in a child process (``--child``), knows nothing of any
instrumentation: ``logging.basicConfig`` with a format and a stream to ``/dev/null`` (as a
program configures its logging), then ``logger.info("user %s did %s", i, "thing")``.

* **paced**: after a warm-up, batches of ``--records`` records, each batch followed by a
  0.5 s sleep inside its CPU window: both launchers run with a 100 ms log batch delay, so
  every record of the batch is exported (and paid for) inside the window, and a batch that
  fits both queues (2048) means nothing is dropped. Process CPU (all threads: the exporter
  too) and main-thread CPU per record, median over processes of each one's fastest batch.
* **hot path** (ours only): in one process, a record with our bridge minus one without it,
  against the same record handed to the SDK's own ``LoggingHandler`` on the same provider:
  what the bridge costs the program's thread against the raw SDK call it stands for.

Variants: bare, ours (``telemetryflow-run``), bare (otel venv), theirs
(``opentelemetry-instrument`` with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``,
which makes it export logging records). Both export over OTLP/gRPC to a real receiver on
loopback that this script starts. (How much of a burst of records arrives: ``burst.py``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

HOT_PATH_TARGET = 1.1  # our bridge's added main-thread CPU / the raw SDK handler's


# --------------------------------------------------------------------------- child side


def _program_logging() -> object:
    import logging
    import os

    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"),  # noqa: SIM115
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return logging.getLogger("bench.app")


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=("paced",), required=True)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--settle", type=float, default=0.5)
    args = p.parse_args(argv)
    log = _program_logging()

    def batch(n: int, settle: float) -> tuple[float, float, float]:
        wall, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        for i in range(n):
            log.info("user %s did %s", i, "thing")  # type: ignore[attr-defined]
        wall, main = time.perf_counter() - wall, time.thread_time() - main
        time.sleep(settle)  # the exporter ships this batch now
        return wall / n * 1e6, (time.process_time() - cpu) / n * 1e6, main / n * 1e6

    if args.warmup:
        batch(args.warmup, args.settle)
    batches = [batch(args.records, args.settle) for _ in range(args.batches)]
    print(json.dumps({"wall_us": [b[0] for b in batches], "cpu_us": [b[1] for b in batches],
                      "main_us": [b[2] for b in batches]}))
    return 0


def _hot_path_child() -> int:
    """Under telemetryflow-run: main-thread CPU per record with our bridge, without it, and
    with the SDK's ``LoggingHandler`` on the same provider instead (exports as usual)."""
    import logging

    from opentelemetry.sdk._logs import LoggingHandler

    from telemetryflow_bootstrap import _runtime
    from telemetryflow_bootstrap.instrumentation import stdlib_logging

    log = _program_logging()
    provider = _runtime.current_client().handler.logger_provider
    ours = stdlib_logging._bridge
    sdk_handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    root = logging.getLogger()

    def batch(n: int = 500) -> float:
        start = time.thread_time()
        for i in range(n):
            log.info("user %s did %s", i, "thing")  # type: ignore[attr-defined]
        spent = (time.thread_time() - start) / n * 1e6
        time.sleep(0.3)  # let the exporter ship this batch outside the next window
        return spent

    best = {"ours": 1e9, "none": 1e9, "sdk": 1e9}
    for _ in range(7):
        stdlib_logging._bridge = ours
        best["ours"] = min(best["ours"], batch())
        stdlib_logging._bridge = None
        best["none"] = min(best["none"], batch())
        root.addHandler(sdk_handler)
        best["sdk"] = min(best["sdk"], batch())
        root.removeHandler(sdk_handler)
    stdlib_logging._bridge = ours
    print(json.dumps(best))
    return 0


if __name__ == "__main__" and "--child" in sys.argv[1:]:
    if "hot-path" in sys.argv[1:]:
        sys.exit(_hot_path_child())
    sys.exit(_child(sys.argv[1:]))


# --------------------------------------------------------------------------- parent side

from pathlib import Path  # noqa: E402

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

SCRIPT = str(Path(__file__).resolve())


def variants(endpoint: str, venv: Path | None) -> list[common.Variant]:
    out = [common.bare(),
           common.ours(endpoint, TELEMETRYFLOW_PROCESS_SPAN="false",
                       TELEMETRYFLOW_BATCH_TIMEOUT="100")]
    if venv is not None:
        out += [common.bare_anchor(venv),
                common.theirs(venv, endpoint, name="theirs",
                              OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
                              OTEL_BLRP_SCHEDULE_DELAY="100")]
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("--records", type=int, default=1000,
                   help="records per paced batch (default 1000: fits both queues of 2048)")
    p.add_argument("--batches", type=int, default=5, help="paced batches per process")
    args = p.parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("stdlib logging records exported as OpenTelemetry logs", venv))
    print("\noverhead = variant - its venv's bare python. Every cell is a median over "
          f"{args.runs} processes, the variants' processes interleaved.\n")
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        main_cpu: dict[str, list[float]] = {v.name: [] for v in vs}
        arrived: dict[str, list[int]] = {v.name: [] for v in vs}
        warmup_records = 300
        paced = [SCRIPT, "--child", "paced", "--records", str(args.records),
                 "--batches", str(args.batches), "--warmup", str(warmup_records)]

        def measure(v: common.Variant) -> float:
            receiver.clear()
            result = json.loads(common.run(v, paced, timeout=300)[1].stdout.splitlines()[-1])
            arrived[v.name].append(len(receiver.logs()))
            main_cpu[v.name].append(min(result["main_us"]))
            return min(result["cpu_us"])

        cpu = common.rounds(vs, measure, args.runs, warmup=0, label="paced")
        cpu_s, main_s = common.summarize(vs, cpu), common.summarize(vs, main_cpu)
        logged = warmup_records + args.batches * args.records
        print(f"### Paced: {args.batches} batches of {args.records} records (after "
              f"{warmup_records} warm-up records), fastest batch per process\n")
        print("Process CPU per record (all threads, exporter included):\n")
        print(common.summary_table(cpu_s, "µs", 1.0, digits=2))
        print("\nMain-thread CPU per record:\n")
        print(common.summary_table(main_s, "µs", 1.0, digits=2))
        print(f"\nrecords received per process (of {logged}; bare: none sent): " + ", ".join(
            f"{name} {int(common.median(vals))}" for name, vals in arrived.items()))
        by, by_main = {s.name: s for s in cpu_s}, {s.name: s for s in main_s}
        if "theirs" in by:
            every = common.ratio(by["ours"].overhead, by["theirs"].overhead)
            main_only = common.ratio(by_main["ours"].overhead, by_main["theirs"].overhead)
            print(f"\n- ours/theirs overhead: all threads {common.fmt_ratio(every)}; "
                  f"main thread {common.fmt_ratio(main_only)}")
        print()

        hot = common.json_runs(vs[1], [SCRIPT, "--child", "hot-path"], args.runs,
                               label="hot path")
    added = common.median(hot["ours"]) - common.median(hot["none"])
    raw = common.median(hot["sdk"]) - common.median(hot["none"])
    print("### Our bridge vs the SDK's LoggingHandler (main-thread CPU µs per record)\n")
    print("In one process under telemetryflow-run: a record with our bridge, without it, and "
          "with the SDK's `LoggingHandler` on the same provider in its place (its "
          "`emit`, the raw SDK call the bridge stands for). Median of "
          f"{args.runs} processes, each the fastest of 7 interleaved batches.\n")
    print(common.table(["bridge, added", "SDK LoggingHandler, added", "ratio"],
                       [[f"{added:.2f}", f"{raw:.2f}",
                         common.fmt_ratio(common.ratio(added, raw), HOT_PATH_TARGET)]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
