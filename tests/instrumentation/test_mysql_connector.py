"""mysql-connector-python (``mysql.connector``) against MariaDB: the pure-Python cursors in
this process, the C extension's in subprocesses, and the asyncio API.

Why subprocesses for the C extension: the 26.x wheel's ``_mysql_connector`` needs OpenSSL
3.2 and ships its own ``libssl.so.3``, but once the system's (3.0 here) is loaded by
``import ssl`` the loader reuses it and the extension fails to load, so the driver falls
back to pure Python; ``mysql.connector`` imports ``ssl`` itself before trying. Importing
``_mysql_connector`` first, in a fresh interpreter, gives the real C extension.

Run as ``python -m tests.instrumentation.test_mysql_connector MODE TAG [patched]`` it prints
the JSON of ``scenario`` (and of the spans, when patched): the behaviour tests compare that
with and without our patch.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import warnings
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    MYSQL,
    PASSWORD,
    REPO,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    our_frames,
    recorded,
    tag,
)

__all__ = ["recorded"]
pytestmark = pytest.mark.service("mariadb")

MARIADB = {"db.system.name": "mariadb", "db.namespace": "test",
           "server.address": "127.0.0.1", "server.port": 3306}
PURE = {**MYSQL, "use_pure": True}


def _connector() -> Any:
    import mysql.connector

    return mysql.connector


def test_execute_is_a_client_span_with_the_statement_and_server(recorded: Recorded):
    """A pure-Python cursor's execute is one CLIENT span named after operation and table,
    with db.system.name=mariadb from the handshake, database, server and the statement
    with its literal shown as ``?``, and a duration point with the same keys."""
    conn = _connector().connect(**PURE)
    assert type(conn).__name__ == "MySQLConnection"
    cur = conn.cursor()
    cur.execute("SELECT table_name, 7 FROM information_schema.tables WHERE table_schema = %s",
                ("test",))
    cur.fetchall()
    conn.close()
    span = recorded.span("SELECT information_schema.tables")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes) == {
        **MARIADB, "db.operation.name": "SELECT",
        "db.collection.name": "information_schema.tables",
        "db.query.text":
            "SELECT table_name, ? FROM information_schema.tables WHERE table_schema = %s"}
    [point] = recorded.points(**{"db.collection.name": "information_schema.tables"})
    assert dict(point.attributes) == {**MARIADB, "db.operation.name": "SELECT",
                                      "db.collection.name": "information_schema.tables"}


def test_failing_statement_is_an_error_span_and_the_drivers_exception(recorded: Recorded):
    """A failing statement: ERROR span with the exception's class and the MySQL error
    number, no message; the program gets the driver's own exception object."""
    connector = _connector()
    conn = connector.connect(**PURE)
    with pytest.raises(connector.ProgrammingError) as caught:
        conn.cursor().execute("SELECT * FROM tf_missing_mc")
    conn.close()
    assert caught.value.errno == 1146 and caught.value.__context__ is None
    assert our_frames(caught.value) == ["traced", "run"]
    span = recorded.span("SELECT tf_missing_mc")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "mysql.connector.errors.ProgrammingError"
    assert span.attributes["db.response.status_code"] == "1146"
    assert "doesn't exist" not in all_attribute_text(recorded)


def test_executemany_is_one_span_whatever_the_driver_sends(recorded: Recorded):
    """An INSERT the driver folds into one multi-row statement and a SELECT it runs once
    per row are each one span with db.operation.batch.size; no span per inner execute."""
    conn = _connector().connect(**PURE)
    cur = conn.cursor()
    cur.execute("CREATE TEMPORARY TABLE tf_mc_many (a INT)")
    recorded.exporter.clear()
    cur.executemany("INSERT INTO tf_mc_many (a) VALUES (%s)", [(1,), (2,), (3,)])
    assert cur.rowcount == 3
    cur.executemany("SELECT a FROM tf_mc_many WHERE a = %s", seq_params=[(1,), (2,)])
    conn.close()
    spans = recorded.spans("mariadb")
    assert [(s.name, s.attributes["db.operation.batch.size"]) for s in spans] == [
        ("INSERT tf_mc_many", 3), ("SELECT tf_mc_many", 2)]


