"""os.fork() directly: parent and child each make a span; the child leaves via os._exit."""

import os

from opentelemetry import trace

tracer = trace.get_tracer("fork_app")
with tracer.start_as_current_span("before-fork"):
    pass
pid = os.fork()
if pid == 0:
    with tracer.start_as_current_span("in-child") as span:
        span.set_attribute("observed.pid", os.getpid())
    os._exit(0)
with tracer.start_as_current_span("in-parent") as span:
    span.set_attribute("observed.pid", os.getpid())
os.waitpid(pid, 0)
print("forked", pid, flush=True)
