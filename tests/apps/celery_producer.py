"""Sends a few tasks of tests/apps/celery_tasks.py (queue ``TF_CELERY_QUEUE``) and waits for
their results: one that makes a span of its own, one that calls back an HTTP server this
script serves meanwhile, one that fails, one that retries once. Prints each outcome; exits
1 when a result does not arrive within 60 seconds (no worker running)."""

from __future__ import annotations

import http.server
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from tests.apps.celery_tasks import add, fail, fetch, flaky


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/hello"

sent = {"add": add.delay(2, 3), "fetch": fetch.delay(url),
        "fail": fail.delay("s3cret-arg-31"), "flaky": flaky.delay()}
ok = True
for name, result in sent.items():
    try:
        value = result.get(timeout=60, propagate=False, disable_sync_subtasks=False)
    except Exception as exc:  # (a timeout: nobody ran it)
        value, ok = f"no result ({type(exc).__name__})", False
    print(name, result.id, result.state, type(value).__name__ if name == "fail" else value,
          flush=True)
server.shutdown()
sys.exit(0 if ok else 1)
