"""The launcher end to end: real programs under ``telemetryflow-run``, real OTLP receiver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .launcher import LAUNCHER, REPO, app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_plain_api_spans_arrive_with_derived_service_name(otlp_receiver, protocol):
    """Spans made with the plain OpenTelemetry API arrive, parent and child, named after the
    script when no service name is configured — over gRPC and over HTTP."""
    proc = run(python(app("traced_app.py"), "extra-arg"), receiver_env(otlp_receiver, protocol))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "traced_app ran extra-arg"
    spans = {s.name: s for s in otlp_receiver.wait_for_spans(2)}
    assert spans["inner-work"].parent_span_id == spans["outer-work"].span_id
    assert spans["inner-work"].trace_id == spans["outer-work"].trace_id
    assert spans["outer-work"].attributes["app.step"] == "outer"
    resource = spans["outer-work"].resource
    assert resource["service.name"] == "traced_app"
    assert resource["process.pid"] == int(resource["process.pid"])
    assert resource["telemetry.sdk.language"] == "python"


def test_children_report_as_the_parent_service_and_os_environ_stays_clean(otlp_receiver):
    """Python children report under the service name derived for the program, however they
    are started (inherited environment, a copy of ``os.environ``, ``os.system``), while the
    program's own ``os.environ`` holds none of the launcher's private variables (``requests``
    scans every variable in it on every call)."""
    proc = run(python(app("children_service_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "parent os.environ: -"
    names = ("child-inherited", "child-copied", "child-system")
    assert otlp_receiver.wait_for(
        lambda r: {s.name for s in r.spans()} >= set(names)), otlp_receiver.spans()
    for span in otlp_receiver.spans():
        if span.name in names:
            assert span.resource["service.name"] == "children_service_app", span.name


def test_configured_service_name_and_resource(otlp_receiver):
    """TELEMETRYFLOW_SERVICE_NAME/VERSION/ENVIRONMENT and OTEL_RESOURCE_ATTRIBUTES reach the
    exported resource."""
    env = receiver_env(
        otlp_receiver,
        TELEMETRYFLOW_SERVICE_NAME="shop",
        TELEMETRYFLOW_SERVICE_VERSION="1.2.3",
        TELEMETRYFLOW_ENVIRONMENT="staging",
        OTEL_RESOURCE_ATTRIBUTES="team=checkout,region=eu",
    )
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    resource = otlp_receiver.wait_for_spans(2)[0].resource
    assert resource["service.name"] == "shop"
    assert resource["service.version"] == "1.2.3"
    assert resource["deployment.environment"] == "staging"
    assert resource["team"] == "checkout" and resource["region"] == "eu"


def test_api_key_headers_on_every_export(otlp_receiver):
    """With credentials configured every export carries the Bearer and TelemetryFlow headers."""
    env = receiver_env(
        otlp_receiver,
        TELEMETRYFLOW_API_KEY_ID="tfk_demo",
        TELEMETRYFLOW_API_KEY_SECRET="tfs_topsecret",
        TELEMETRYFLOW_COLLECTOR_ID="col-1",
    )
    proc = run(python(app("client_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    otlp_receiver.wait_for_spans(1)
    otlp_receiver.wait_for_logs(1)
    requests = otlp_receiver.requests()
    assert {r.signal for r in requests} >= {"traces", "logs", "metrics"}
    for request in requests:
        assert request.headers["authorization"] == "Bearer tfk_demo:tfs_topsecret"
        assert request.headers["x-telemetryflow-key-id"] == "tfk_demo"
        assert request.headers["x-telemetryflow-collector-id"] == "col-1"
    assert "tfs_topsecret" not in proc.stderr + proc.stdout


def test_module_entry_point(otlp_receiver):
    """``python -m pkg.mod`` is instrumented and named after the module."""
    proc = run(python("-m", "tests.apps.demo_pkg.worker"), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "worker ran"
    span = otlp_receiver.wait_for_spans(1, name="module-work")[0]
    assert span.resource["service.name"] == "tests.apps.demo_pkg.worker"


def test_console_script_is_instrumented(otlp_receiver, tmp_path):
    """A console script (a shebang file on PATH, as pip writes them) is instrumented and
    named after the script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "order-cli"
    script.write_text(
        textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        from opentelemetry import trace
        with trace.get_tracer("cli").start_as_current_span("cli-command"):
            print("cli ok")
        sys.exit(4)
        """)
    )
    script.chmod(0o755)
    env = receiver_env(otlp_receiver)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    proc = run(["order-cli"], env)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout.strip() == "cli ok"
    span = otlp_receiver.wait_for_spans(1, name="cli-command")[0]
    assert span.resource["service.name"] == "order-cli"


def test_sdk_client_from_get_client(otlp_receiver):
    """Inside an instrumented program get_client() is the running SDK: its spans, counters,
    gauges, histograms and logs arrive, the log correlated with the span."""
    proc = run(python(app("client_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert "initialized: True" in proc.stdout
    span = otlp_receiver.wait_for_spans(1, name="client-span")[0]
    assert span.attributes["order.id"] == 42
    log = otlp_receiver.wait_for_logs(1)[0]
    assert log.body == "order placed"
    assert log.trace_id == span.trace_id and log.span_id == span.span_id
    counter = otlp_receiver.wait_for_metric("orders.placed")
    assert counter[-1].value == 3 and counter[-1].attributes == {"shop": "eu"}
    assert otlp_receiver.wait_for_metric("queue.depth")[-1].value == 7
    histogram = otlp_receiver.wait_for_metric("order.value")[-1]
    assert histogram.count == 1 and histogram.sum == 12.5


def test_user_sitecustomize_is_chained(otlp_receiver, tmp_path):
    """The sitecustomize our hook shadows still runs (after ours), so its side effects happen."""
    user_dir = tmp_path / "usersite"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text("import os\nos.environ['USER_SITE_RAN'] = 'yes'\n")
    env = receiver_env(otlp_receiver, PYTHONPATH=str(user_dir))
    code = "import os; print(os.environ.get('USER_SITE_RAN'))"
    proc = run(python("-c", code), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "yes"


def test_grandchild_processes_are_instrumented_in_one_trace(otlp_receiver):
    """Python children and grandchildren inherit the hook and the trace context: three
    processes, each with a process span whose parent is the span that started it, all one
    trace under the first process's service name."""
    proc = run(python(app("parent_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    spans = otlp_receiver.wait_for_spans(6)
    by_pid: dict[int, dict[str, object]] = {}
    for span in spans:
        by_pid.setdefault(span.resource["process.pid"], {})[span.name] = span
    assert len(by_pid) == 3
    assert len({s.trace_id for s in spans}) == 1
    assert {s.resource["service.name"] for s in spans} == {"parent_app"}
    depth = {s.name: s for s in spans if s.name.startswith("depth-")}
    process_spans = [s for s in spans if s.name == "parent_app"]
    assert len(process_spans) == 3
    roots = [s for s in process_spans if not s.parent_span_id]
    assert len(roots) == 1
    assert depth["depth-0"].parent_span_id == roots[0].span_id
    parents_of_children = {s.parent_span_id for s in process_spans if s.parent_span_id}
    assert parents_of_children == {depth["depth-0"].span_id, depth["depth-1"].span_id}


def test_sigterm_exports_everything_and_dies_of_sigterm(otlp_receiver):
    """SIGTERM while sleeping after 100 spans: all 100 arrive, the spans still open are ended
    and exported marked terminated, and the exit status is still death by SIGTERM (the
    launcher exec'd, so the signal hit the program itself)."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_BATCH_TIMEOUT="60000")
    proc = subprocess.Popen(
        [LAUNCHER, *python(app("sigterm_app.py"), "100")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, proc.stderr.read()
    spans = otlp_receiver.wait_for_spans(102)
    assert len([s for s in spans if s.name.startswith("unit-")]) == 100
    for still_open in ("sleeping", "sigterm_app"):
        span = next(s for s in spans if s.name == still_open)
        assert span.attributes["telemetryflow.process.terminated"] is True


def test_bootstrap_failure_leaves_the_program_running(otlp_receiver, tmp_path):
    """If instrumentation cannot start (a dependency broken), the program still runs with its
    own output and exit code, and stderr says why in one line."""
    broken = tmp_path / "broken"
    (broken / "opentelemetry").mkdir(parents=True)
    (broken / "opentelemetry" / "__init__.py").write_text(
        "raise ImportError('opentelemetry is broken here')\n"
    )
    env = receiver_env(otlp_receiver, PYTHONPATH=str(broken))
    proc = run(python("-c", "print('still here'); raise SystemExit(3)"), env)
    assert proc.returncode == 3
    assert proc.stdout.strip() == "still here"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow:")]
    assert len(lines) == 1, proc.stderr
    assert "instrumentation disabled" in lines[0]
    assert "opentelemetry is broken here" in lines[0]
    assert "Traceback" not in proc.stderr


def test_warnings_as_errors_do_not_break_instrumented_imports(otlp_receiver):
    """With `-W error` an instrumented library still imports: patching reads nothing that
    warns (flask.__version__ does)."""
    code = "import flask, requests; print('imported')"
    proc = run(python("-W", "error", "-c", code), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported"


def test_unimportable_exporter_leaves_the_program_running(otlp_receiver, tmp_path):
    """A broken gRPC package (the exporter cannot be built) costs the telemetry, not the
    program: same output, same exit code, one clear line."""
    broken = tmp_path / "broken"
    (broken / "grpc").mkdir(parents=True)
    (broken / "grpc" / "__init__.py").write_text("raise ImportError('grpc is broken here')\n")
    env = receiver_env(otlp_receiver, PYTHONPATH=str(broken))
    proc = run(python(app("traced_app.py"), "5"), env)
    assert proc.returncode == 5
    assert proc.stdout.strip() == "traced_app ran 5"
    assert "grpc is broken here" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_variable_warns_once_and_program_runs(otlp_receiver):
    """A malformed variable is named on stderr once (not again by the hook) and the program
    runs instrumented with the default."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_SAMPLE_RATE="lots")
    proc = run(python(app("traced_app.py"), "2"), env)
    assert proc.returncode == 2
    named = [line for line in proc.stderr.splitlines() if "TELEMETRYFLOW_SAMPLE_RATE" in line]
    assert len(named) == 1, proc.stderr
    assert "'lots'" in named[0]
    names = {s.name for s in otlp_receiver.wait_for_spans(3)}
    assert {"outer-work", "inner-work"} <= names


def test_strict_mode_in_the_hook_exits_2(tmp_path):
    """A Python process started with the hook but a malformed variable under strict mode exits
    2 before running the program (also when started without the launcher)."""
    from telemetryflow_bootstrap._launch import hook_directory

    marker = tmp_path / "ran"
    env = clean_env(
        PYTHONPATH=str(hook_directory()),
        TELEMETRYFLOW_STRICT="true",
        TELEMETRYFLOW_TIMEOUT="10s",
        TELEMETRYFLOW_EXPORTER="none",
    )
    proc = subprocess.run(
        [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert not marker.exists()
    assert "TELEMETRYFLOW_TIMEOUT" in proc.stderr and "'10s'" in proc.stderr


def test_interpreter_without_the_package_runs_uninstrumented(otlp_receiver, tmp_path):
    """A target interpreter that cannot import telemetryflow_bootstrap (another venv) runs the
    program uninstrumented after one clear line: one for the whole process tree, not one
    per Python process the program starts (here two children)."""
    other = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    code = ("import subprocess, sys\n"
            "for _ in range(2): subprocess.run([sys.executable, '-c', 'pass'], check=True)\n"
            "print('still runs')")
    proc = run([str(other / "bin" / "python"), "-c", code], receiver_env(otlp_receiver))
    assert proc.returncode == 0
    assert proc.stdout.strip() == "still runs"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow:")]
    assert len(lines) == 1 and "cannot import telemetryflow_bootstrap" in lines[0], proc.stderr


def test_no_backend_prints_spans_on_stderr():
    """With no endpoint configured, spans are printed compactly on stderr (never stdout)."""
    proc = run(python(app("traced_app.py")), clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "traced_app ran"
    span_lines = [line for line in proc.stderr.splitlines() if "outer-work" in line]
    assert len(span_lines) == 1 and span_lines[0].startswith("telemetryflow:"), proc.stderr


def test_disabled_runs_without_instrumentation(otlp_receiver):
    """TELEMETRYFLOW_ENABLED=false: the program runs and nothing is exported."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_ENABLED="false")
    proc = run(python(app("traced_app.py")), env)
    assert proc.returncode == 0
    code = "import sys; print('telemetryflow_bootstrap' in sys.modules)"
    proc2 = run(python("-c", code), env)
    assert proc2.stdout.strip() == "False"
    assert otlp_receiver.spans() == []


def test_wheel_ships_the_hook(otlp_receiver, tmp_path):
    """A wheel built from the checkout, installed into a fresh venv, carries the hook: the
    launcher from that venv instruments a program."""
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(wheel_dir.glob("telemetryflow_bootstrap-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    ours = next(Path(sys.executable).parent.parent.glob("lib/python3*/site-packages"))
    (site / "deps.pth").write_text(f"{ours}\n")  # dependencies from this venv, not our package
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    env = receiver_env(otlp_receiver)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    code = (
        "import telemetryflow_bootstrap, sitecustomize; "
        "print(telemetryflow_bootstrap.__file__); print(sitecustomize.__file__)"
    )
    proc = subprocess.run(
        [str(venv / "bin" / "telemetryflow-run"), "python", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    package_file, hook_file = proc.stdout.split()
    assert package_file.startswith(str(venv)) and hook_file.startswith(str(venv)), proc.stdout
    assert hook_file.endswith("telemetryflow_bootstrap/_hook/sitecustomize.py")


def test_shell_command_instruments_python_underneath(otlp_receiver):
    """A non-Python command (`sh -c "python app.py"`) runs as is; the Python process under it
    is instrumented through the inherited environment."""
    proc = run(["sh", "-c", f"python {app('traced_app.py')} 6"], receiver_env(otlp_receiver))
    assert proc.returncode == 6, proc.stderr
    assert proc.stdout.strip() == "traced_app ran 6"
    spans = otlp_receiver.wait_for_spans(2)
    assert {"outer-work", "inner-work"} <= {s.name for s in spans}


def test_pytest_console_script_is_instrumented(otlp_receiver):
    """`telemetryflow-run pytest ...` (a real console script) runs the tests instrumented,
    named after the console script, with pytest's own exit code."""
    target = str(REPO / "tests" / "apps" / "pytest_target" / "check_traced.py")
    proc = run(["pytest", "-q", "-p", "no:cacheprovider", target], receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    span = otlp_receiver.wait_for_spans(1, name="inside-pytest")[0]
    assert span.resource["service.name"] == "pytest"
