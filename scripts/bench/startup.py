"""Start-up (and exit) cost: wall time of a whole short command, launcher included.

    .venv/bin/python scripts/bench/startup.py [--runs N]

Programs: ``python -c pass``, ``python -c "import flask, requests"`` and a program that
makes one span through the OpenTelemetry API (so something is exported at exit), each run
as bare python, under telemetryflow-run and under opentelemetry-instrument (exporters otlp,
and none). Both launchers export over OTLP/gRPC to a real receiver on loopback. The time is
``perf_counter`` around ``subprocess.run`` (process start, launcher, hook, the program, the
exit-time flush and export), and the CPU time the command used (robust on a loaded machine).
Note that ``TELEMETRYFLOW_EXPORTER=none`` turns every signal off (no providers at all), while
opentelemetry-instrument with exporters none still runs its SDK and instrumentations.
"""

from __future__ import annotations

import sys

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

PROGRAMS: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import flask, requests'", ["-c", "import flask, requests"]),
    ("python -c '<one span via the OTel API>'",
     ["-c", "from opentelemetry import trace\n"
            "trace.get_tracer('bench').start_span('one').end()"]),
)
TARGET = 0.3  # our overhead ≤ 0.3x opentelemetry-instrument's (OTLP exporters on)


def variants(endpoint: str, venv: object) -> list[common.Variant]:
    out = [common.bare(), common.ours(endpoint),
           common.ours(endpoint).with_env("ours (exporter none)",
                                          TELEMETRYFLOW_EXPORTER="none")]
    if venv is not None:
        out += [common.bare_anchor(venv), common.theirs(venv, endpoint, exporters="otlp"),
                common.theirs(venv, endpoint, exporters="none")]
    return out


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__.split("\n\n")[0], runs=8).parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Start-up: wall time of a whole command (ms)", venv))
    print("\nours overhead = ours - bare; theirs overhead = theirs - bare python of the "
          "comparison venv. Rounds are interleaved, the order rotating each round.\n")
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        for title, program in PROGRAMS:
            cpu: dict[str, list[float]] = {v.name: [] for v in vs}

            def measure(v: common.Variant, program: list[str] = program,
                        cpu: dict[str, list[float]] = cpu) -> float:
                wall, used, _ = common.run_with_cpu(v, program)
                cpu[v.name].append(used)
                return wall

            exported = _exports_per_variant(vs, program, receiver)
            results = common.rounds(vs, measure, args.runs, warmup=args.warmup, label=title,
                                    between=receiver.clear)
            if args.warmup:
                cpu = {k: v[-args.runs:] for k, v in cpu.items()}  # drop the warm-up rounds
            print(f"### `{title}`\n")
            for what, data in (("Wall time", results), ("CPU time (user + system, all "
                               "threads; leaves out waiting for a core)", cpu)):
                summaries = common.summarize(vs, data)
                print(f"{what}:\n")
                print(common.summary_table(summaries, "ms", 1000.0))
                print()
                by = {s.name: s for s in summaries}
                if "theirs (otlp)" in by:
                    r = common.ratio(by["ours"].overhead, by["theirs (otlp)"].overhead)
                    r2 = common.ratio(by["ours (exporter none)"].overhead,
                                      by["theirs (none)"].overhead)
                    # (the target is python -c pass; the others are shown as is)
                    target = TARGET if program == PROGRAMS[0][1] else None
                    print(f"- {what.split(' (')[0]}: ours/theirs overhead, exporters otlp: "
                          f"{common.fmt_ratio(r, target)}; exporters none: "
                          f"{common.fmt_ratio(r2)}\n")
            print(f"Export requests the receiver got from one run: {exported}\n")
    return 0


def _exports_per_variant(vs: list[common.Variant], program: list[str],
                         receiver: object) -> str:
    """One run per launcher variant, counting what reached the receiver (evidence that the
    exporters are on, and of what each exports for this program)."""
    parts = []
    for v in vs:
        if not v.prefix:
            continue
        receiver.clear()  # type: ignore[attr-defined]
        common.run(v, program)
        got = {s: len(receiver.requests(s)) for s in ("traces", "metrics", "logs")}  # type: ignore[attr-defined]
        parts.append(f"{v.name}: " + " ".join(f"{k}={n}" for k, n in got.items()))
    receiver.clear()  # type: ignore[attr-defined]
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
