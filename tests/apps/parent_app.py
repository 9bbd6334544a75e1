"""Parent → child → grandchild Python processes; each makes one span named after its depth."""

import subprocess
import sys

from opentelemetry import trace

depth = int(sys.argv[1]) if len(sys.argv) > 1 else 0
with trace.get_tracer("parent_app").start_as_current_span(f"depth-{depth}"):
    if depth < 2:
        subprocess.run([sys.executable, __file__, str(depth + 1)], check=True)
print(f"depth {depth} done", flush=True)
