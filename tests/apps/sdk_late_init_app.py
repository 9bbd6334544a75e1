"""A program embedding the SDK without touching the global OpenTelemetry providers
(``set_global=False``), in an app factory's order: the Flask app and its
``FlaskTelemetryMiddleware`` are built first, ``client.initialize()`` comes after. Then:
one request; a span used well; one ended twice, given an event after its end; an id no span
has. Settings from the environment (``TELEMETRYFLOW_*``); prints ``done``.

    TELEMETRYFLOW_SERVICE_NAME=late TELEMETRYFLOW_ENDPOINT=localhost:4317 \\
        TELEMETRYFLOW_INSECURE=true python tests/apps/sdk_late_init_app.py
"""

import flask

from telemetryflow_bootstrap import TelemetryFlowBuilder, TelemetryFlowClient
from telemetryflow_bootstrap.middleware import FlaskTelemetryMiddleware

client = TelemetryFlowClient(TelemetryFlowBuilder().with_auto_configuration().build_config(),
                             set_global=False)


def create_app() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        return f"order {order_id}"

    FlaskTelemetryMiddleware(app, client)
    return app


app = create_app()
client.initialize()
assert app.test_client().get("/orders/7").data == b"order 7"  # (read: the response ends)

work = client.start_span("work")
client.add_span_event(work, "step")
client.end_span(work)
twice = client.start_span("ended-twice")
client.end_span(twice)
client.end_span(twice)
client.add_span_event(twice, "late")
client.end_span("f" * 16)
print("bad arguments:", len(client.get_status()["bad_arguments"]))
client.shutdown(5.0)
print("done")
