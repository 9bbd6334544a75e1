"""A program that knows nothing of telemetryflow: inside a span of its own it fetches a URL
that redirects, with urllib.request (imported first thing, as such scripts do), and prints
the final status code.

Run by hand: ``telemetryflow-run python tests/apps/http_urllib_redirect_app.py
'http://127.0.0.1:8000/redirect?to=http://127.0.0.1:8000/'``.
"""

import sys
import urllib.request

from opentelemetry import trace

tracer = trace.get_tracer("http_urllib_redirect_app")
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

with tracer.start_as_current_span("follow"), opener.open(sys.argv[1], timeout=10) as response:
    response.read()

print(response.status)
