"""A small Flask app that knows nothing about telemetryflow.

    telemetryflow-run --service-name shop python examples/flask_app.py
    curl localhost:8000/orders/42

Every request becomes a server span (route, method, status); the outgoing call in
``/checkout`` becomes a client span in the same trace, and the log lines carry the trace.
``PORT`` picks the port (default 8000). For production run it under gunicorn the same way:
``telemetryflow-run gunicorn -w 2 -b 0.0.0.0:8000 examples.flask_app:app``.
"""

from __future__ import annotations

import logging
import os
import urllib.request

from flask import Flask, Response, abort, jsonify

app = Flask(__name__)
log = logging.getLogger("shop")

_ORDERS = {42: {"id": 42, "item": "teapot", "quantity": 1}}


@app.get("/")
def index() -> str:
    return "shop is up\n"


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> Response:
    order = _ORDERS.get(order_id)
    if order is None:
        log.warning("order %s not found", order_id)
        abort(404)
    log.info("order %s read", order_id)
    return jsonify(order)


@app.post("/checkout")
def checkout() -> Response:
    # An outgoing HTTP call: it joins the request's trace (traceparent header added).
    port = os.environ.get("PORT", "8000")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/orders/42", timeout=5) as answer:
        order = answer.read()
    log.info("checked out %d bytes of order", len(order))
    return jsonify({"status": "paid"})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8000")),
        threaded=True,
    )