def test_callproc_is_one_call_span(recorded: Recorded):
    """callproc with arguments (the driver SETs them, CALLs, then SELECTs the OUT values)
    is one ``CALL {procedure}`` span naming the procedure."""
    name = f"tf_mc_proc_{tag()}"
    conn = _connector().connect(**PURE)
    cur = conn.cursor()
    cur.execute(f"CREATE OR REPLACE PROCEDURE {name}(IN a INT, OUT b INT) SET b = a * 2")
    recorded.exporter.clear()
    try:
        assert cur.callproc(name, (21, 0)) == (21, 42)
    finally:
        cur.execute(f"DROP PROCEDURE IF EXISTS {name}")
        conn.close()
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == [f"CALL {name}", "DROP"]
    assert spans[0].attributes["db.stored_procedure.name"] == name


def test_prepared_dictionary_and_buffered_cursors_are_traced(recorded: Recorded):
    """Prepared (also dictionary), dictionary, buffered and raw cursors each give their
    statement's span; a prepared cursor's executemany is one span."""
    conn = _connector().connect(**PURE)
    kinds = [{"prepared": True}, {"prepared": True, "dictionary": True},
             {"dictionary": True}, {"buffered": True}, {"raw": True}]
    for number, kind in enumerate(kinds):
        cur = conn.cursor(**kind)
        cur.execute(f"SELECT {number}, %s FROM information_schema.schemata LIMIT 1", (1,))
        cur.fetchall()
        cur.close()
    cur = conn.cursor(prepared=True)
    cur.executemany("SELECT %s FROM information_schema.schemata LIMIT 1", [(1,), (2,)])
    conn.close()
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == ["SELECT information_schema.schemata"] * 6
    assert {s.attributes["db.query.text"] for s in spans[:5]} == {
        "SELECT ?, %s FROM information_schema.schemata LIMIT ?"}
    assert spans[5].attributes["db.operation.batch.size"] == 2


def test_no_password_or_parameter_value_is_recorded(recorded: Recorded):
    """A user with a password, secret parameters through execute, executemany, a prepared
    cursor and callproc: neither appears in any attribute, event or point."""
    connector = _connector()
    user = f"tf_mc_{tag()}"
    admin = connector.connect(**PURE)
    admin.cursor().execute(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY "
                           f"'{PASSWORD}'")
    admin.cursor().execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
    try:
        recorded.exporter.clear()
        conn = connector.connect(**{**PURE, "user": user, "password": PASSWORD})
        cur = conn.cursor()
        cur.execute("SELECT %s", (SECRET_VALUE,))
        cur.fetchall()
        cur.executemany("SELECT %s", [(SECRET_VALUE,), (SECRET_VALUE,)])
        prepared = conn.cursor(prepared=True)
        prepared.execute("SELECT %s", (SECRET_VALUE,))
        prepared.fetchall()
        conn.close()
        assert len(recorded.spans("mariadb")) == 3
    finally:
        admin.cursor().execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_commenter_reaches_the_server_but_not_prepared_statements(recorded: Recorded):
    """With the commenter on, MariaDB's process list shows a plain cursor's statement with
    its span's traceparent; a prepared cursor's statement is sent as written (prepared
    once, not once per call)."""
    recorded.telemetry().commenter = True
    conn = _connector().connect(**PURE)
    query = "SELECT INFO FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()"
    cur = conn.cursor()
    cur.execute(query)
    plain = cur.fetchone()[0]
    prepared = conn.cursor(prepared=True)
    prepared.execute(query)
    as_prepared = prepared.fetchone()[0]
    conn.close()
    first = recorded.spans("mariadb")[0].get_span_context()
    assert f"traceparent='00-{first.trace_id:032x}-{first.span_id:016x}-" in plain
    assert "traceparent" not in as_prepared


