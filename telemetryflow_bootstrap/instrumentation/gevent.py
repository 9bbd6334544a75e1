"""gevent: once the program monkey-patches ``threading`` (``monkey.patch_all()`` as its
first statement, gunicorn's gevent worker after its fork), the SDK's metric reader ticks
on a green thread instead of the real one our hook started before the patching.

Why: a real thread that goes on running after the patching meets gevent's primitives in
everything it looks up, and one that imports holds a gevent import lock: the program's
main thread importing the same module then fails with ``LoopExit`` (measured: a gunicorn
gevent worker exporting metrics over OTLP/HTTP failed to boot, ``import requests``). See
``infrastructure.native_threads`` for the rest, and ``metric_reader.move_to_green_thread``.

Produces no telemetry of its own. Our span and log export workers start at their first
use, after the patching in such programs, and so are green threads already; exports then
run on the event loop (OTLP/HTTP cooperatively, OTLP/gRPC blocking the loop for the
duration of each export call). Armed on ``gevent.monkey``;
``TELEMETRYFLOW_DISABLED_INSTRUMENTATIONS=gevent`` turns it off.
"""

from __future__ import annotations

from typing import Any

from .. import _diagnostics

_SUBSCRIBED = "_telemetryflow_subscribed"


def patch(module: Any, context: Any) -> None:
    """Follow gevent's patch events (once per process)."""
    from gevent import events

    reader = getattr(context.handler, "_metric_reader", None)
    if reader is None or getattr(events, _SUBSCRIBED, False):
        return
    setattr(events, _SUBSCRIBED, True)

    def on_patched(event: Any) -> None:
        if isinstance(event, events.GeventDidPatchAllEvent) or (
                isinstance(event, events.GeventDidPatchModuleEvent)
                and getattr(event, "module_name", None) == "threading"):
            _move(reader)

    events.subscribers.append(on_patched)
    if module.is_module_patched("threading"):  # (patched before it imported us)
        _move(reader)


def _move(reader: Any) -> None:
    try:
        reader.move_to_green_thread()
    except Exception as exc:
        _diagnostics.debug(f"moving the metric reader to a green thread failed: {exc!r}")
