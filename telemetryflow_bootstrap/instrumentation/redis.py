"""redis-py (sync and asyncio): a CLIENT span and a ``db.client.operation.duration`` point
per command (``Redis.execute_command``) and one per pipeline/transaction
(``Pipeline.execute``), named after the command (``GET``) or ``PIPELINE``/``MULTI``.

Attributes: ``db.system.name=redis``, ``db.operation.name`` (the command, or
``PIPELINE``/``MULTI``), ``db.query.text`` (the command with every argument shown as ``?``;
a pipeline's commands one per line), ``db.namespace`` (the database index),
``server.address``/``server.port`` (or the Unix socket path), ``db.operation.batch.size``
(pipelines of 2+ commands).

Environment: ``TELEMETRYFLOW_REDIS_CAPTURE_ARGS`` (``config.redis_capture_args``): show the
real arguments in ``db.query.text`` (each cut to 100 characters), except for commands that
carry credentials (AUTH, HELLO, MIGRATE, CONFIG, ACL), whose arguments stay ``?``. Only
host, port, path and db are read from the connection settings, so a password in a
``redis://`` URL never reaches telemetry.

A pipeline's WATCH and the commands it runs at once while watching (before ``multi()``)
are round trips of their own: a span each, like a client's commands.

On failure: ``error.type``, ``db.response.status_code`` (the error reply's prefix:
``WRONGTYPE``, ``ERR``, ``NOSCRIPT``...; none when no reply came, e.g. a refused
connection), an exception event and ERROR status without the message (redis-py's message of
a failed pipeline command quotes its arguments).

Not traced: cluster clients and pub/sub.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import Any

from . import dbapi
from ._http_common import suppressed

_SECRET_BEARING = frozenset({"AUTH", "HELLO", "MIGRATE", "CONFIG", "ACL"})
_MAX_ARG = 100
_MAX_PIPELINE_LINES = 100
_MAX_COMMANDS = 512
_MAX_POOLS = 256


class _Endpoint:
    """One connection pool's attributes and the prepared commands seen on it."""

    __slots__ = ("commands", "target")

    def __init__(self, target: dbapi.Target) -> None:
        self.target = target
        self.commands: dict[Any, dbapi.Prepared] = {}


