"""A plain program that knows nothing of telemetryflow: it uses only the OpenTelemetry API.

Run by hand: ``telemetryflow-run python tests/apps/traced_app.py [exit-code]``.
"""

import sys

from opentelemetry import trace

tracer = trace.get_tracer("traced_app")

with tracer.start_as_current_span("outer-work") as outer:
    outer.set_attribute("app.step", "outer")
    with tracer.start_as_current_span("inner-work"):
        print("traced_app ran", " ".join(sys.argv[1:]))

sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0)
