"""Shared by the benchmark scripts: the comparison venv, the variants, timing and tables.

Three ways to run a Python program are compared:

* **bare**: ``/work/main/.venv/bin/python`` (and, as the baseline for the comparison venv,
  that venv's own ``python``: its site-packages differ, so each launcher's overhead is taken
  against the bare interpreter of its own venv);
* **ours**: ``/work/main/.venv/bin/telemetryflow-run python …``;
* **theirs**: ``opentelemetry-instrument python …`` from a separate venv (``anchor_venv()``)
  with ``opentelemetry-distro``, the OTLP exporters and the contrib instrumentations that
  ``opentelemetry-bootstrap`` selects, plus the same flask/requests versions as ours.

Both launchers export over OTLP/gRPC to a real receiver on loopback that the script starts
(``tests.otlp_receiver.OTLPReceiver``), so the exporters really run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import importlib.metadata as metadata
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "tests" / "apps"
MAIN_VENV = REPO / ".venv"
MAIN_PYTHON = MAIN_VENV / "bin" / "python"
OURS_LAUNCHER = MAIN_VENV / "bin" / "telemetryflow-run"

VENV_ENV = "TELEMETRYFLOW_BENCH_VENV"
DEFAULT_VENV = Path.home() / ".cache" / "telemetryflow-bench" / "otel-venv"
_MARKER = ".telemetryflow-bench-complete"
# contrib instrumentations installed whatever opentelemetry-bootstrap selects (same version
# as the distro's opentelemetry-instrumentation)
_EXTRA_INSTRUMENTATIONS = ("flask", "requests", "urllib3", "wsgi", "sqlite3", "logging", "redis")
# installed at the very versions our venv has, so the application code is the same
_SAME_AS_OURS = ("flask", "werkzeug", "requests", "urllib3", "jinja2", "markupsafe",
                 "itsdangerous", "blinker", "click", "certifi", "idna", "charset-normalizer",
                 "gunicorn")

SERVICE_NAME = "bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the anchor venv


def _base_python() -> str:
    """The interpreter our venv was made from, so both venvs run the very same Python."""
    cfg = MAIN_VENV / "pyvenv.cfg"
    if cfg.is_file():
        for line in cfg.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable" and Path(value.strip()).exists():
                return value.strip()
    return getattr(sys, "_base_executable", sys.executable)


def _installer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")
           and not k.startswith(("TELEMETRYFLOW_", "OTEL_"))}
    return env


def _check(cmd: Sequence[str], **kwargs: Any) -> str:
    log("  $ " + " ".join(str(c) for c in cmd))
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env=_installer_env(), **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    return done.stdout


def _ours_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def anchor_venv(*, rebuild: bool = False) -> Path:
    """The comparison venv with ``opentelemetry-instrument``; built on first use (a few
    minutes), then reused. ``$TELEMETRYFLOW_BENCH_VENV`` chooses where it lives. Our own
    venv is never touched: everything is installed with the new venv's own pip."""
    path = Path(os.environ.get(VENV_ENV) or DEFAULT_VENV).expanduser().resolve()
    if path == MAIN_VENV.resolve():
        raise RuntimeError(f"{VENV_ENV} must not be our own venv ({MAIN_VENV})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two scripts started at once build it once
        python = path / "bin" / "python"
        if not rebuild and (path / _MARKER).is_file() and python.exists():
            return path
        if path.exists() and any(path.iterdir()) and not (path / "pyvenv.cfg").is_file():
            raise RuntimeError(f"{path} exists and is not a venv: not replacing it "
                               f"(point {VENV_ENV} at a new or empty folder)")
        log(f"building the comparison venv at {path} (first use; takes a few minutes)")
        shutil.rmtree(path, ignore_errors=True)
        _check([_base_python(), "-m", "venv", path])
        pins = [f"{n}=={v}" for n in _SAME_AS_OURS if (v := _ours_version(n))]
        # One resolve of the distro with unpinned contrib packages: pip settles on the newest
        # version that exists for all of them (a core release can precede contrib's).
        contrib = [f"opentelemetry-instrumentation-{n}" for n in _EXTRA_INSTRUMENTATIONS]
        _check([python, "-m", "pip", "install", "--quiet", "opentelemetry-distro",
                "opentelemetry-exporter-otlp", *contrib, *pins])
        # Then what opentelemetry-bootstrap selects for this venv, at the version it names
        # (its own, which the resolve above made match the installed contrib packages).
        selected = [line.strip() for line in
                    _check([path / "bin" / "opentelemetry-bootstrap", "-a", "requirements"])
                    .splitlines() if line.strip() and not line.startswith("#")]
        _check([python, "-m", "pip", "install", "--quiet", *selected, *pins])
        requirements = sorted(set(selected) | set(contrib))
        _check([path / "bin" / "opentelemetry-instrument", "--help"])
        (path / _MARKER).write_text(json.dumps({"built": time.time(),
                                                "requirements": requirements}))
        log("comparison venv ready")
        return path


def ensure_in_anchor(venv: Path, name: str) -> None:
    """``name`` installed in the comparison venv at the version our venv has (a venv built
    before a script needed it gets it now, once)."""
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", f"import importlib.metadata as m; "
                            f"print(m.version({name!r}))"], capture_output=True, text=True,
                           env=clean_env())
    wanted = _ours_version(name)
    if probe.returncode == 0 and (wanted is None or probe.stdout.strip() == wanted):
        return
    _check([python, "-m", "pip", "install", "--quiet",
            f"{name}=={wanted}" if wanted else name])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_VERSIONS_SCRIPT = (
    "import importlib.metadata as m, json, sys\n"
    "d = {x.metadata['Name'].lower(): x.version for x in m.distributions()}\n"
    "print(json.dumps({'python': sys.version.split()[0], 'packages': d}))\n"
)


