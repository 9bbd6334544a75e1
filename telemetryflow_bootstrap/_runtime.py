"""Which SDK is running in this process (one at most), for ``get_client()`` and for clients
built while the launcher's SDK already runs (they share it instead of starting a second)."""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_current_client: Any = None
_shared_handler: Any = None


def current_client() -> Any:
    return _current_client


def set_current(client: Any, handler: Any) -> None:
    global _current_client, _shared_handler
    with _lock:
        _current_client = client
        _shared_handler = handler


def clear_current(client: Any) -> None:
    global _current_client, _shared_handler
    with _lock:
        if _current_client is client:
            _current_client = None
            _shared_handler = None


def shared_handler() -> Any:
    return _shared_handler
