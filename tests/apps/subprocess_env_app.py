"""Runs a child with subprocess.run(env=...) inside a span and proves the caller's dict and
os.environ were left alone while the child got the trace context."""

import json
import os
import subprocess
import sys

from opentelemetry import trace

child_code = (
    "import os, json; print(json.dumps({k: os.environ.get(k) for k in ('TRACEPARENT', 'MY_VAR')}))"
)
with trace.get_tracer("subprocess_env_app").start_as_current_span("spawn") as span:
    my_env = {**os.environ, "MY_VAR": "kept"}
    before = dict(my_env)
    out = subprocess.run(
        [sys.executable, "-c", child_code], env=my_env, capture_output=True, text=True, check=True
    ).stdout
    child = json.loads(out)
    print(
        json.dumps(
            {
                "child": child,
                "span_id": format(span.get_span_context().span_id, "016x"),
                "trace_id": format(span.get_span_context().trace_id, "032x"),
                "caller_dict_unchanged": my_env == before,
                "os_environ_has_traceparent": "TRACEPARENT" in os.environ,
            }
        )
    )