def venv_versions(python: Path | str) -> dict[str, Any]:
    done = subprocess.run([str(python), "-c", _VERSIONS_SCRIPT], capture_output=True,
                          text=True, env=clean_env(), check=True)
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- variants


def clean_env(venv_bin: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without any telemetry settings or PYTHONPATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
           and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONHOME")}
    if venv_bin is not None:
        env["PATH"] = os.pathsep.join([str(venv_bin), env.get("PATH", os.defpath)])
    env.update(extra)
    return env


@dataclass
class Variant:
    """One way to run ``python ARGS``: an optional launcher prefix, the interpreter, env."""

    name: str
    python: str
    prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    baseline: str = "bare"  # the variant whose result this one's overhead is taken against

    def command(self, args: Sequence[str]) -> list[str]:
        return [*self.prefix, self.python, *args]

    def with_env(self, name: str, **extra: str) -> Variant:
        return Variant(name, self.python, list(self.prefix), {**self.env, **extra}, self.baseline)


def bare() -> Variant:
    return Variant("bare", str(MAIN_PYTHON), [], clean_env(MAIN_VENV / "bin"), baseline="")


def ours(endpoint: str | None, **extra: str) -> Variant:
    """telemetryflow-run with OTLP/gRPC to ``endpoint`` (``host:port``)."""
    env = clean_env(MAIN_VENV / "bin", TELEMETRYFLOW_SERVICE_NAME=SERVICE_NAME)
    if endpoint is not None:
        env.update(TELEMETRYFLOW_ENDPOINT=endpoint, TELEMETRYFLOW_INSECURE="true")
    env.update(extra)
    return Variant("ours", str(MAIN_PYTHON), [str(OURS_LAUNCHER)], env)


def bare_anchor(venv: Path) -> Variant:
    return Variant("bare (otel venv)", str(venv / "bin" / "python"), [],
                   clean_env(venv / "bin"), baseline="")


def theirs(venv: Path, endpoint: str | None, *, exporters: str = "otlp",
           name: str | None = None, **extra: str) -> Variant:
    """opentelemetry-instrument with the distro defaults and the given exporters for all
    three signals (``otlp``: OTLP/gRPC to ``endpoint``, the distro's default protocol)."""
    env = clean_env(venv / "bin", OTEL_SERVICE_NAME=SERVICE_NAME,
                    OTEL_TRACES_EXPORTER=exporters, OTEL_METRICS_EXPORTER=exporters,
                    OTEL_LOGS_EXPORTER=exporters)
    if exporters == "otlp" and endpoint is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{endpoint}",
                   OTEL_EXPORTER_OTLP_INSECURE="true", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    env.update(extra)
    return Variant(name or f"theirs ({exporters})", str(venv / "bin" / "python"),
                   [str(venv / "bin" / "opentelemetry-instrument")], env,
                   baseline="bare (otel venv)")


# --------------------------------------------------------------------------- receiver


@contextlib.contextmanager
def otlp_receiver() -> Iterator[Any]:
    """A real OTLP (gRPC + HTTP) receiver on loopback for the duration of the block."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- timing


class CommandFailed(RuntimeError):
    pass


def run(variant: Variant, args: Sequence[str], *, timeout: float = 120,
        cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``python ARGS`` as ``variant``; wall seconds from spawn to exit and the result."""
    wall, _cpu, done = run_with_cpu(variant, args, timeout=timeout, cwd=cwd)
    return wall, done


def run_with_cpu(variant: Variant, args: Sequence[str], *, timeout: float = 120,
                 cwd: Path | None = None) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Like ``run``, plus the CPU seconds (user + system, all threads) the command used.

    The CPU time is this process's RUSAGE_CHILDREN delta around the run: only children
    reaped meanwhile count, and the scripts reap no other child while one runs. Unlike the
    wall time it leaves out the time the command spent waiting for a core, so it stays
    meaningful on a loaded machine.
    """
    cmd = variant.command(args)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=variant.env, cwd=str(cwd or REPO), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise CommandFailed(f"{variant.name}: {' '.join(cmd)} exited {done.returncode}:\n"
                            f"{done.stderr[-2000:]}")
    return elapsed, cpu, done


_RSS_WRAPPER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)
GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    if os.access(GNU_TIME, os.X_OK):
        return f"`{GNU_TIME} -f %M` (GNU time: wait4 ru_maxrss of the command)"
    return "wait4 ru_maxrss through a `python -S` fork wrapper"


def run_peak_rss(variant: Variant, args: Sequence[str], *,
                 timeout: float = 120) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one run.

    The command is started by a tiny process (GNU time, else a ``python -S`` fork wrapper):
    a child forked straight from this (large) process would inherit its RSS high-water mark,
    since Linux keeps the highest peak of every image a PID had. For the same reason, for a
    launcher that execs the program in the same PID, the peak is the highest of the launcher
    image and the program image.
    """
    import tempfile

    cmd = variant.command(args)
    cmd[0] = shutil.which(cmd[0], path=variant.env.get("PATH")) or cmd[0]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        if os.access(GNU_TIME, os.X_OK):
            full = [GNU_TIME, "-f", "%M", "-o", out.name, *cmd]
        else:
            full = [sys.executable, "-S", "-c", _RSS_WRAPPER, out.name, *cmd]
        start = time.perf_counter()
        done = subprocess.run(full, env=variant.env, cwd=str(REPO), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise CommandFailed(f"{variant.name}: {' '.join(cmd)} exited {done.returncode}:\n"
                                f"{done.stderr[-2000:]}")
        text = out.read().strip().splitlines()
    return elapsed, int(text[-1])


def json_runs(variant: Variant, args: Sequence[str], runs: int, *, label: str,
              timeout: float = 300) -> dict[str, list[float]]:
    """Run ``python ARGS`` as ``variant`` ``runs`` times; each run prints one JSON object of
    numbers as its last line: every key's values, run by run."""
    values: dict[str, list[float]] = {}
    for i in range(runs):
        log(f"{label}: run {i + 1}/{runs}")
        out = run(variant, args, timeout=timeout)[1].stdout
        for key, value in json.loads(out.strip().splitlines()[-1]).items():
            values.setdefault(key, []).append(float(value))
    return values


def rounds(variants: Sequence[Variant], measure: Callable[[Variant], float], runs: int, *,
           warmup: int = 1, label: str = "", between: Callable[[], None] | None = None,
           ) -> dict[str, list[float]]:
    """``runs`` rounds, each measuring every variant once; the order rotates every round so
    no variant always follows the same one. Warm-up rounds are run and dropped."""
    results: dict[str, list[float]] = {v.name: [] for v in variants}
    order = list(variants)
    total = warmup + runs
    for i in range(total):
        for variant in order:
            value = measure(variant)
            if i >= warmup:
                results[variant.name].append(value)
        order = order[1:] + order[:1]
        if between is not None:
            between()
        if label and sys.stderr.isatty():
            print(f"\r{label}: round {i + 1}/{total}", end="", file=sys.stderr, flush=True)
    if label and sys.stderr.isatty():
        print(file=sys.stderr)
    return results


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(25th, 75th) percentile."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


@dataclass
class Summary:
    name: str
    median: float
    p25: float
    p75: float
    n: int
    overhead: float | None  # median - the baseline's median
    baseline: str


def summarize(variants: Sequence[Variant], results: dict[str, list[float]]) -> list[Summary]:
    medians = {name: median(vals) for name, vals in results.items() if vals}
    out = []
    for v in variants:
        vals = results.get(v.name) or []
        if not vals:
            continue
        p25, p75 = spread(vals)
        base = medians.get(v.baseline) if v.baseline else None
        out.append(Summary(v.name, medians[v.name], p25, p75, len(vals),
                           None if base is None else medians[v.name] - base, v.baseline))
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(value: float | None, target: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.2f}x"
    if target is not None:
        text += f" (target ≤ {target:g}x: {'met' if value <= target else 'NOT met'})"
    return text


# --------------------------------------------------------------------------- printing


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths, strict=True))) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                         for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), sep, *(line(r) for r in cells[1:])])


