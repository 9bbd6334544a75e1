"""A program that knows nothing of telemetryflow: inside a span of its own it fetches a URL
that answers 401 with a digest challenge, with urllib.request (imported first thing, as such
scripts do) and an HTTPDigestAuthHandler, and prints the final status code.

Run by hand: ``telemetryflow-run python tests/apps/http_urllib_auth_app.py
http://127.0.0.1:8000/auth/digest`` (against ``python -m tests.instrumentation.http_fixtures``).
"""

import sys
import urllib.request

from opentelemetry import trace

tracer = trace.get_tracer("http_urllib_auth_app")
passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
passwords.add_password(None, sys.argv[1], "alice", "s3cret-pw")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                     urllib.request.HTTPDigestAuthHandler(passwords))

with tracer.start_as_current_span("login"), opener.open(sys.argv[1], timeout=10) as response:
    response.read()

print(response.status)
