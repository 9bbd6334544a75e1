"""Database and Redis calls a real program makes that the instrumentation used to miss or
describe wrongly: Redis error codes, commands a WATCHing pipeline runs at once, psycopg2's
COPY calls."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import (
    PG_DSN,
    SECRET_VALUE,
    Recorded,
    all_attribute_text,
    recorded,
    tag,
)

__all__ = ["recorded"]

DB = 3
REDIS = {"db.system.name": "redis", "db.namespace": str(DB), "server.address": "127.0.0.1",
         "server.port": 6379}


def _untraced():
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A client on database 3 whose test keys are removed afterwards."""
    made = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    yield made
    with _untraced():
        keys = made.keys(f"{tag()}:hunt:*")
        if keys:
            made.delete(*keys)
    made.close()


# ----- Redis: db.response.status_code --------------------------------------------------------


@pytest.mark.service("redis")
def test_redis_error_prefix_is_the_response_status_code(recorded: Recorded, client):
    """A command the server refuses records the Redis error prefix (WRONGTYPE, ERR) as
    db.response.status_code, as the Redis conventions ask; never the message's values."""
    key = f"{tag()}:hunt:string"
    client.set(key, "plain")
    with pytest.raises(redis.ResponseError) as wrong_type:
        client.hset(key, "field", SECRET_VALUE)
    assert str(wrong_type.value).startswith("WRONGTYPE")
    with pytest.raises(redis.ResponseError):
        client.execute_command("NOSUCHCOMMAND", SECRET_VALUE)
    hset = recorded.span("HSET")
    assert hset.status.status_code is StatusCode.ERROR
    assert hset.attributes["db.response.status_code"] == "WRONGTYPE"
    assert recorded.span("NOSUCHCOMMAND").attributes["db.response.status_code"] == "ERR"
    codes = {p.attributes.get("db.response.status_code") for p in recorded.points(
        **{"db.system.name": "redis"}) if "error.type" in p.attributes}
    assert codes == {"WRONGTYPE", "ERR"}
    assert SECRET_VALUE not in all_attribute_text(recorded)


@pytest.mark.service("redis")
def test_redis_pipeline_error_keeps_the_failing_commands_prefix(recorded: Recorded, client):
    """A pipeline whose command fails records that command's prefix, although redis-py
    rewrites the message to quote the command and its arguments."""
    key = f"{tag()}:hunt:piped"
    client.set(key, "plain")
    with pytest.raises(redis.ResponseError) as caught, client.pipeline() as pipe:
        pipe.get(key).hset(key, "field", SECRET_VALUE)
        pipe.execute()
    assert SECRET_VALUE in str(caught.value)  # why the message itself is never exported
    span = recorded.span("MULTI")
    assert span.attributes["db.response.status_code"] == "WRONGTYPE"
    assert SECRET_VALUE not in all_attribute_text(recorded)


@pytest.mark.service("redis")
def test_redis_connection_error_has_no_status_code(recorded: Recorded):
    """A refused connection is an error span with error.type and no status code: no
    response was received."""
    unreachable = redis.Redis(host="127.0.0.1", port=1, db=DB, retry_on_error=[],
                              socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError):
        unreachable.get("x")
    span = recorded.span("GET")
    assert span.attributes["error.type"] == "redis.exceptions.ConnectionError"
    assert "db.response.status_code" not in span.attributes


# ----- Redis: WATCH and the commands run while watching -----------------------------------


@pytest.mark.service("redis")
def test_watched_transaction_traces_every_round_trip(recorded: Recorded, client):
    """client.transaction(): WATCH and the GET run while watching are round trips of their
    own and get a span each, before the MULTI span; each exactly once."""
    key = f"{tag()}:hunt:counter"
    client.set(key, 1)
    recorded.exporter.clear()

    def bump(pipe: redis.client.Pipeline) -> None:
        current = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, current + 1)

    assert client.transaction(bump, key) == [True]
    assert int(client.get(key)) == 2
    names = [s.name for s in recorded.spans("redis")]
    assert names == ["WATCH", "GET", "MULTI", "GET"]
    watch = recorded.spans("redis")[0]
    assert watch.kind is SpanKind.CLIENT
    assert dict(watch.attributes) == {**REDIS, "db.operation.name": "WATCH",
                                      "db.query.text": "WATCH ?"}


@pytest.mark.service("redis")
def test_async_watched_pipeline_traces_every_round_trip(recorded: Recorded):
    """The asyncio pipeline's WATCH and watched GET get a span each, under the caller's
    span."""
    key = f"{tag()}:hunt:async-counter"
    tracer = recorded.tracer_provider.get_tracer("hunt")

    async def main() -> list[object]:
        client = redis.asyncio.Redis(host="127.0.0.1", port=6379, db=DB)
        try:
            await client.set(key, 5)
            with tracer.start_as_current_span("work"):
                async with client.pipeline() as pipe:
                    await pipe.watch(key)
                    current = int(await pipe.get(key))
                    pipe.multi()
                    pipe.set(key, current + 1)
                    result = await pipe.execute()
            return [result, int(await client.get(key))]
        finally:
            with _untraced():
                await client.delete(key)
            await client.aclose()

    assert asyncio.run(main()) == [[True], 6]
    work = recorded.span("work")
    inside = [s for s in recorded.spans("redis")
              if s.parent is not None and s.parent.span_id == work.context.span_id]
    assert [s.name for s in inside] == ["WATCH", "GET", "MULTI"]


