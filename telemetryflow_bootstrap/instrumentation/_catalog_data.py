"""Registry entries for the data instrumentations (see registry.Instrumentation).

``versions`` is the range we test against (informational, shown by ``--info``).
psycopg2 is also shipped as the ``psycopg2-binary`` distribution; ``distribution`` names
the canonical one.
"""

from __future__ import annotations

from .registry import Instrumentation

_BASE = "telemetryflow_bootstrap.instrumentation"

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation("sqlite3", ("sqlite3",), f"{_BASE}.sqlite3:patch", None, "stdlib"),
    Instrumentation("psycopg2", ("psycopg2",), f"{_BASE}.psycopg2:patch", "psycopg2",
                    ">=2.8"),
    Instrumentation("psycopg", ("psycopg",), f"{_BASE}.psycopg:patch", "psycopg", ">=3.1"),
    Instrumentation("pymysql", ("pymysql",), f"{_BASE}.pymysql:patch", "PyMySQL", ">=1.0"),
    Instrumentation("mysqldb", ("MySQLdb",), f"{_BASE}.mysqldb:patch", "mysqlclient",
                    ">=2.0"),
    Instrumentation("mysql_connector", ("mysql.connector",),
                    f"{_BASE}.mysql_connector:patch", "mysql-connector-python",
                    ">=8.0.33"),
    Instrumentation("asyncpg", ("asyncpg",), f"{_BASE}.asyncpg:patch", "asyncpg", ">=0.28"),
    Instrumentation("aiomysql", ("aiomysql",), f"{_BASE}.aiomysql:patch", "aiomysql",
                    ">=0.2"),
    Instrumentation("aiopg", ("aiopg",), f"{_BASE}.aiopg:patch", "aiopg", ">=1.3"),
    Instrumentation("redis", ("redis",), f"{_BASE}.redis:patch", "redis", ">=4.5"),
)
