"""Registry entries for process- and thread-boundary instrumentation (context into child
processes and other threads).

``multiprocessing`` is armed on ``multiprocessing.process`` (imported by every use of the
package, the pools included); its patch arms the pools' own modules from there.
"""

from __future__ import annotations

from .registry import Instrumentation

ENTRIES: tuple[Instrumentation, ...] = (
    Instrumentation(
        name="subprocess",
        modules=("subprocess",),
        patch="telemetryflow_bootstrap.instrumentation.subprocess:patch",
    ),
    Instrumentation(
        name="multiprocessing",
        modules=("multiprocessing.process",),
        patch="telemetryflow_bootstrap.instrumentation.multiprocessing:patch",
    ),
    Instrumentation(
        name="gevent",
        modules=("gevent.monkey",),
        patch="telemetryflow_bootstrap.instrumentation.gevent:patch",
    ),
    Instrumentation(
        name="threading",
        modules=("threading",),
        patch="telemetryflow_bootstrap.instrumentation.threading:patch",
    ),
)