# ----- psycopg2 COPY ----------------------------------------------------------------------


@pytest.mark.service("postgres")
def test_psycopg2_copy_calls_are_client_spans(recorded: Recorded):
    """copy_expert, copy_from and copy_to each send one COPY statement: one span each,
    named after the table, with the rows' values nowhere in the telemetry."""
    import psycopg2

    table = f"hunt_copy_{tag()}"
    conn = psycopg2.connect(PG_DSN)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TEMP TABLE {table} (id int, name text)")
        recorded.exporter.clear()
        cur.copy_expert(f"COPY {table} (id, name) FROM STDIN",
                        io.StringIO(f"1\t{SECRET_VALUE}\n"))
        cur.copy_from(io.StringIO(f"2\t{SECRET_VALUE}\n"), table, columns=("id", "name"))
        out = io.StringIO()
        cur.copy_to(out, table)
        assert out.getvalue().count(SECRET_VALUE) == 2
        assert cur.rowcount == 2
    finally:
        conn.close()
    spans = recorded.spans("postgresql")
    assert [s.name for s in spans] == [f"COPY {table}"] * 3
    assert spans[0].attributes["db.query.text"] == f"COPY {table} (id, name) FROM STDIN"
    for span in spans:
        assert span.attributes["db.operation.name"] == "COPY"
        assert span.attributes["db.collection.name"] == table
    assert len(recorded.points(**{"db.operation.name": "COPY", "db.collection.name": table})) == 1
    assert SECRET_VALUE not in all_attribute_text(recorded)


@pytest.mark.service("postgres")
def test_psycopg2_failed_copy_is_an_error_span(recorded: Recorded):
    """A COPY the server refuses is an ERROR span with the SQLSTATE, and the program gets
    psycopg2's own exception."""
    import psycopg2
    import psycopg2.errors

    conn = psycopg2.connect(PG_DSN)
    try:
        with pytest.raises(psycopg2.errors.UndefinedTable):
            conn.cursor().copy_from(io.StringIO("1\n"), f"hunt_missing_{tag()}")
    finally:
        conn.close()
    span = recorded.span(f"COPY hunt_missing_{tag()}")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["db.response.status_code"] == "42P01"


# ----- psycopg 3 cursor.copy() --------------------------------------------------------------


@pytest.mark.service("postgres")
def test_psycopg_copy_block_is_one_span_under_the_caller(recorded: Recorded):
    """cursor.copy() is one CLIENT span from entering its block to leaving it, a child of
    the caller's span; the rows written are nowhere in the telemetry and the driver's Copy
    object and row count are unchanged."""
    import psycopg

    table = f"hunt_pcopy_{tag()}"
    tracer = recorded.tracer_provider.get_tracer("hunt")
    with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {table} (id int, name text)")
        recorded.exporter.clear()
        with tracer.start_as_current_span("load"):
            with cur.copy(f"COPY {table} (id, name) FROM STDIN") as copy:
                assert type(copy).__name__ == "Copy"
                copy.write_row((1, SECRET_VALUE))
                copy.write_row((2, SECRET_VALUE))
                inside = [s.name for s in recorded.spans("postgresql")]
            assert cur.rowcount == 2
            with cur.copy(f"COPY {table} TO STDOUT") as copy:
                assert len(list(copy.rows())) == 2
    assert inside == []  # the span is still open while rows are written
    load = recorded.span("load")
    spans = recorded.spans("postgresql")
    assert [s.name for s in spans] == [f"COPY {table}"] * 2
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == load.context.span_id
        assert span.attributes["db.collection.name"] == table
    assert spans[0].attributes["db.query.text"] == f"COPY {table} (id, name) FROM STDIN"
    assert len(recorded.points(**{"db.operation.name": "COPY", "db.collection.name": table})) == 1
    assert SECRET_VALUE not in all_attribute_text(recorded)


@pytest.mark.service("postgres")
def test_psycopg_copy_block_that_raises_is_an_error_span(recorded: Recorded):
    """A copy block the program leaves with an exception ends the span as an error with
    that exception's type, and the program gets its own exception back."""
    import psycopg

    class Abort(Exception):
        pass

    table = f"hunt_pcopy_err_{tag()}"
    with psycopg.connect(PG_DSN) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE {table} (id int)")
        with pytest.raises(Abort), cur.copy(f"COPY {table} FROM STDIN") as copy:
            copy.write_row((1,))
            raise Abort()
        conn.rollback()
    span = recorded.span(f"COPY {table}")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].endswith("Abort")


@pytest.mark.service("postgres")
def test_async_psycopg_copy_block_is_one_span(recorded: Recorded):
    """The asyncio cursor's copy() is traced the same way."""
    import psycopg

    table = f"hunt_acopy_{tag()}"

    async def main() -> int:
        conn = await psycopg.AsyncConnection.connect(PG_DSN)
        async with conn, conn.cursor() as cur:
            await cur.execute(f"CREATE TEMP TABLE {table} (id int, name text)")
            async with cur.copy(f"COPY {table} FROM STDIN") as copy:
                await copy.write_row((1, SECRET_VALUE))
            return cur.rowcount

    assert asyncio.run(main()) == 1
    span = recorded.span(f"COPY {table}")
    assert span.attributes["db.operation.name"] == "COPY"
    assert SECRET_VALUE not in all_attribute_text(recorded)
