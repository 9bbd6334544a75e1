"""A plain WSGI application (no framework of ours) served by waitress, for the server-patch
tests; run it by hand with ``telemetryflow-run python tests/apps/server_waitress.py``
(``waitress.serve`` from the program, ``PORT`` or 8080) or ``telemetryflow-run waitress-serve
--listen 127.0.0.1:8080 tests.apps.server_waitress:app``, and open
http://127.0.0.1:8080/ok.

Every response says which span was current while the application ran (``X-Trace-Context``:
``{trace id}-{span id}``), so a test can tell that it ran inside the request's server span.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from opentelemetry import trace


def _current() -> str:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}-{context.span_id:016x}"


def _stream(context: str) -> Iterator[bytes]:
    for n in range(3):
        # (each chunk made with the request's span current, as the first one)
        yield f"chunk {n} {context == _current()}\n".encode()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain"), ("X-Trace-Context", _current())]
    if path == "/fail":
        start_response("500 Internal Server Error", headers)
        return [b"failed"]
    if path == "/boom":
        raise LookupError("no such thing")  # waitress answers a 500 of its own
    if path == "/stream":
        start_response("200 OK", headers)
        return _stream(_current())
    if path == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    body = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()
    start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    import waitress

    waitress.serve(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8080")),
                   threads=2)