def summary_table(summaries: Sequence[Summary], unit: str, scale: float,
                  digits: int = 1) -> str:
    def f(x: float) -> str:
        return f"{x * scale:.{digits}f}"

    rows = []
    for s in summaries:
        over = "—" if s.overhead is None else f"{'+' if s.overhead >= 0 else ''}{f(s.overhead)}"
        rows.append([s.name, f(s.median), f"{f(s.p25)}-{f(s.p75)}", over,
                     s.baseline or "—", s.n])
    return table(["variant", f"median {unit}", f"p25-p75 {unit}", f"overhead {unit}",
                  "vs", "n"], rows)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_PACKAGES_OURS = ("telemetryflow-bootstrap", "opentelemetry-sdk", "opentelemetry-exporter-otlp",
                  "grpcio", "protobuf", "wrapt", "flask", "requests")
_PACKAGES_THEIRS = ("opentelemetry-distro", "opentelemetry-instrumentation",
                    "opentelemetry-sdk", "opentelemetry-exporter-otlp", "grpcio", "protobuf",
                    "flask", "requests")


def header(title: str, venv: Path | None, argv: Sequence[str] | None = None) -> str:
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    lines = [
        f"## {title}",
        "",
        f"- when: {datetime.datetime.now().isoformat(timespec='seconds')}; command: "
        f"`{' '.join(argv if argv is not None else [Path(sys.argv[0]).name, *sys.argv[1:]])}`",
        f"- machine: {os.cpu_count()} CPUs (nproc {_nproc()}), {cpu_model()}, load avg {load}, "
        f"{platform.system()} {platform.release()}",
        f"- python: {platform.python_implementation()} {sys.version.split()[0]}",
        "- ours (" + str(MAIN_VENV) + "): "
        + ", ".join(f"{n} {v}" for n in _PACKAGES_OURS if (v := _ours_version(n))),
    ]
    if venv is not None:
        info = venv_versions(venv / "bin" / "python")
        pk = info["packages"]
        inst = sorted(n.removeprefix("opentelemetry-instrumentation-") for n in pk
                      if n.startswith("opentelemetry-instrumentation-"))
        lines.append(f"- theirs ({venv}): python {info['python']}, "
                     + ", ".join(f"{n} {pk[n]}" for n in _PACKAGES_THEIRS if n in pk))
        lines.append(f"- their contrib instrumentations ({len(inst)}): {', '.join(inst)}")
    return "\n".join(lines)


def _nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return str(len(os.sched_getaffinity(0)))


def parser(description: str, runs: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--runs", type=int, default=runs, help=f"measured rounds (default {runs})")
    p.add_argument("--warmup", type=int, default=1, help="rounds run first and dropped")
    p.add_argument("--no-theirs", action="store_true",
                   help="skip opentelemetry-instrument (no comparison venv needed)")
    p.add_argument("--rebuild-venv", action="store_true",
                   help="rebuild the comparison venv before measuring")
    return p


def maybe_anchor(args: argparse.Namespace) -> Path | None:
    if args.no_theirs:
        return None
    return anchor_venv(rebuild=args.rebuild_venv)
