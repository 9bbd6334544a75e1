"""Makes a span and a log record, then replaces itself with ``os.execv`` (or ``execl``:
argv[1]); the new program makes one span and exits."""

import logging
import os
import sys

from opentelemetry import trace

tracer = trace.get_tracer("exec_self")
if len(sys.argv) > 2:
    with tracer.start_as_current_span("after-exec"):
        pass
    sys.exit(0)
with tracer.start_as_current_span("before-exec"):
    pass
logging.getLogger("exec_self").warning("logged before exec")
if sys.argv[1] == "execl":
    os.execl(sys.executable, sys.executable, __file__, "execl", "again")
os.execv(sys.executable, [sys.executable, __file__, "execv", "again"])
