"""Start-up is a budget (DESIGN.md, decision 6): a structural guard, not a timing test.

A program run under ``telemetryflow-run`` with OTLP configured must not have imported any
instrumented library (they load only when the program imports them), nor the exporter stack
(grpc, protobuf, the OTLP exporters: built at the first export, on the export thread), and
the number of modules loaded by the time the program ends has a ceiling. The launcher
process itself (which execs the program) must not pay for OpenTelemetry, grpc or wrapt.

Numbers measured when the budget was set (Python 3.11.7, `python -c` printing
``sorted(sys.modules)`` as its last statement):

* bare ``python -c``: 57 modules;
* under ``telemetryflow-run`` with TELEMETRYFLOW_ENDPOINT set: 354 modules (90 opentelemetry,
  39 telemetryflow_bootstrap, 29 asyncio + ssl via ``wrapt.synchronization``, 19 importlib
  incl. importlib.metadata via ``wrapt.importer``, 15 wrapt, 13 email);
* budget: 354 + ~15% headroom = 405. Lowering the real number (e.g. not importing
  ``wrapt``/``asyncio`` at start-up) should lower the budget with it.
* with TELEMETRYFLOW_EXPORTER=none (no signal on, no provider): 184 modules, no
  ``opentelemetry.sdk`` (2026-11; 283 when the handler imported the SDK regardless).
* the launcher (``import telemetryflow_bootstrap.cli``): 120 modules, none of
  opentelemetry/grpc/wrapt.
* the launcher's fast path (``telemetryflow-run COMMAND``, no click, no pathlib, no hashlib):
  92 modules once it has computed the program's environment, against 115 for importing
  ``cli`` alone; the whole launcher process (interpreter start-up included) went from a
  median of 57 ms of CPU to 39 ms (``telemetryflow-run /bin/true``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

MODULE_BUDGET = 300  # 290 on CPython 3.11 (2026-11, helper-70)
# With every signal off (TELEMETRYFLOW_EXPORTER=none) the SDK is not imported at all: 184
# modules (283 before the handler imported the SDK only for a signal that is on).
MODULE_BUDGET_EXPORTER_NONE = 205

FORBIDDEN = (
    # instrumented libraries: loaded only when the program imports them
    "flask", "django", "requests", "urllib3", "httpx", "psycopg", "psycopg2", "pymysql",
    "asyncpg", "redis",
    # the exporter stack: built at the first export, not at start-up
    "grpc", "google.protobuf", "opentelemetry.exporter", "opentelemetry.proto",
)
LAUNCHER_FORBIDDEN = ("opentelemetry", "grpc", "google.protobuf", "wrapt")
# A plain launch also skips click (the CLI itself), the diagnostics, and what only a rare
# branch needs: hashlib (loads OpenSSL, for a digest of printed warnings) and pathlib; and
# the configuration parser with what it imports (dataclasses, typing, urllib.parse, re:
# ~20 ms of the launcher's 24 ms before exec), which only a strict launch needs. (``re``
# cannot be checked: pip's console-script wrapper and the probe's json import it.)
FAST_LAUNCH_FORBIDDEN = (*LAUNCHER_FORBIDDEN, "click", "telemetryflow_bootstrap.cli",
                         "telemetryflow_bootstrap.diagnostics", "hashlib", "pathlib",
                         "telemetryflow_bootstrap.domain.config",
                         "telemetryflow_bootstrap.domain.environment",
                         "telemetryflow_bootstrap.domain.parsers", "dataclasses", "typing",
                         "inspect", "urllib", "contextlib")

VENV_BIN = Path(sys.executable).parent
LAUNCHER = VENV_BIN / "telemetryflow-run"
PRINT_MODULES = "import json, sys\nprint(json.dumps(sorted(sys.modules)))\n"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
           and k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)])
    env.update(extra)
    return env


def _modules(cmd: list[str], env: dict[str, str], source: str = "stdout") -> list[str]:
    """The modules ``cmd`` loaded: printed as JSON on its last line of stdout, or, with
    ``source="stderr"``, as ``-X importtime`` reports them while they are imported."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    if source == "stderr":
        return [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _hits(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


@functools.cache
def _interpreter_start_modules() -> frozenset[str]:
    """What a bare interpreter has loaded before its first statement runs. An installed
    package's ``.pth`` file can import modules at start-up (PasteDeploy's namespace
    ``-nspkg.pth``, pulled in by Pyramid, imports ``contextlib``): those are paid by every
    Python process of that venv, launcher or not, so the launcher is not blamed for them."""
    modules = _modules([sys.executable, "-X", "importtime", "-c", "pass"], _env(), "stderr")
    return frozenset(modules)


def _launcher_hits(modules: list[str], names: tuple[str, ...]) -> list[str]:
    preloaded = _interpreter_start_modules()
    return [m for m in _hits(modules, names) if m not in preloaded]


@functools.cache
def _instrumented_modules() -> list[str]:
    # OTLP is configured (so the exporters would be built at the first export), but the
    # endpoint is a closed port and nothing is exported while the program runs; the short
    # shutdown timeout bounds the failing exit-time export of the process span.
    env = _env(TELEMETRYFLOW_ENDPOINT="127.0.0.1:1", TELEMETRYFLOW_INSECURE="true",
               TELEMETRYFLOW_SHUTDOWN_TIMEOUT="1", TELEMETRYFLOW_LOG_LEVEL="error")
    return list(_modules([str(LAUNCHER), sys.executable, "-c", PRINT_MODULES], env))


def test_instrumented_program_loads_no_library_and_no_exporter_stack() -> None:
    modules = _instrumented_modules()
    # the hook really ran and started the SDK (else this test would prove nothing)
    assert "telemetryflow_bootstrap.client" in modules
    assert "opentelemetry.sdk.trace" in modules
    assert _hits(modules, FORBIDDEN) == []


def test_instrumented_program_stays_within_the_module_budget() -> None:
    modules = _instrumented_modules()
    assert len(modules) <= MODULE_BUDGET, (
        f"{len(modules)} modules loaded under telemetryflow-run (budget {MODULE_BUDGET}); "
        "by top-level package: " + ", ".join(
            f"{name} {count}" for name, count in _by_package(modules)[:15]))


def test_with_every_signal_off_the_sdk_is_not_imported() -> None:
    """Exporter none: no provider is built, so nothing of the SDK (nor the exporter stack,
    nor ``dataclasses``, which only OpenTelemetry's SDK and metrics API need) is loaded;
    context propagation (the API) still is."""
    env = _env(TELEMETRYFLOW_EXPORTER="none", TELEMETRYFLOW_LOG_LEVEL="error")
    modules = _modules([str(LAUNCHER), sys.executable, "-c", PRINT_MODULES], env)
    assert "telemetryflow_bootstrap.client" in modules
    assert "opentelemetry.propagate" in modules
    assert _hits(modules, ("opentelemetry.sdk", "dataclasses", *FORBIDDEN)) == []
    assert len(modules) <= MODULE_BUDGET_EXPORTER_NONE, ", ".join(
        f"{name} {count}" for name, count in _by_package(modules)[:15])


def test_patching_http_clients_and_multiprocessing_imports_no_wrapt() -> None:
    """The HTTP clients (imported by most programs: ``urllib.request`` alone brings
    ``http.client``) and ``multiprocessing`` are patched with plain wrappers: importing
    wrapt 2.5 would bring asyncio and importlib.metadata into every such process."""
    env = _env(TELEMETRYFLOW_ENDPOINT="127.0.0.1:1", TELEMETRYFLOW_INSECURE="true",
               TELEMETRYFLOW_SHUTDOWN_TIMEOUT="1", TELEMETRYFLOW_LOG_LEVEL="error")
    code = ("import http.client, urllib.request, urllib3, requests, httpx, multiprocessing\n"
            "from telemetryflow_bootstrap.instrumentation._method_wrappers import our_wrapper\n"
            "assert our_wrapper(requests.Session, 'send') is not None\n"
            "assert our_wrapper(http.client.HTTPConnection, 'request') is not None\n"
            "assert our_wrapper(httpx.AsyncClient, 'send') is not None\n"
            "assert our_wrapper(multiprocessing.process.BaseProcess, '_bootstrap')\n"
            + PRINT_MODULES)
    modules = _modules([str(LAUNCHER), sys.executable, "-c", code], env)
    assert "multiprocessing.process" in modules
    assert _hits(modules, ("wrapt", "asyncio")) == []


def test_launcher_process_does_not_import_opentelemetry() -> None:
    modules = _modules([sys.executable, "-c", "import telemetryflow_bootstrap.cli\n"
                        + PRINT_MODULES], _env())
    assert "telemetryflow_bootstrap.cli" in modules
    assert _hits(modules, LAUNCHER_FORBIDDEN) == []


def test_launcher_fast_path_does_not_import_click() -> None:
    """Computing a plain launch (what the console script does before exec) stays click-free."""
    code = ("import os\nfrom telemetryflow_bootstrap import _fast_launch\n"
            "assert _fast_launch.plan(['python', '-c', 'pass'], os.environ) is not None\n"
            + PRINT_MODULES)
    modules = _modules([sys.executable, "-c", code], _env(TELEMETRYFLOW_EXPORTER="none"))
    assert "telemetryflow_bootstrap._launch" in modules
    assert _launcher_hits(modules, FAST_LAUNCH_FORBIDDEN) == []


def _launcher_imports(*args: str) -> list[str]:
    """What the real launcher process imported before it exec'd: ``-X importtime`` reports
    each import on stderr as it happens and is not passed on to the program."""
    return _modules([sys.executable, "-X", "importtime", str(LAUNCHER), *args],
                    _env(TELEMETRYFLOW_EXPORTER="none"), "stderr")


def test_launcher_process_on_the_fast_path_does_not_import_click() -> None:
    true = shutil.which("true")
    assert true is not None
    imported = _launcher_imports(true)
    assert "telemetryflow_bootstrap._fast_launch" in imported
    assert _launcher_hits(imported, FAST_LAUNCH_FORBIDDEN) == []
    # the probe sees the launcher's imports: a launch left to click shows click
    assert "click" in _launcher_imports("--version")


def test_only_a_strict_launch_reads_the_configuration_before_exec() -> None:
    """Strict mode must refuse a bad configuration before the program runs: that launch
    imports the parser (and still not click when there is nothing to refuse)."""
    true = shutil.which("true")
    assert true is not None
    imported = _modules([sys.executable, "-X", "importtime", str(LAUNCHER), true],
                        _env(TELEMETRYFLOW_EXPORTER="none", TELEMETRYFLOW_STRICT="true"),
                        "stderr")
    assert "telemetryflow_bootstrap.domain.config" in imported
    assert _hits(imported, ("click",)) == []


def _by_package(modules: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for m in modules:
        top = m.split(".", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])
