"""Peak resident memory (max RSS) of a whole short command, launcher included.

    .venv/bin/python scripts/bench/memory.py [--runs N]

Programs: ``python -c pass`` and ``python -c "import flask, requests"``, each as bare
python, under telemetryflow-run and under opentelemetry-instrument (exporters otlp and
none), exporting to a real OTLP/gRPC receiver on loopback. The peak is ``ru_maxrss`` of each
command, read by GNU time (``/usr/bin/time -f %M``) or, without it, by a ``python -S`` fork
wrapper; for a launcher that execs the program in the same PID, Linux reports the highest
peak of the launcher image and the program image.
"""

from __future__ import annotations

import sys

try:
    from . import _common as common
    from .startup import variants
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]
    from startup import variants  # type: ignore[no-redef]

PROGRAMS: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import flask, requests'", ["-c", "import flask, requests"]),
)
TARGET = 0.6  # our peak-RSS overhead ≤ 0.6x opentelemetry-instrument's (OTLP exporters on)


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__.split("\n\n")[0], runs=10).parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Peak RSS of a whole command (MiB)", venv))
    print(f"\nPeak RSS via {common.rss_method()}. ours overhead = ours - bare; theirs overhead "
          "= theirs - bare python of the comparison venv.\n")
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        for title, program in PROGRAMS:
            def measure(v: common.Variant, program: list[str] = program) -> float:
                return common.run_peak_rss(v, program)[1] / 1024.0  # KiB → MiB

            results = common.rounds(vs, measure, args.runs, warmup=args.warmup, label=title,
                                    between=receiver.clear)
            summaries = common.summarize(vs, results)
            print(f"### `{title}`\n")
            print(common.summary_table(summaries, "MiB", 1.0))
            by = {s.name: s for s in summaries}
            if "theirs (otlp)" in by:
                r = common.ratio(by["ours"].overhead, by["theirs (otlp)"].overhead)
                r2 = common.ratio(by["ours (exporter none)"].overhead,
                                  by["theirs (none)"].overhead)
                print(f"\n- ours/theirs overhead, exporters otlp: {common.fmt_ratio(r, TARGET)}")
                print(f"- ours/theirs overhead, exporters none: {common.fmt_ratio(r2)}")
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
