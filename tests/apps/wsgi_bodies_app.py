"""A plain WSGI application whose bodies servers treat specially (``gunicorn
tests.apps.wsgi_bodies_app:app``): ``/one`` a one-item list of unknown length (a server may
send it with a ``Content-Length``), ``/file`` a 20 KiB file in the server's
``wsgi.file_wrapper`` with no length given (a server may send it its own way: sendfile),
``/wrapper`` says which class the server's file wrapper is."""

from __future__ import annotations

import tempfile

PAYLOAD = bytes(range(256)) * 80  # 20480 bytes: more than one 8 KiB block


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/file":
        file = tempfile.TemporaryFile()  # noqa: SIM115 (the server closes it)
        file.write(PAYLOAD)
        file.seek(0)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](file)
    if path == "/wrapper":
        wrapper = environ["wsgi.file_wrapper"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{wrapper.__module__}.{wrapper.__qualname__}".encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one"]