def test_the_drivers_own_statements_are_not_spans(recorded: Recorded):
    """The driver's own cursor statements (the SHOW WARNINGS of ``get_warnings=True``, the
    ``SELECT @@session...`` behind ``conn.autocommit``, ``conn.database`` and parameter
    escaping's ``sql_mode``) are not spans: the program's statement is the one span."""
    conn = _connector().connect(**PURE, get_warnings=True)
    assert conn.autocommit is False and conn.database == "test"
    cur = conn.cursor()
    cur.execute("SELECT CAST(%s AS INTEGER)", ("12abc",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the driver warns with the warning it read
        cur.fetchall()
    assert cur.warnings and cur.warnings[0][1] == 1292
    conn.close()
    assert [s.name for s in recorded.spans("mariadb")] == ["SELECT"]


def test_pooled_connections_are_traced(recorded: Recorded):
    """Connections from a ``MySQLConnectionPool`` and from ``connect(pool_name=...)`` give
    spans (the pool's own reset of a returned connection does not)."""
    from mysql.connector import pooling

    pool = pooling.MySQLConnectionPool(pool_name=f"tf_mc_{tag()}", pool_size=1, **PURE)
    for number in (1, 2):  # the second time through the pool's reset connection
        with pool.get_connection() as conn:
            cur = conn.cursor()
            cur.execute(f"SELECT {number} FROM information_schema.schemata LIMIT 1")
            cur.fetchall()
            cur.close()
    conn = _connector().connect(pool_name=f"tf_mc2_{tag()}", pool_size=1, **PURE)
    assert type(conn).__name__ == "PooledMySQLConnection"
    cur = conn.cursor(dictionary=True)
    cur.execute("SELECT 3 FROM information_schema.schemata LIMIT 1")
    cur.fetchall()
    cur.close()
    conn.close()
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == ["SELECT information_schema.schemata"] * 3
    assert all(s.attributes["server.port"] == 3306 for s in spans)


def test_asyncio_api_is_traced(recorded: Recorded):
    """``mysql.connector.aio``: execute, a prepared cursor, executemany (one span) and a
    failing statement (ERROR with the error number), each span lasting until the awaited
    result was there."""
    aio = pytest.importorskip("mysql.connector.aio")
    errors = pytest.importorskip("mysql.connector.errors")

    async def main() -> None:
        # ssl_disabled: 26.10's asyncio connect fails on a server without TLS otherwise
        # (the same patched or not).
        conn = await aio.connect(**MYSQL, ssl_disabled=True)
        cur = await conn.cursor()
        await cur.execute("SELECT SLEEP(0.05), %s", (SECRET_VALUE,))
        assert len(await cur.fetchall()) == 1
        prepared = await conn.cursor(prepared=True)
        await prepared.execute("SELECT %s FROM information_schema.schemata LIMIT 1", (1,))
        await prepared.fetchall()
        await cur.executemany("SELECT %s", [(1,), (2,), (3,)])
        with pytest.raises(errors.ProgrammingError):
            await cur.execute("SELECT * FROM tf_missing_mc_aio")
        await conn.close()

    asyncio.run(main())
    spans = recorded.spans("mariadb")
    assert [s.name for s in spans] == ["SELECT", "SELECT information_schema.schemata",
                                       "SELECT", "SELECT tf_missing_mc_aio"]
    assert spans[0].end_time - spans[0].start_time >= 50_000_000
    assert spans[2].attributes["db.operation.batch.size"] == 3
    assert spans[3].attributes["db.response.status_code"] == "1146"
    assert SECRET_VALUE not in all_attribute_text(recorded)


def test_get_server_info_deprecation_is_not_triggered(recorded: Recorded):
    """Finding out mariadb/mysql reads the ``server_info`` property, not the deprecated
    ``get_server_info()``: under ``-W error::DeprecationWarning`` the first statement runs
    and is reported as mariadb."""
    conn = _connector().connect(**PURE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        conn.cursor().execute("SELECT 1")
    conn.close()
    assert recorded.span("SELECT").attributes["db.system.name"] == "mariadb"


def test_no_query_attribute_warnings_under_a_current_span(recorded: Recorded):
    """Under a current span (the launcher's process span always is one) the driver's own
    context propagation would send query attributes MariaDB does not take, warning at
    connect and at every statement: turned off for such a server, so even under
    ``-W error`` the program connects and reads its values."""
    tracer = recorded.tracer_provider.get_tracer("test")
    with warnings.catch_warnings(), tracer.start_as_current_span("app"):
        warnings.simplefilter("error")
        conn = _connector().connect(**PURE)
        cur = conn.cursor(prepared=True)
        cur.execute("SELECT %s, %s", (5, "x"))
        assert cur.fetchall() == [(5, "x")]
        conn.close()
    assert getattr(conn, "otel_context_propagation", False) is False  # (8.0: none)


def test_a_second_patch_adds_no_second_span(recorded: Recorded):
    """Patching again (a second bootstrap) leaves one span per execute."""
    import mysql.connector

    from telemetryflow_bootstrap.instrumentation import mysql_connector

    mysql_connector.patch(mysql.connector, recorded.context)
    conn = mysql.connector.connect(**PURE)
    conn.cursor().execute("SELECT 1")
    conn.close()
    assert [s.name for s in recorded.spans("mariadb")] == ["SELECT"]


# ----- behaviour and the C extension, in subprocesses --------------------------------------


def scenario(tag_value: str, use_pure: bool) -> list[str]:
    """Everyday mysql.connector use, returning the repr of everything observable."""
    import mysql.connector
    from mysql.connector import pooling

    out: list[Any] = []
    name = f"tf_mc_p_{tag_value}"
    conn = mysql.connector.connect(**MYSQL, use_pure=use_pure)
    out += [type(conn).__name__, isinstance(conn, mysql.connector.MySQLConnection)]
    with conn.cursor() as cur:
        out.append(cur.execute("CREATE TEMPORARY TABLE t (id INT PRIMARY KEY "
                               "AUTO_INCREMENT, name VARCHAR(20))"))
        out.append(cur.executemany("INSERT INTO t (name) VALUES (%s)",
                                   [("a",), ("b",), ("c",)]))
        out += [cur.rowcount, cur.lastrowid, cur.statement, type(cur).__name__]
        cur.execute("SELECT id, name FROM t WHERE id > %(low)s ORDER BY id", {"low": 0})
        out += [cur.description, cur.fetchone(), cur.fetchmany(1), cur.fetchall()]
        cur.execute("SELECT name FROM t ORDER BY id")
        out.append(list(cur))
        cur.execute(f"CREATE OR REPLACE PROCEDURE {name}(IN a INT, OUT b INT) "
                    "BEGIN SET b = a + 1; SELECT a; END")
        out.append(cur.callproc(name, (1, 0)))
        out.append([r.fetchall() for r in cur.stored_results()])
        cur.execute(f"DROP PROCEDURE {name}")
    for kind in ({"dictionary": True}, {"buffered": True}, {"raw": True},
                 {"prepared": True}, {"prepared": True, "dictionary": True},
                 {"buffered": True, "dictionary": True}):
        cur = conn.cursor(**kind)
        cur.execute("SELECT id, name FROM t WHERE id = %s", (2,))
        out += [type(cur).__name__, cur.fetchall(), cur.rowcount]
        cur.close()
    prepared = conn.cursor(prepared=True)
    prepared.executemany("INSERT INTO t (name) VALUES (%s)", [("d",), ("e",)])
    out.append(prepared.rowcount)
    conn.commit()
    conn.start_transaction()
    conn.cursor().execute("DELETE FROM t")
    conn.rollback()
    cur = conn.cursor()
    cur.execute("SELECT COUNT(*) FROM t")
    out.append(cur.fetchall())
    try:
        cur.execute("SELECT * FROM tf_missing_mc_scenario")
    except mysql.connector.Error as exc:
        out += [type(exc).__qualname__, exc.errno, exc.sqlstate, exc.msg]
    conn.commit()
    conn.close()
    pool = pooling.MySQLConnectionPool(pool_name=f"s{tag_value}", pool_size=1, **MYSQL,
                                       use_pure=use_pure)
    with pool.get_connection() as pooled:
        cur = pooled.cursor()
        cur.execute("SELECT 5")
        out += [type(pooled).__name__, cur.fetchall()]
    return [repr(item) for item in out]


def _run(mode: str, patched: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEMETRYFLOW_", "OTEL_", "_TELEMETRYFLOW_"))
           and k != "PYTHONPATH"}
    # The C extension is imported before anything loads ssl (see the module docstring).
    first = "import _mysql_connector\n" if mode == "cext" else ""
    argv = [mode, tag(), *(["patched"] if patched else [])]
    code = (f"{first}import runpy, sys\nsys.argv[1:] = {argv!r}\n"
            "runpy.run_module('tests.instrumentation.test_mysql_connector', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_behaviour_is_unchanged_pure():
    """Everyday use of the pure-Python connector (cursor kinds, executemany, callproc with
    stored results, transactions, errors, pooling) gives the same results patched."""
    patched = _run("pure", True)
    assert patched["result"] == _run("pure", False)["result"]
    assert patched["result"][0] == "'MySQLConnection'"
    assert len(patched["spans"]) >= 15


def test_c_extension_is_traced_and_behaves_as_unpatched():
    """The C extension's connection (``connect()``'s default) and its plain, dict, raw,
    buffered and prepared cursors: the same results patched, and the spans, error
    included, as for the pure-Python ones."""
    probe = subprocess.run([sys.executable, "-c", "import _mysql_connector"],
                           capture_output=True, text=True, check=False)
    if probe.returncode:
        pytest.skip(f"the C extension does not load here: {probe.stderr.splitlines()[-1:]}")
    patched = _run("cext", True)
    assert patched["result"][0] == "'CMySQLConnection'"
    assert patched["result"] == _run("cext", False)["result"]
    spans = patched["spans"]
    names = [s["name"] for s in spans]
    assert names.count("SELECT t") == 9  # 3 on the plain cursor, 6 cursor kinds
    assert names.count("INSERT t") == 2 and f"CALL tf_mc_p_{tag()}" in names
    failed = next(s for s in spans if s["name"] == "SELECT tf_missing_mc_scenario")
    assert failed["attributes"]["error.type"] == "mysql.connector.errors.ProgrammingError"
    assert failed["attributes"]["db.response.status_code"] == "1146"
    assert all(s["attributes"]["db.system.name"] == "mariadb" for s in spans)


def _main(mode: str, tag_value: str, patched: bool) -> None:
    session = None
    if patched:
        from .data_fixtures import session_recorded

        session = session_recorded()
        # As under the launcher, whose process span is current: the driver's own context
        # propagation then sends query attributes, which MariaDB does not take.
        with session.tracer_provider.get_tracer("scenario").start_as_current_span("app"):
            result = scenario(tag_value, use_pure=mode == "pure")
    else:
        result = scenario(tag_value, use_pure=mode == "pure")
    spans = [] if session is None else [
        {"name": s.name, "attributes": dict(s.attributes)} for s in session.spans("mariadb")]
    print(json.dumps({"result": result, "spans": spans}))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], len(sys.argv) > 3)
