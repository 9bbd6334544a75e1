"""``TelemetryMiddleware``: the framework-neutral core of a server integration.

``start_request`` opens a SERVER span continuing the caller's trace (from the incoming
headers) and makes it current; ``end_request`` sets the status, records the
``http.server.request.duration`` histogram and ends the span. The WSGI/ASGI middlewares and
the framework integrations build on it; ``FlaskTelemetryMiddleware`` and
``FastAPITelemetryMiddleware`` are for people who prefer adding them by hand.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Bucket boundaries the HTTP semantic conventions recommend for request durations (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                    10.0)


@dataclass(slots=True)
class RequestScope:
    """What ``start_request`` hands to ``end_request``."""

    span: Any
    token: Any
    start: float
    attributes: dict[str, Any]


class TelemetryMiddleware:
    """Base class: subclass it (or call it) from any framework's request hook."""

    def __init__(self, client: Any = None) -> None:
        from opentelemetry import propagate, trace

        from .client import get_client

        self._client = client or get_client()
        handler = getattr(self._client, "_handler", None)
        self._tracer = handler.tracer if handler is not None else trace.get_tracer(__name__)
        meter = handler.meter if handler is not None else None
        self._duration = (
            meter.create_histogram(
                "http.server.request.duration", unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))
            if meter is not None else None
        )
        self._extract = propagate.extract

    def start_request(self, method: str, path: str, *, route: str | None = None,
                      headers: Mapping[str, str] | None = None, scheme: str | None = None,
                      attributes: Mapping[str, Any] | None = None) -> RequestScope:
        from opentelemetry import context, trace

        method = method.upper()
        attrs: dict[str, Any] = {"http.request.method": method, "url.path": path}
        if scheme:
            attrs["url.scheme"] = scheme
        if route:
            attrs["http.route"] = route
        if attributes:
            attrs.update(attributes)
        parent = self._extract(headers) if headers else None
        span = self._tracer.start_span(f"{method} {route}" if route else method, context=parent,
                                       kind=trace.SpanKind.SERVER, attributes=attrs)
        token = context.attach(trace.set_span_in_context(span))
        return RequestScope(span, token, time.perf_counter(), attrs)

    def end_request(self, scope: RequestScope, status_code: int | None = None,
                    error: BaseException | None = None) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        duration = time.perf_counter() - scope.start
        span = scope.span
        metric_attrs = {k: v for k, v in scope.attributes.items()
                        if k in ("http.request.method", "http.route", "url.scheme")}
        if status_code is not None:
            span.set_attribute("http.response.status_code", status_code)
            metric_attrs["http.response.status_code"] = status_code
        if error is not None:
            from .infrastructure.handler import record_error

            record_error(span, error)
            metric_attrs["error.type"] = type(error).__qualname__
        elif status_code is not None and status_code >= 500:
            span.set_status(Status(StatusCode.ERROR))
            span.set_attribute("error.type", str(status_code))
            metric_attrs["error.type"] = str(status_code)
        try:
            context.detach(scope.token)
        finally:
            span.end()
            if self._duration is not None:
                self._duration.record(duration, metric_attrs)
