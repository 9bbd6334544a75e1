"""redis-py (sync, asyncio, pipelines) under the instrumentation, against local Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from opentelemetry.trace import SpanKind, StatusCode

from .data_fixtures import PASSWORD, SECRET_VALUE, Recorded, all_attribute_text, recorded, tag

__all__ = ["recorded"]
pytestmark = pytest.mark.service("redis")

DB = 3
SERVER = {"db.system.name": "redis", "db.namespace": str(DB), "server.address": "127.0.0.1",
          "server.port": 6379}


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A client on database 3 whose test keys are removed afterwards."""
    made = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    yield made
    with _untraced():
        keys = made.keys(f"{tag()}:*")
        if keys:
            made.delete(*keys)
    made.close()


@pytest.fixture
def acl_user() -> Iterator[str]:
    """A real Redis ACL user whose password is PASSWORD, deleted afterwards."""
    user = f"tf_{tag()}"
    admin = redis.Redis(host="127.0.0.1", port=6379)
    with _untraced():
        admin.execute_command("ACL", "SETUSER", user, "on", f">{PASSWORD}", "~*", "+@all")
    try:
        yield user
    finally:
        with _untraced():
            admin.execute_command("ACL", "DELUSER", user)
        admin.close()


def _untraced():
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def test_commands_are_client_spans_without_arguments(recorded: Recorded, client):
    """SET and GET are CLIENT spans named after the command, with the db index, server and
    the command text with arguments shown as ``?``; return values are untouched."""
    key = f"{tag()}:greeting"
    assert client.set(key, SECRET_VALUE) is True
    assert client.get(key) == SECRET_VALUE.encode()
    set_span, get_span = recorded.spans("redis")
    assert set_span.name == "SET" and set_span.kind is SpanKind.CLIENT
    assert dict(set_span.attributes) == {**SERVER, "db.operation.name": "SET",
                                         "db.query.text": "SET ? ?"}
    assert get_span.attributes["db.query.text"] == "GET ?"
    assert SECRET_VALUE not in all_attribute_text(recorded)
    assert key not in all_attribute_text(recorded)


def test_capture_args_shows_arguments_but_never_credentials(recorded: Recorded, client,
                                                            acl_user):
    """With argument capture on, db.query.text holds the real arguments (long ones cut),
    except for credential-bearing commands such as AUTH."""
    recorded.telemetry().capture_args = True
    key = f"{tag()}:captured"
    client.set(key, "x" * 500)
    other = redis.Redis(host="127.0.0.1", port=6379, db=DB)
    assert other.execute_command("AUTH", acl_user, PASSWORD) is True
    other.close()
    set_span, auth_span = recorded.spans("redis")
    assert set_span.attributes["db.query.text"] == f"SET {key} {'x' * 100}"
    assert auth_span.attributes["db.query.text"] == "AUTH ? ?"
    assert PASSWORD not in all_attribute_text(recorded)


def test_password_in_the_url_never_appears(recorded: Recorded, acl_user):
    """A client built from a ``redis://user:password@`` URL (a real ACL user) exports
    spans that show the server but never the password or the user's values."""
    authed = redis.Redis.from_url(f"redis://{acl_user}:{PASSWORD}@127.0.0.1:6379/{DB}")
    key = f"{tag()}:url"
    authed.set(key, SECRET_VALUE)
    authed.delete(key)
    authed.close()
    assert [s.name for s in recorded.spans("redis")] == ["SET", "DEL"]
    assert recorded.spans("redis")[0].attributes["server.address"] == "127.0.0.1"
    text = all_attribute_text(recorded)
    assert PASSWORD not in text and SECRET_VALUE not in text


def test_pipelines_are_one_span_with_the_batch_size(recorded: Recorded, client):
    """A transactional pipeline is one MULTI span, a plain one one PIPELINE span, each
    with the command count and one ``?``-masked line per command; an empty pipeline
    makes no span; results are what redis returns."""
    key = f"{tag()}:counter"
    pipe = client.pipeline()
    assert pipe.set(key, 1).incr(key).get(key).execute() == [True, 2, b"2"]
    with client.pipeline(transaction=False) as plain:
        plain.get(key).incrby(key, 5)
        assert plain.execute() == [b"2", 7]
    assert client.pipeline().execute() == []
    multi, pipeline = recorded.spans("redis")
    assert multi.name == "MULTI"
    assert dict(multi.attributes) == {
        **SERVER, "db.operation.name": "MULTI", "db.operation.batch.size": 3,
        "db.query.text": "SET ? ?\nINCRBY ? ?\nGET ?"}
    assert pipeline.name == "PIPELINE"
    assert pipeline.attributes["db.operation.batch.size"] == 2


def test_errors_are_error_spans_with_the_original_exception(recorded: Recorded, client):
    """A command redis rejects gives an ERROR span with error.type, and the program gets
    redis-py's own exception; a failing pipeline likewise."""
    key = f"{tag()}:string"
    client.set(key, "v")
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        client.lpush(key, "x")
    assert "WRONGTYPE" in str(caught.value) and caught.value.__context__ is None
    with pytest.raises(redis.exceptions.ResponseError):
        client.pipeline().lpush(key, "x").execute()
    _, failed, failed_pipe = recorded.spans("redis")
    for span in (failed, failed_pipe):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "redis.exceptions.ResponseError"
        assert span.events[0].name == "exception"


def test_asyncio_client_and_pipeline(recorded: Recorded):
    """redis.asyncio commands and pipelines are traced like the sync ones."""
    key = f"{tag()}:async"

    async def run() -> list[object]:
        client = redis.asyncio.Redis(host="127.0.0.1", port=6379, db=DB)
        try:
            await client.set(key, "a")
            value = await client.get(key)
            async with client.pipeline() as pipe:
                results = await pipe.incr(f"{key}:n").get(key).execute()
            with pytest.raises(redis.exceptions.ResponseError):
                await client.lpush(key, "x")
            await client.delete(key, f"{key}:n")
            return [value, results]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [b"a", [1, b"a"]]
    names = [s.name for s in recorded.spans("redis")]
    assert names == ["SET", "GET", "MULTI", "LPUSH", "DEL"]
    multi = recorded.spans("redis")[2]
    assert multi.attributes["db.operation.batch.size"] == 2
    assert multi.attributes["db.query.text"] == "INCRBY ? ?\nGET ?"
    assert recorded.spans("redis")[3].status.status_code is StatusCode.ERROR
    assert dict(recorded.spans("redis")[0].attributes) == {
        **SERVER, "db.operation.name": "SET", "db.query.text": "SET ? ?"}


def test_duration_metric_points(recorded: Recorded, client):
    """Commands record duration points keyed by system, command, db index and server."""
    client.echo("hello")
    points = recorded.points(**{"db.system.name": "redis", "db.operation.name": "ECHO"})
    assert [dict(p.attributes) for p in points] == [{**SERVER, "db.operation.name": "ECHO"}]
    assert points[0].count >= 1


def test_short_lived_clients_each_report_their_own_database(recorded: Recorded):
    """Clients made and dropped one after another (their pools' ids get reused): every span
    names the database of the client that sent it, and the per-pool cache stays bounded."""
    import gc

    for i in range(300):
        made = redis.Redis(host="127.0.0.1", port=6379, db=i % 4)
        made.ping()
        made.close()
        del made
        gc.collect(0)
    spans = [s for s in recorded.spans() if s.name == "PING"]
    assert [s.attributes["db.namespace"] for s in spans] == [str(i % 4) for i in range(300)]
