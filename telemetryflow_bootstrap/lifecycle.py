"""Process events, in one place: interpreter exit and SIGTERM.

Every path ends in the same bounded shutdown (``TELEMETRYFLOW_SHUTDOWN_TIMEOUT``). SIGTERM is
only handled when the program left it at the default: we export what is buffered, then die of
SIGTERM exactly as the program would have (same exit status). A handler the program installs
later simply replaces ours — its exit then runs the atexit path. Fork safety lives with the
things that need it (batch queues, lazy exporters), registered through ``os.register_at_fork``.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Any

from . import _diagnostics

_installed_for: Any = None
_shutdown_lock = threading.Lock()


def install(client: Any, timeout: float) -> None:
    global _installed_for
    if _installed_for is client:
        return
    _installed_for = client
    atexit.register(_shutdown, client, timeout, "exit")
    _install_sigterm(client, timeout)


def _shutdown(client: Any, timeout: float, why: str) -> None:
    with _shutdown_lock:
        if not client.is_initialized:
            return
        try:
            ok = client.shutdown(timeout)
        except Exception as exc:
            _diagnostics.warn(f"shutdown at {why} failed: {exc!r}")
            return
        if not ok:
            status = client.get_status()
            _diagnostics.warn(
                f"not all telemetry was exported at {why} within {timeout:g}s "
                f"(TELEMETRYFLOW_SHUTDOWN_TIMEOUT); dropped: spans={status.get('spans_dropped')} "
                f"logs={status.get('logs_dropped')} "
                f"metric points={status.get('metric_points_dropped')}"
            )


def _install_sigterm(client: Any, timeout: float) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # somebody (an embedding, a parent's disposition) owns it
        signal.signal(signal.SIGTERM, _on_sigterm_factory(client, timeout))
    except (ValueError, OSError, AttributeError):
        pass


def _on_sigterm_factory(client: Any, timeout: float) -> Any:
    def on_sigterm(signum: int, frame: Any) -> None:
        _shutdown(client, timeout, "SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    return on_sigterm