class _Tracing:
    """Everything the patched methods share, fetched once at patch time."""

    def __init__(self, context: Any) -> None:
        self.telemetry = dbapi.telemetry_for(context)
        # id(pool) → (weak reference to the pool, its endpoint): a dict lookup per command,
        # where a WeakKeyDictionary makes a new weak reference for every lookup. A pool's id
        # can be reused once it is gone: the dead reference tells.
        self._endpoints: dict[int, tuple[Any, _Endpoint]] = {}

    def endpoint(self, client: Any) -> _Endpoint:
        pool = client.connection_pool
        known = self._endpoints.get(id(pool))
        if known is not None and known[0]() is pool:
            return known[1]
        found = self._make(pool)
        try:
            reference = weakref.ref(pool)
        except TypeError:  # not weak-referenceable: do not cache
            return found
        if len(self._endpoints) >= _MAX_POOLS:
            self._endpoints = {k: v for k, v in self._endpoints.items() if v[0]() is not None}
            if len(self._endpoints) >= _MAX_POOLS:
                self._endpoints.clear()
        self._endpoints[id(pool)] = (reference, found)
        return found

    def _make(self, pool: Any) -> _Endpoint:
        settings = getattr(pool, "connection_kwargs", None) or {}
        path = dbapi.text_or_none(settings.get("path"))
        address = path or dbapi.text_or_none(settings.get("host", "localhost"))
        port = None if path else settings.get("port", 6379)
        target = dbapi.Target(self.telemetry, "redis",
                              namespace=str(settings.get("db", 0) or 0),
                              address=address, port=port)
        return _Endpoint(target)

    def command(self, client: Any, args: Sequence[Any]) -> dbapi.Prepared:
        endpoint = self.endpoint(client)
        if self.telemetry.capture_args:
            name = _name(args[0])
            return endpoint.target.operation(name, None, _text(name, args, True))
        key = (args[0], len(args))
        try:
            return endpoint.commands[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable command name: build, do not cache
            key = None
        name = _name(args[0])
        prepared = endpoint.target.operation(name, None, _text(name, args, False))
        if key is not None:
            if len(endpoint.commands) >= _MAX_COMMANDS:
                endpoint.commands.clear()
            endpoint.commands[key] = prepared
        return prepared

    def pipeline(self, pipe: Any, stack: Sequence[Any]) -> tuple[dbapi.Prepared, Any]:
        name = "MULTI" if pipe.transaction or getattr(pipe, "explicit_transaction", False) \
            else "PIPELINE"
        capture = self.telemetry.capture_args
        lines = []
        for entry in stack[:_MAX_PIPELINE_LINES]:
            args = _command_args(entry)
            if args:
                lines.append(_text(_name(args[0]), args, capture))
        prepared = self.endpoint(pipe).target.operation(name, None, "\n".join(lines))
        extra = {dbapi.BATCH_SIZE: len(stack)} if len(stack) > 1 else None
        return prepared, extra


def _command_args(entry: Any) -> Sequence[Any]:
    # sync pipelines queue (args, options); asyncio ones queue (args, options) or
    # PipelineCommand objects depending on the version.
    if isinstance(entry, tuple) and entry and isinstance(entry[0], (tuple, list)):
        return entry[0]
    return getattr(entry, "args", ()) or ()


def _name(command: Any) -> str:
    if isinstance(command, bytes):
        command = command.decode("utf-8", "replace")
    return str(command).upper()


def _shown(arg: Any) -> str:
    if isinstance(arg, (bytes, bytearray, memoryview)):
        arg = bytes(arg[:_MAX_ARG]).decode("utf-8", "replace")
    text = str(arg)
    return text if len(text) <= _MAX_ARG else text[:_MAX_ARG]


def _text(name: str, args: Sequence[Any], capture: bool) -> str:
    # Multi-word commands ("CLIENT SETNAME") arrive as one first argument; the name we show
    # is the whole of it.
    rest = args[1:]
    if not rest:
        return name
    if capture and name.split(" ", 1)[0] not in _SECRET_BEARING:
        return f"{name} {' '.join(_shown(a) for a in rest)}"
    return f"{name} {' '.join('?' * len(rest))}"


def patch(module: Any, context: Any) -> None:
    import redis.client

    tracing = _Tracing(context)
    _patch_client(redis.client, tracing, is_async=False)
    try:
        import redis.asyncio.client
    except ImportError:  # a redis-py without asyncio support
        return
    _patch_client(redis.asyncio.client, tracing, is_async=True)


def _patch_client(client_module: Any, tracing: _Tracing, is_async: bool) -> None:
    """``redis.client`` or ``redis.asyncio.client``: commands, WATCH-time commands and
    pipelines (once)."""
    if dbapi.is_patched(client_module.Redis.execute_command):
        return
    _patch_command(client_module.Redis, "execute_command", tracing, is_async=is_async)
    _patch_command(client_module.Pipeline, "immediate_execute_command", tracing,
                   is_async=is_async)
    _patch_pipeline(client_module.Pipeline, tracing, is_async=is_async)


def _patch_command(owner: Any, name: str, tracing: _Tracing, is_async: bool) -> None:
    """One span per command sent at once: ``Redis.execute_command``, and a pipeline's
    ``immediate_execute_command`` (WATCH, and the commands a WATCHing pipeline runs before
    MULTI), which talks to its connection directly, never through the former."""
    original = getattr(owner, name, None)
    if original is None or dbapi.is_patched(original):
        return
    telemetry = tracing.telemetry

    if is_async:
        run_async = dbapi.run_async

        @functools.wraps(original)
        async def execute_async(self: Any, *args: Any, **options: Any) -> Any:
            if suppressed() or not args:
                return await original(self, *args, **options)
            try:
                prepared = tracing.command(self, args)
            except Exception:
                return await original(self, *args, **options)
            return await run_async(telemetry, prepared, original, (self, *args), options)

        setattr(owner, name, dbapi.mark_patched(execute_async))
        return

    run = dbapi.run

    @functools.wraps(original)
    def execute(self: Any, *args: Any, **options: Any) -> Any:
        if suppressed() or not args:
            return original(self, *args, **options)
        try:
            prepared = tracing.command(self, args)
        except Exception:
            return original(self, *args, **options)
        return run(telemetry, prepared, original, (self, *args), options)

    setattr(owner, name, dbapi.mark_patched(execute))


def _patch_pipeline(pipeline_class: Any, tracing: _Tracing, is_async: bool) -> None:
    telemetry = tracing.telemetry
    original = pipeline_class.execute

    def traced(self: Any) -> tuple[dbapi.Prepared, Any] | None:
        stack = getattr(self, "command_stack", None)
        if suppressed() or not stack:
            return None  # nothing queued: redis-py answers [] without a round trip
        try:
            return tracing.pipeline(self, stack)
        except Exception:
            return None

    if is_async:
        @functools.wraps(original)
        async def execute_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            found = traced(self)
            if found is None:
                return await original(self, *args, **kwargs)
            return await dbapi.run_async(telemetry, found[0], original, (self, *args), kwargs,
                                         found[1])

        pipeline_class.execute = dbapi.mark_patched(execute_async)
        return

    @functools.wraps(original)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = traced(self)
        if found is None:
            return original(self, *args, **kwargs)
        return dbapi.run(telemetry, found[0], original, (self, *args), kwargs, found[1])

    pipeline_class.execute = dbapi.mark_patched(execute)
