"""Exit time with the collector down: a program making 100 spans, start to exit.

    .venv/bin/python scripts/bench/exit_when_down.py [--runs N] [--no-hung]

``tests/apps/bench_spans.py`` makes 100 spans through the OpenTelemetry API and exits, so
both launchers have spans to export at exit. The endpoint is (a) a closed loopback port
(connection refused) and (b) a "hung" collector: a loopback socket that listens but never
accepts or answers (TCP connects, the gRPC call waits for its deadline). Wall time from
spawn to exit (ours must stay within TELEMETRYFLOW_SHUTDOWN_TIMEOUT + 1 s), and from the
end of the program's own work to exit.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from collections.abc import Iterator

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

APP = str(common.APPS / "bench_spans.py")
SLACK = 1.0  # seconds allowed past TELEMETRYFLOW_SHUTDOWN_TIMEOUT


@contextlib.contextmanager
def hung_collector() -> Iterator[str]:
    """A loopback port that completes TCP handshakes (the kernel does) and says nothing."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def variants(endpoint: str, venv: object) -> list[tuple[common.Variant, float | None]]:
    """(variant, its shutdown timeout in seconds when it promises one)."""
    out: list[tuple[common.Variant, float | None]] = [(common.bare(), None)]
    for timeout in (2, 5):
        v = common.ours(endpoint).with_env(f"ours, shutdown timeout {timeout}s",
                                           TELEMETRYFLOW_SHUTDOWN_TIMEOUT=str(timeout))
        out.append((v, float(timeout)))
    if venv is not None:
        out.append((common.theirs(venv, endpoint, name="theirs (defaults)"), None))  # type: ignore[arg-type]
    return out


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.split("\n\n")[0], runs=3)
    p.add_argument("--no-hung", action="store_true", help="only the closed-port case")
    args = p.parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Exit with the collector down: 100 spans, spawn to exit (s)", venv))
    print("\nbare = the same program without a launcher (its spans are no-ops). 'limit' is "
          f"TELEMETRYFLOW_SHUTDOWN_TIMEOUT + {SLACK:g} s, checked against the slowest spawn→exit "
          "run; 'program end→exit' leaves out start-up (the app prints when its work "
          "ended).\n")
    scenarios = [("closed port (connection refused)", contextlib.nullcontext(
        f"127.0.0.1:{common.closed_port()}"))]
    if not args.no_hung:
        scenarios.append(("hung collector (listens, never answers)", hung_collector()))
    ok = True
    for title, endpoint_cm in scenarios:
        with endpoint_cm as endpoint:
            pairs = variants(endpoint, venv)
            vs = [v for v, _ in pairs]

            after: dict[str, list[float]] = {v.name: [] for v in vs}

            def measure(v: common.Variant, after: dict[str, list[float]] = after) -> float:
                elapsed, done = common.run(v, [APP], timeout=180)
                exited = time.time()
                end = json.loads(done.stdout.strip().splitlines()[-1])["program_end"]
                after[v.name].append(exited - end)
                return elapsed

            results = common.rounds(vs, measure, args.runs, warmup=0, label=title)
        rows = []
        for v, limit in pairs:
            vals, tail = results[v.name], after[v.name]
            worst = max(vals)
            verdict = "—" if limit is None else (
                f"{limit + SLACK:.1f} s: {'met' if worst <= limit + SLACK else 'NOT met'}")
            ok = ok and (limit is None or worst <= limit + SLACK)
            rows.append([v.name, f"{common.median(vals):.2f}", f"{worst:.2f}", verdict,
                         f"{common.median(tail):.2f}", f"{max(tail):.2f}", len(vals)])
        print(f"### {title}\n")
        print(common.table(["variant", "spawn→exit median s", "max s", "limit",
                            "program end→exit median s", "max s", "n"], rows))
        print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
