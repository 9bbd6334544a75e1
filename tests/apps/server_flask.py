"""A Flask app for the server-instrumentation tests; run it by hand with
``telemetryflow-run flask --app tests.apps.server_flask run`` (or gunicorn
``tests.apps.server_flask:app``) and open http://127.0.0.1:5000/hello/you."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, abort


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name}"

    @app.get("/status/<int:code>")
    def status(code: int) -> Response:
        if code == 404:
            abort(404)
        return Response(f"status {code}", status=code)

    @app.get("/boom")
    def boom() -> str:
        raise ValueError("boom from flask")

    @app.get("/stream")
    def stream() -> Response:
        def chunks():
            for i in range(3):
                time.sleep(0.05)
                yield f"chunk {i}\n"

        return Response(chunks(), mimetype="text/plain")

    @app.get("/stream/fail")
    def stream_fail() -> Response:
        """A 200 whose body breaks after its first chunk."""
        def chunks():
            yield "chunk 0\n"
            raise RuntimeError("stream broke")

        return Response(chunks(), mimetype="text/plain")

    @app.route("/purge", methods=["PURGE"])
    def purge() -> str:
        return "purged"

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.get("/work")
    def work() -> str:
        # A span of the application's own: evidence the process exports even when the
        # server instrumentation is switched off.
        from opentelemetry import trace

        with trace.get_tracer("server_flask").start_as_current_span("flask-work"):
            return "worked"

    @app.get("/chain")
    def chain() -> str:
        """Calls the FastAPI app named by SERVER_FLASK_DOWNSTREAM (cross-process trace)."""
        import requests

        headers: dict[str, str] = {}
        if os.environ.get("SERVER_FLASK_INJECT") == "1":  # no requests instrumentation yet
            from opentelemetry import propagate

            propagate.inject(headers)
        reply = requests.get(f"{os.environ['SERVER_FLASK_DOWNSTREAM']}/items/7",
                             headers=headers, timeout=10)
        return f"downstream said {reply.status_code}: {reply.text}"

    return app


app = create_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
