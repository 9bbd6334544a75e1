"""How much of a burst arrives: a program that makes spans or log records in a tight loop
right from its start, then exits.

    .venv/bin/python scripts/bench/burst.py [--runs N] [--items N]

A program that produces faster than the exporter ships fills the queue (2048 items for both
launchers), and what comes next is dropped (and counted). What decides the share that
arrives: how soon the exporter gets going (its imports and build: a busy program slows
another thread's imports down to seconds, each file read waiting for the GIL again), and
how much of the program's thread and of the GIL each item costs. The program, run by this
very file in a child process (``--child spans|logs``), knows nothing of any
instrumentation: ``--items`` spans (``tracer.start_as_current_span`` with one attribute),
or as many ``logger.info("user %s did %s", ...)`` records (``logging.basicConfig`` with a
format, a stream to ``/dev/null``). Ours runs with ``TELEMETRYFLOW_PROCESS_SPAN=false``;
theirs with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`` (else it exports no
logging records). Both export over OTLP/gRPC to a real receiver on loopback that this
script starts; the share is what it got from one run, the median over runs.
"""

from __future__ import annotations

import argparse
import sys


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--child", choices=("spans", "logs"), required=True)
    p.add_argument("--items", type=int, default=20000)
    args = p.parse_args(argv)
    if args.child == "spans":
        from opentelemetry import trace

        tracer = trace.get_tracer("bench.burst")
        for i in range(args.items):
            with tracer.start_as_current_span("work", attributes={"item": i}):
                pass
        return 0
    import logging
    import os

    logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"),  # noqa: SIM115
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger("bench.app")
    for i in range(args.items):
        log.info("user %s did %s", i, "thing")
    return 0


if __name__ == "__main__" and "--child" in sys.argv[1:]:
    sys.exit(_child(sys.argv[1:]))


from pathlib import Path  # noqa: E402

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

SCRIPT = str(Path(__file__).resolve())


def variants(endpoint: str, venv: Path | None) -> list[common.Variant]:
    out = [common.ours(endpoint, TELEMETRYFLOW_PROCESS_SPAN="false")]
    if venv is not None:
        out.append(common.theirs(venv, endpoint, name="theirs",
                                 OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=5)
    p.add_argument("--items", type=int, default=20000, help="spans or records per burst")
    args = p.parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Share of a burst that arrives", venv))
    print(f"\n{args.items} items in a tight loop from the program's start, then exit; the "
          f"share the receiver got, median (min-max) over {args.runs} runs, the variants' "
          "runs interleaved.\n")
    rows = []
    with common.otlp_receiver() as receiver:
        vs = variants(receiver.grpc_endpoint, venv)
        for kind in ("spans", "logs"):
            program = [SCRIPT, "--child", kind, "--items", str(args.items)]

            def measure(v: common.Variant, program: list[str] = program,
                        kind: str = kind) -> float:
                receiver.clear()
                common.run(v, program, timeout=300)
                receiver.wait_for(lambda _: False, 0.5)  # (late arrivals)
                got = receiver.spans() if kind == "spans" else receiver.logs()
                return len([item for item in got if item.scope_name.startswith("bench.")]) \
                    / args.items

            shares = common.rounds(vs, measure, args.runs, warmup=0, label=kind)
            for name, values in shares.items():
                rows.append([kind, name, f"{common.median(values):.1%}",
                             f"{min(values):.1%}-{max(values):.1%}"])
    print(common.table(["items", "variant", "received", "min-max"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
