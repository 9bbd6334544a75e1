"""mysql-connector-python end to end: the installed launcher, a real program (the C
extension's connection from a pool, a prepared cursor, executemany, a failing statement,
the asyncio API), the real MariaDB and the OTLP receiver."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .launcher import app, clean_env, python, receiver_env, run

pytestmark = [pytest.mark.e2e, pytest.mark.service("mariadb")]

SECRET = "row-value-never-exported-7719"
EXPECTED = ["SELECT", "CREATE mc_app_items", "INSERT mc_app_items", "SELECT mc_app_items",
            "SELECT missing_mysql_connector_app", "SELECT"]


def test_spans_arrive_as_children_of_the_programs_span(otlp_receiver):
    """Each statement the program runs (on the C extension's connection where it loads)
    is a CLIENT span, child of the program's span, in
    order, lasting as long as the server worked; executemany one span; the failing one an
    ERROR with the MySQL error number; duration points; the parameter values nowhere."""
    proc = run(python(app("mysql_connector_app.py")), receiver_env(otlp_receiver))
    assert proc.returncode == 0, proc.stderr
    kind, *rest = proc.stdout.split()[1:]
    assert kind == ("CMySQLConnection" if _c_extension_loads() else "MySQLConnection")
    assert rest == ["1", "3", "1146", "1"]
    root = otlp_receiver.wait_for_spans(1, name="mysql-connector-app")[0]
    otlp_receiver.wait_for(lambda r: len(_db_spans(r)) >= len(EXPECTED))
    spans = sorted(_db_spans(otlp_receiver), key=lambda s: s.start_ns)
    assert [s.name for s in spans] == EXPECTED
    for span in spans:
        assert span.kind == "CLIENT"
        assert span.parent_span_id == root.span_id and span.trace_id == root.trace_id
        assert span.attributes["db.system.name"] == "mariadb"
        assert span.attributes["server.address"] == "127.0.0.1"
    assert spans[0].duration_ns >= 100_000_000  # SLEEP(0.1)
    assert spans[0].attributes["db.query.text"] == "SELECT %s = %s, SLEEP(?)"
    assert spans[2].attributes["db.operation.batch.size"] == 3
    failed = spans[4]
    assert failed.status_code == "ERROR"
    assert failed.attributes["error.type"] == "mysql.connector.errors.ProgrammingError"
    assert failed.attributes["db.response.status_code"] == "1146"
    otlp_receiver.wait_for_metric(
        "db.client.operation.duration",
        where=lambda p: p.attributes.get("db.system.name") == "mariadb")
    exported = repr([r.message for r in otlp_receiver.requests()])
    assert SECRET not in exported and SECRET not in proc.stderr


def test_disabled_by_name_leaves_it_untraced(otlp_receiver):
    """``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=mysql_connector``: the program runs and
    its own span arrives, with no database span. (Its prepared statement's count is not
    checked: left alone, the driver's own context propagation sends the process span to
    MariaDB as a query attribute, which the C extension binds as a parameter.)"""
    env = receiver_env(otlp_receiver,
                       TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS="mysql_connector")
    proc = run(python(app("mysql_connector_app.py")), env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "mysql_connector_app"
    assert proc.stdout.split()[4:] == ["1146", "1"]
    otlp_receiver.wait_for_spans(1, name="mysql-connector-app")  # it ends last
    assert _db_spans(otlp_receiver) == []
    assert "mysql_connector" not in proc.stderr  # a known name: no warning


def test_start_up_does_not_import_the_connector():
    """The catalog is lazy: a program that never imports mysql.connector does not have it
    (nor its C extension) loaded by the launcher's start-up."""
    probe = ("import sys; print('telemetryflow_bootstrap.instrumentation.registry' in "
             "sys.modules, sorted(m for m in sys.modules if 'mysql' in m))")
    proc = run(python("-c", probe), clean_env(TELEMETRYFLOW_ENDPOINT="http://127.0.0.1:9"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True []"  # instrumentation armed, nothing of MySQL


def _c_extension_loads() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import _mysql_connector"],
                           capture_output=True, check=False)
    return probe.returncode == 0


def _db_spans(receiver) -> list:
    return [s for s in receiver.spans() if "db.system.name" in s.attributes]
