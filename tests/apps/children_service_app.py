"""Starts the same child three ways (``subprocess`` with the inherited environment, with a
copy of ``os.environ``, and ``os.system``); prints the launcher's private variables it sees
in its own ``os.environ`` (for tests/e2e/test_launcher_telemetry.py)."""

import os
import subprocess
import sys

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children_service_child.py")
private = sorted(k for k in os.environ if k.startswith(("_TELEMETRYFLOW_DERIVED", "UWSGI_")))
print("parent os.environ:", ",".join(private) or "-", flush=True)
subprocess.run([sys.executable, CHILD, "inherited"], check=True)
subprocess.run([sys.executable, CHILD, "copied"], env=dict(os.environ), check=True)
if os.system(f"{sys.executable} {CHILD} system") != 0:
    sys.exit("os.system child failed")
