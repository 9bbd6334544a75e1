"""Quieting kombu's Redis transport for the Celery instrumentation (see ``celery``)."""

from __future__ import annotations

from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, set_value

from .. import _diagnostics
from ..infrastructure.current_context import attach, get_current, reset
from ._method_wrappers import wrap_once

# The Redis transport's own bookkeeping: acks and rejects (a MULTI pipeline each), putting
# back unacknowledged messages (a mutex SET, ZRANGE, EVALSHA), queue bindings, sizes,
# purges, the connection check when a channel opens (PING). A worker does it outside any
# task, so the redis instrumentation made each a trace of its own: noise around every task.
# Publishing (``_put``) stays traced: it happens inside the send span, as its child.
_REDIS_BOOKKEEPING = {
    "QoS": ("append", "restore_unacked", "ack", "reject", "restore_visible",
            "restore_by_tag"),
    "Channel": ("__init__", "_do_restore_message", "_restore", "_restore_at_beginning",
                "_get", "_size", "_new_queue", "_queue_bind", "_delete", "_has_queue",
                "get_table", "_purge", "sweep_bindings", "maybe_refresh_binding_expiry",
                "_refresh_bindings"),
}


def quiet_redis_transport(module: Any) -> None:
    """Run the Redis transport's bookkeeping with instrumentation suppressed (a hook: never
    raises into the program's import)."""
    try:
        for class_name, names in _REDIS_BOOKKEEPING.items():
            owner = getattr(module, class_name)
            for name in names:
                if name in vars(owner):
                    wrap_once(owner, name, _suppressed_call)
    except Exception as exc:
        _diagnostics.warn(f"could not quiet kombu's redis transport ({type(exc).__name__}: "
                          f"{exc}); its bookkeeping shows as redis spans")


def _suppressed_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, get_current()))
    try:
        return wrapped(*args, **kwargs)
    finally:
        reset(token)
