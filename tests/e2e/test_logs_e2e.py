"""Logs and runtime metrics end to end: programs that only use the standard ``logging``
module, run under the installed ``telemetryflow-run`` against the real OTLP receiver."""

from __future__ import annotations

import subprocess
import time

import pytest

from ..otlp_receiver import free_port
from .launcher import app, clean_env, python, receiver_env, run

pytestmark = pytest.mark.e2e


def _span_ids(stdout: str) -> tuple[str, str]:
    line = next(line for line in stdout.splitlines() if line.startswith("span "))
    _, trace_id, span_id = line.split()
    return trace_id, span_id


def test_log_inside_a_span_arrives_correlated(otlp_receiver):
    """logging.info inside a span arrives with that span's trace and span ids, its severity,
    the logger's name as scope, the code location and the extra= fields; the program's own
    output is unchanged."""
    proc = run(python(app("logs_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    trace_id, span_id = _span_ids(proc.stdout)
    log = otlp_receiver.wait_for_logs(1, body="order 42 placed")[0]
    assert (log.trace_id, log.span_id) == (trace_id, span_id)
    assert (log.severity_number, log.severity_text) == (9, "INFO")
    assert log.scope_name == "shop.orders"
    assert log.attributes["order.id"] == 42 and log.attributes["shop"] == "eu"
    assert log.attributes["code.file.path"].endswith("logs_app.py")
    assert log.attributes["code.function.name"] == "<module>"
    assert log.attributes["thread.name"] == "MainThread"
    assert log.resource["service.name"] == "logs_app"
    assert proc.stderr.startswith("INFO shop.orders order 42 placed\n")


def test_logging_exception_arrives_with_exception_attributes(otlp_receiver):
    """logging.exception arrives as an ERROR with exception.type/message/stacktrace; records
    under the program's own level and the SDK's own logs are not exported."""
    proc = run(python(app("logs_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    log = otlp_receiver.wait_for_logs(1, body="payment lookup failed")[0]
    assert (log.severity_number, log.severity_text) == (17, "ERROR")
    assert log.attributes["exception.type"] == "KeyError"
    assert log.attributes["exception.message"] == "'missing'"
    assert "Traceback (most recent call last)" in log.attributes["exception.stacktrace"]
    assert log.span_id != _span_ids(proc.stdout)[1]  # logged after the span ended
    bodies = [lg.body for lg in otlp_receiver.logs()]
    assert sorted(bodies) == ["order 42 placed", "payment lookup failed"]
    assert not [lg for lg in otlp_receiver.logs() if lg.scope_name.startswith("opentelemetry")]


def test_runtime_metrics_arrive(otlp_receiver):
    """Process and CPython runtime metrics arrive once the process has lived an export
    interval (a shorter run that recorded nothing else skips the exit-time export)."""
    proc = run(python(app("logs_app.py")),
               receiver_env(otlp_receiver, TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="50"))
    assert proc.returncode == 0, proc.stderr
    rss = otlp_receiver.wait_for_metric("process.memory.usage")[-1]
    assert rss.value > 1024 * 1024 and rss.unit == "By"
    cpu = otlp_receiver.wait_for_metric("process.cpu.time")
    assert {p.attributes["cpu.mode"] for p in cpu} == {"user", "system"}
    assert sum(p.value for p in cpu) > 0
    threads = otlp_receiver.wait_for_metric("process.thread.count")[-1]
    assert threads.value >= 1
    collections = otlp_receiver.wait_for_metric("cpython.gc.collections")
    assert {p.attributes["cpython.gc.generation"] for p in collections} == {0, 1, 2}
    assert all(p.is_monotonic for p in collections)


def test_runtime_metrics_and_logging_can_be_turned_off(otlp_receiver):
    """TELEMETRYFLOW_RUNTIME_METRICS=false sends no runtime metric and disabling 'logging' by
    name exports no stdlib record, while the program's spans still arrive."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_RUNTIME_METRICS="false",
                       TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="logging")
    proc = run(python(app("logs_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    otlp_receiver.wait_for_spans(1, name="place-order")
    assert otlp_receiver.logs() == []
    names = {p.name for p in otlp_receiver.metrics()}
    assert not {n for n in names if n.startswith(("process.", "cpython."))}, names


def test_log_correlation_adds_trace_ids_to_basic_config_format(otlp_receiver):
    """With TELEMETRYFLOW_LOG_CORRELATION=true, basicConfig() without a format prints the
    current trace id on every line."""
    env = receiver_env(otlp_receiver, TELEMETRYFLOW_LOG_CORRELATION="true",
                       TELEMETRYFLOW_SERVICE_NAME="jobs")
    proc = run(python(app("logs_correlation_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    trace_id = proc.stdout.split()[1]
    assert f"INFO:job:working trace_id={trace_id} span_id=" in proc.stderr
    assert "service.name=jobs trace_sampled=True" in proc.stderr


@pytest.mark.parametrize("code", [
    "import logging; logging.getLogger('app').warning('x')",
    "import logging; logging.warning('x')",
    "import logging; logging.basicConfig(level=logging.INFO, format='%(levelname)s|%(message)s')"
    "; logging.info('x'); logging.basicConfig(format='forced %(message)s', force=True)"
    "; logging.warning('x')",
], ids=["last-resort", "module-function", "basicConfig-force"])
def test_stderr_is_identical_with_and_without_the_launcher(otlp_receiver, code):
    """What a program's logging prints on stderr (lastResort, the implicit basicConfig of
    logging.warning, basicConfig with level/format and force=True) is byte for byte what it
    prints without the launcher, and the record is exported as well."""
    plain = subprocess.run(python("-c", code), env=clean_env(), capture_output=True, text=True,
                           timeout=60)
    launched = run(python("-c", code), receiver_env(otlp_receiver))
    assert launched.returncode == plain.returncode == 0, launched.stderr
    assert launched.stderr == plain.stderr
    assert "x" in plain.stderr
    otlp_receiver.wait_for_logs(1, body="x")


def test_backend_down_neither_delays_exit_much_nor_floods_stderr(otlp_receiver):
    """With nothing listening on the endpoint the program's output is unchanged, its exit
    waits at most about the shutdown timeout, and stderr gets a few telemetryflow lines, not
    one per retry or per record (and none of the exporter's own retry warnings)."""
    closed = f"http://127.0.0.1:{free_port()}"
    plain_started = time.monotonic()
    plain = subprocess.run(python(app("logs_app.py")), env=clean_env(), capture_output=True,
                           text=True, timeout=60)
    plain_seconds = time.monotonic() - plain_started
    env = clean_env(TELEMETRYFLOW_ENDPOINT=closed, TELEMETRYFLOW_INSECURE="true",
                    TELEMETRYFLOW_BATCH_TIMEOUT="100", TELEMETRYFLOW_TIMEOUT="1",
                    TELEMETRYFLOW_METRIC_EXPORT_INTERVAL="200",
                    TELEMETRYFLOW_SHUTDOWN_TIMEOUT="2")
    started = time.monotonic()
    proc = run(python(app("logs_app.py")), env, timeout=60)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1:] == plain.stdout.splitlines()[1:]  # span ids differ
    assert seconds < plain_seconds + 2 + 3, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow")]
    program = [line for line in proc.stderr.splitlines() if not line.startswith("telemetryflow")]
    assert len(ours) <= 5, proc.stderr
    assert program == plain.stderr.splitlines()
    assert "retrying" not in proc.stderr and "opentelemetry" not in proc.stderr


def test_short_run_with_only_runtime_metrics_exports_nothing(otlp_receiver):
    """`python -c pass` (shorter than one export interval, nothing recorded but our runtime
    metrics, no span) sends nothing at exit, so it never pays for building the exporter; a
    metric the program recorded itself is still exported at exit."""
    proc = run(python("-c", "pass"), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    code = ("from opentelemetry import metrics; "
            "metrics.get_meter('m').create_counter('jobs.done').add(2)")
    proc = run(python("-c", code), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert otlp_receiver.wait_for_metric("jobs.done")[-1].value == 2
    assert len(otlp_receiver.requests("metrics")) == 1
    assert otlp_receiver.requests("traces") == []


def test_first_records_from_many_threads_at_once_all_arrive(otlp_receiver):
    """Eight threads logging their first records at the same moment lose none of them (the
    bridge builds a logger per name on first use: no race may drop or duplicate one)."""
    proc = run(python(app("first_logs_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("record") == 200
    logs = otlp_receiver.wait_for_logs(200)
    assert sorted(lg.body for lg in logs) == sorted(
        f"thread {n} record {i}" for n in range(8) for i in range(25))
    assert {lg.scope_name for lg in logs} == {"first.logs"}


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_child_forked_before_the_first_record_exports_its_own(otlp_receiver):
    """Forked before anything was logged: the child's record arrives with the child's pid
    in the resource, the parent's with its own."""
    proc = run(python(app("first_logs_app.py"), "fork"), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    logs = otlp_receiver.wait_for_logs(2)
    by_body = {lg.body.split(" from ")[0]: lg for lg in logs}
    child, parent = by_body["child record"], by_body["parent record"]
    assert child.resource["process.pid"] == int(child.body.rsplit(" ", 1)[1])
    assert parent.resource["process.pid"] == int(parent.body.rsplit(" ", 1)[1])
    assert child.resource["process.pid"] != parent.resource["process.pid"]


_DIRECT = """
import logging
from telemetryflow_bootstrap.instrumentation import stdlib_logging
logging.getLogger("shop.direct").warning("straight to the queue %s", 7)
emitter = stdlib_logging._bridge._emitters["shop.direct"]
print(type(getattr(emitter, "__self__", None)).__name__)
"""


def test_records_take_the_direct_path_into_the_queue_and_arrive_whole(otlp_receiver):
    """Under the launcher the bridge's logger chain is ours alone, so records skip the SDK's
    emit chain (``DirectLogs``) and still arrive with every field."""
    proc = run(python("-c", _DIRECT), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["DirectLogs"]
    log = otlp_receiver.wait_for_logs(1, body="straight to the queue 7")[0]
    assert (log.severity_number, log.severity_text) == (13, "WARNING")
    assert log.scope_name == "shop.direct"
    assert log.attributes["code.function.name"] == "<module>"
    assert log.attributes["thread.name"] == "MainThread"
    assert log.observed_time_ns >= log.time_ns > 0
    assert log.resource["service.name"] == "python"


@pytest.mark.parametrize("how", ["dictConfig", "fileConfig", "shutdown"])
def test_records_keep_arriving_after_logging_is_reconfigured_or_shut_down(otlp_receiver, how):
    """dictConfig/fileConfig (Django's setup(), uvicorn) and logging.shutdown() close every
    handler the logging module knows of, the bridge included: records logged after them, up
    to an atexit function of the program's, still arrive, and the output is unchanged."""
    plain = subprocess.run(python(app("logs_reconfigured_app.py"), how), env=clean_env(),
                           capture_output=True, text=True, timeout=60)
    proc = run(python(app("logs_reconfigured_app.py"), how), receiver_env(otlp_receiver))
    assert proc.returncode == plain.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == (plain.stdout, plain.stderr)
    expected = [f"before {how}", f"after {how}", f"info after {how}",
                f"from an atexit function after {how}"]
    otlp_receiver.wait_for_logs(1, body=expected[-1])
    assert sorted(lg.body for lg in otlp_receiver.logs()) == sorted(expected)


_MANY_EXTRAS = """
import logging
logging.basicConfig()
for n in range(2):
    logging.getLogger("app").warning("many extras %d", n,
                                     extra={f"k{i}": i for i in range(130)})
"""


def test_extras_past_the_attribute_limit_are_cut_quietly_and_the_first_kept(otlp_receiver):
    """A record with more extra= fields than the attribute limit (128) arrives with our
    code/thread attributes and its first extras, the same ones every run; the program's
    stderr gets one telemetryflow line for it, however many records, and no SDK warning."""
    plain = subprocess.run(python("-c", _MANY_EXTRAS), env=clean_env(), capture_output=True,
                           text=True, timeout=60)
    proc = run(python("-c", _MANY_EXTRAS), receiver_env(otlp_receiver))
    assert proc.returncode == plain.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow")]
    program = [line for line in proc.stderr.splitlines() if not line.startswith("telemetryflow")]
    assert program == plain.stderr.splitlines()
    assert len(ours) == 1 and "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT" in ours[0], proc.stderr
    logs = otlp_receiver.wait_for_logs(2)
    for log in logs:
        assert log.attributes["code.function.name"] == "<module>"
        assert log.attributes["thread.name"] == "MainThread"
        extras = [key for key in log.attributes if key.startswith("k")]
        assert len(log.attributes) == 128
        assert sorted(extras, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(len(extras))]


_UNPRINTABLE = """
import logging
logging.basicConfig()
class Unprintable:
    def __str__(self):
        raise RuntimeError("nope")
logging.getLogger("app").warning(Unprintable())
logging.getLogger("app").warning("bad %s %s", "one")
"""


def test_records_the_program_cannot_format_arrive_and_add_nothing_to_stderr(otlp_receiver):
    """A message whose __str__ raises, and one with bad %-arguments, are reported by the
    program's own handler as usual ("--- Logging error ---"), with no telemetryflow line
    added; they arrive with a placeholder body and the template."""
    proc = run(python("-c", _UNPRINTABLE), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("--- Logging error ---") == 2
    assert not [line for line in proc.stderr.splitlines() if line.startswith("telemetryflow")]
    logs = otlp_receiver.wait_for_logs(2)
    assert sorted(lg.body for lg in logs) == ["<unprintable Unprintable>", "bad %s %s"]
