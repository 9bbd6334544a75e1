"""What a request costs ours sampled, unsampled and at rate 0.1, each measured inside one
process against the same process's uninstrumented Flask.

    .venv/bin/python scripts/bench/per_request_ab.py [--runs N]

``tests/apps/bench_flask_ab.py`` runs under telemetryflow-run and alternates the patched
``Flask.wsgi_app`` with the original it keeps, batch by batch (ABBA), timing the main
thread's CPU; it prints the median difference per request. Between processes a bare request
varies by 10-20% on a shared machine, far more than an unsampled request adds: measured this
way the bare part cancels out, which is what the unsampled/sampled ratio needs. The
exporter thread's work is not counted (per_request.py and server_load.py count every
thread). The "floor" row times a minimal hand-written wrapper the same way: a lower bound
for what counting an unsampled request can cost in Python. opentelemetry-instrument's Flask
patch adds request hooks to the application itself, so it cannot be switched off batch by
batch: theirs is not measured here.
"""

from __future__ import annotations

import json
import sys

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

APP = str(common.APPS / "bench_flask_ab.py")
UNSAMPLED_TARGET = 0.1  # unsampled / sampled added cost (issue 8)
RATES = {"sampled (rate 1)": "1", "rate 0.1": "0.1", "unsampled (rate 0)": "0"}
# A minimal hand-written wrapper (bench_flask_ab.py --floor): what counting an unsampled
# request could cost at least, measured the same way.
FLOOR = "floor: minimal wrapper"


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=6)
    p.add_argument("--pairs", type=int, default=20, help="ABBA pairs per process")
    p.add_argument("--batch-size", type=int, default=50, help="requests per batch")
    args = p.parse_args(argv)
    print(common.header("Per-request cost of ours, in-process A/B (main-thread CPU µs)", None))
    print(f"\nEach process: {args.pairs} pairs of {args.batch_size}-request batches, "
          "instrumented vs original wsgi_app; a cell is the median over processes of each "
          "process's median difference.\n")
    with common.otlp_receiver() as receiver:
        base = common.ours(receiver.grpc_endpoint, TELEMETRYFLOW_PROCESS_SPAN="false")
        variants = [base.with_env(name, TELEMETRYFLOW_SAMPLE_RATE=rate)
                    for name, rate in RATES.items()]
        variants.append(base.with_env(FLOOR, TELEMETRYFLOW_SAMPLE_RATE="0"))
        program = [APP, "--pairs", str(args.pairs), "--batch-size", str(args.batch_size)]

        def measure(v: common.Variant) -> float:
            extra = ["--floor"] if v.name == FLOOR else []
            out = common.run(v, [*program, *extra], timeout=300)[1].stdout
            return float(json.loads(out.strip().splitlines()[-1])["added_us"])

        results = common.rounds(variants, measure, args.runs, warmup=args.warmup,
                                label="A/B", between=receiver.clear)
    rows = []
    for name, values in results.items():
        p25, p75 = common.spread(values)
        rows.append([name, f"+{common.median(values):.1f}", f"{p25:.1f}-{p75:.1f}",
                     str(len(values))])
    print(common.table(["variant", "added µs", "p25-p75", "n"], rows))
    added = {name: common.median(values) for name, values in results.items()}
    sampled, unsampled = added["sampled (rate 1)"], added["unsampled (rate 0)"]
    mixed = 0.1 * sampled + 0.9 * unsampled
    print(f"\n- unsampled/sampled: "
          f"{common.fmt_ratio(common.ratio(unsampled, sampled), UNSAMPLED_TARGET)}")
    print(f"- rate 0.1/sampled: {common.fmt_ratio(common.ratio(added['rate 0.1'], sampled))} "
          f"(0.1 sampled + 0.9 unsampled would be {common.fmt_ratio(mixed / sampled)})")
    print(f"- floor/sampled: {common.fmt_ratio(common.ratio(added[FLOOR], sampled))} (a "
          "start time, a context set, the status, the body's end; no histogram, route, "
          "ids or checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
