"""Per-request cost on a Flask route, in a process started bare / under each launcher.

    .venv/bin/python scripts/bench/per_request.py [--runs N]

``tests/apps/bench_flask.py`` serves ``/hello`` (a constant) and ``/outbound`` (one
``requests.get`` to a stdlib HTTP server this script runs on loopback) and drives itself with
the Flask test client: after a warm-up it times batches of requests and prints the median µs
per request (after the warm-up it idles ``SETTLE`` seconds: see there). Each variant's
process is started ``--runs`` times, interleaved with the
others; the table shows the median over those processes. Both launchers export over
OTLP/gRPC to a real receiver on loopback, so export work happens during the measurement.
Also: sample rates 0 and 0.1 for both (TELEMETRYFLOW_SAMPLE_RATE; OTEL_TRACES_SAMPLER=
parentbased_traceidratio with that ARG). Ours runs with TELEMETRYFLOW_PROCESS_SPAN=false, as a
real server does by default (see ``variants``).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from . import _common as common
except ImportError:  # run as a script
    import _common as common  # type: ignore[no-redef]

APP = str(common.APPS / "bench_flask.py")
# Seconds the app idles between its warm-up and its measured batches, as a server between
# start-up and load: our export thread imports and builds the exporter (~0.2 s of CPU, once)
# when the first span is queued, and with the program busy that import crawls on for
# seconds; without the pause it fell inside the measured batches, +15-30 µs a request that
# a running server never pays. (Theirs builds it at start-up: the pause changes nothing.)
SETTLE = 1.0
TARGETS = {"hello": 0.35, "outbound": 0.5}  # ours/theirs per-request overhead
UNSAMPLED_TARGET = 0.1  # ours unsampled overhead / ours sampled overhead
ROUTES = {
    # route: (batches, batch size, warm-up requests)
    "hello": (15, 40, 200),
    "outbound": (12, 10, 20),
}


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def upstream_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/upstream"
    finally:
        server.shutdown()
        server.server_close()


def variants(endpoint: str, venv: object) -> list[common.Variant]:
    # The app drives itself (no server socket), so our launcher would take it for a script
    # and wrap the run in a process span, making every request span its child. A real Flask
    # server runs without one (it is off for servers by default): so here too, and each
    # request is a root span the sampler decides on, as under opentelemetry-instrument.
    ours = common.ours(endpoint, TELEMETRYFLOW_PROCESS_SPAN="false")
    out = [common.bare(), ours,
           ours.with_env("ours (sample rate 0)", TELEMETRYFLOW_SAMPLE_RATE="0"),
           ours.with_env("ours (sample rate 0.1)", TELEMETRYFLOW_SAMPLE_RATE="0.1")]
    if venv is not None:
        theirs = common.theirs(venv, endpoint, name="theirs")  # type: ignore[arg-type]
        out += [common.bare_anchor(venv), theirs,  # type: ignore[arg-type]
                theirs.with_env("theirs (sample rate 0)",
                                OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                                OTEL_TRACES_SAMPLER_ARG="0"),
                theirs.with_env("theirs (sample rate 0.1)",
                                OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                                OTEL_TRACES_SAMPLER_ARG="0.1")]
    return out


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__.split("\n\n")[0], runs=8).parse_args(argv)
    venv = common.maybe_anchor(args)
    print(common.header("Per-request cost, Flask test client (µs per request)", venv))
    print("\nEach cell: median over processes (wall: of each process's median batch; "
          "cpu: of each process's fastest batch). "
          "overhead = variant - its venv's bare python. /outbound includes a real loopback "
          "HTTP call (new connection per request, as `requests.get` does).\n")
    with common.otlp_receiver() as receiver, upstream_server() as upstream:
        vs = variants(receiver.grpc_endpoint, venv)
        for route, (batches, size, warmup) in ROUTES.items():
            program = [APP, "--route", route, "--upstream", upstream, "--batches",
                       str(batches), "--batch-size", str(size), "--warmup", str(warmup),
                       "--settle", str(SETTLE)]

            cpu: dict[str, list[float]] = {v.name: [] for v in vs}

            def measure(v: common.Variant, program: list[str] = program,
                        cpu: dict[str, list[float]] = cpu) -> float:
                out = common.run(v, program, timeout=300)[1].stdout
                result = json.loads(out.strip().splitlines()[-1])
                cpu[v.name].append(min(float(x) for x in result["batches_cpu_us"]))
                return float(result["median_us"])

            results = common.rounds(vs, measure, args.runs, warmup=0, label=route,
                                    between=receiver.clear)
            summaries = common.summarize(vs, results)
            cpu_summaries = common.summarize(vs, cpu)
            print(f"### `GET /{route}` ({batches} batches x {size} requests per process, "
                  f"after {warmup} warm-up requests)\n")
            print("Wall time per request:\n")
            print(common.summary_table(summaries, "µs", 1.0))
            print("\nProcess CPU time per request, each process's fastest batch (all "
                  "threads, exporters included; leaves out waiting for a core, and the "
                  "fastest batch is the one least slowed by other load on the machine):\n")
            print(common.summary_table(cpu_summaries, "µs", 1.0))
            print()
            _ratios(route, cpu_summaries, "cpu")
            _ratios(route, summaries, "wall")
            print()
    return 0


def _ratios(route: str, summaries: list[common.Summary], what: str) -> None:
    by = {s.name: s for s in summaries}
    if "theirs" in by:
        r = common.ratio(by["ours"].overhead, by["theirs"].overhead)
        print(f"- {what}: ours/theirs overhead {common.fmt_ratio(r, TARGETS[route])}; "
              f"theirs/bare {by['theirs'].median / by['bare (otel venv)'].median:.2f}x, "
              f"ours/bare {by['ours'].median / by['bare'].median:.2f}x")
    r0 = common.ratio(by["ours (sample rate 0)"].overhead, by["ours"].overhead)
    line = (f"- {what}: unsampled/sampled overhead: ours "
            f"{common.fmt_ratio(r0, UNSAMPLED_TARGET)}")
    if "theirs (sample rate 0)" in by:
        r1 = common.ratio(by["theirs (sample rate 0)"].overhead, by["theirs"].overhead)
        line += f", theirs {common.fmt_ratio(r1)}"
    print(line)
    # A production-like rate: nine requests in ten unsampled, decided on the trace id.
    r2 = common.ratio(by["ours (sample rate 0.1)"].overhead, by["ours"].overhead)
    line = f"- {what}: rate 0.1/sampled overhead: ours {common.fmt_ratio(r2)}"
    if "theirs (sample rate 0.1)" in by:
        r3 = common.ratio(by["theirs (sample rate 0.1)"].overhead, by["theirs"].overhead)
        r4 = common.ratio(by["ours (sample rate 0.1)"].overhead,
                          by["theirs (sample rate 0.1)"].overhead)
        line += f", theirs {common.fmt_ratio(r3)}; ours/theirs at rate 0.1 {common.fmt_ratio(r4)}"
    print(line)


if __name__ == "__main__":
    sys.exit(main())
