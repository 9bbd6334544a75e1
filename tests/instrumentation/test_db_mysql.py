"""PyMySQL and mysqlclient (MySQLdb) under the DB-API instrumentation, against MariaDB."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    MYSQL,
    PASSWORD,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    recorded,
    scenario_mysqldb,
    scenario_mysqldb_proxied,
    scenario_pymysql,
    scenario_pymysql_proxied,
    tag,
    unpatched,
)

__all__ = ["recorded"]
pytestmark = pytest.mark.service("mariadb")

MARIADB = {"db.system.name": "mariadb", "db.namespace": "test",
           "server.address": "127.0.0.1", "server.port": 3306}


@pytest.fixture(params=["pymysql", "MySQLdb"])
def driver(request: pytest.FixtureRequest) -> Any:
    """Each MySQL driver in turn (mysqlclient skips when it is not installed)."""
    if request.param == "MySQLdb":
        return pytest.importorskip("MySQLdb")
    return importlib.import_module(request.param)


@pytest.fixture
def secret_user(driver: Any) -> Iterator[dict[str, Any]]:
    """Connection settings for a throwaway MariaDB user whose password is PASSWORD."""
    user = f"tf_{tag()}"
    admin = driver.connect(**MYSQL)
    cur = admin.cursor()
    cur.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{PASSWORD}'")
    cur.execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
    try:
        yield {**MYSQL, "user": user, "password": PASSWORD}
    finally:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


def test_execute_span_has_mariadb_attributes(recorded: Recorded, driver: Any):
    """A cursor execute is a CLIENT span with db.system.name=mariadb (from the server's
    handshake), database, server, operation, table and the statement as written."""
    conn = driver.connect(**MYSQL)
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                ("test",))
    cur.fetchall()
    conn.close()
    span = recorded.span("SELECT information_schema.tables")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        **MARIADB, "db.operation.name": "SELECT",
        "db.collection.name": "information_schema.tables",
        "db.query.text":
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"}


def test_failing_statement_is_an_error_span(recorded: Recorded, driver: Any):
    """A failing statement gives an ERROR span with error.type and the MySQL error number,
    and the driver's own exception object."""
    conn = driver.connect(**MYSQL)
    with pytest.raises(driver.ProgrammingError) as caught:
        conn.cursor().execute("SELECT * FROM tf_missing_mysql")
    assert caught.value.args[0] == 1146 and caught.value.__context__ is None
    conn.close()
    span = recorded.span("SELECT tf_missing_mysql")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == dbapi_error_type(caught.value)
    assert span.attributes["db.response.status_code"] == "1146"
    assert span.events[0].name == "exception"


def dbapi_error_type(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def test_no_password_or_parameter_value_in_any_attribute(recorded: Recorded, driver: Any,
                                                         secret_user: dict[str, Any]):
    """Connecting with a password and binding secret parameters leaves neither in any
    span attribute, event or metric point."""
    recorded.exporter.clear()  # the user's CREATE/GRANT
    conn = driver.connect(**secret_user)
    cur = conn.cursor()
    cur.execute("SELECT %s", (SECRET_VALUE,))
    cur.executemany("SELECT %s", [(SECRET_VALUE,), (SECRET_VALUE,)])
    conn.close()
    assert len(recorded.spans("mariadb")) == 2
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_callproc_is_a_call_span(recorded: Recorded, driver: Any):
    """callproc makes a ``CALL <procedure>`` span naming the stored procedure."""
    name = f"tf_proc_{tag()}"
    conn = driver.connect(**MYSQL)
    cur = conn.cursor()
    cur.execute(f"CREATE OR REPLACE PROCEDURE {name}() SELECT 1")
    try:
        cur.callproc(name)
        assert cur.fetchall() == ((1,),)
        while cur.nextset():
            pass
    finally:
        cur.execute(f"DROP PROCEDURE IF EXISTS {name}")
        conn.close()
    span = recorded.span(f"CALL {name}")
    assert span.attributes["db.stored_procedure.name"] == name


def test_commenter_sends_traceparent_to_the_server(recorded: Recorded, driver: Any):
    """With the commenter on, MariaDB's process list shows the statement with the span's
    traceparent comment."""
    recorded.telemetry().commenter = True
    conn = driver.connect(**MYSQL)
    cur = conn.cursor()
    cur.execute("SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()")
    text = cur.fetchone()[0]
    conn.close()
    context = recorded.span("SELECT information_schema.PROCESSLIST").get_span_context()
    assert f"traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-" in text


def test_duration_metric_points(recorded: Recorded, driver: Any):
    """Executes record duration points with system, operation, table, database, server."""
    conn = driver.connect(**MYSQL)
    conn.cursor().execute("SELECT 1 FROM information_schema.schemata LIMIT 1")
    conn.close()
    points = recorded.points(**{"db.collection.name": "information_schema.schemata"})
    assert [dict(p.attributes) for p in points] == [
        {**MARIADB, "db.operation.name": "SELECT",
         "db.collection.name": "information_schema.schemata"}]


def test_pymysql_behaviour_is_unchanged(recorded: Recorded):
    """Everyday PyMySQL use (with-blocks, fetch*, iteration, lastrowid, rowcount,
    description, executemany, callproc, DictCursor, SSCursor, rollback, isinstance) gives
    the same results patched as in an unpatched interpreter."""
    name = tag()
    expected = unpatched("pymysql", name)
    assert scenario_pymysql(name) == expected
    assert len(recorded.spans("mariadb")) >= 15


def test_mysqldb_behaviour_is_unchanged(recorded: Recorded):
    """The same for mysqlclient (MySQLdb)."""
    pytest.importorskip("MySQLdb")
    name = tag()
    expected = unpatched("mysqldb", name)
    assert scenario_mysqldb(name) == expected
    assert len(recorded.spans("mariadb")) >= 15


def test_class_names_pickling_and_copying_act_as_unpatched(recorded: Recorded, driver: Any):
    """A proxied connection's and cursor's classes read as the driver's (they read
    ``_Connection``), and pickling and copying them gives the driver's own outcome (the
    proxy raised NotImplementedError)."""
    name = tag()
    scenario, run = {"pymysql": ("pymysql_proxied", scenario_pymysql_proxied),
                     "MySQLdb": ("mysqldb_proxied", scenario_mysqldb_proxied)}[driver.__name__]
    assert run(name) == unpatched(scenario, name)

