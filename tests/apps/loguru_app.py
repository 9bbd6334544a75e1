"""A program that logs with loguru and knows nothing of telemetryflow (it uses the
OpenTelemetry API only to open a span). Run by hand:
``telemetryflow-run python tests/apps/loguru_app.py``.

It starts with loguru's usual ``logger.remove(); logger.add(sys.stderr, ...)``, logs inside
a span (with bound values), logs an exception, one message below the export level, and
routes the standard ``logging`` module into loguru with an ``InterceptHandler``; it prints
the ids of the span it made, for the tests to compare.
"""

import inspect
import logging
import sys

from loguru import logger
from opentelemetry import trace

logger.remove()
# (no diagnose: its variable values include object addresses, which differ run to run)
logger.add(sys.stderr, format="{level} | {name}:{function}:{line} | {message} | {extra}",
           diagnose=False)


class InterceptHandler(logging.Handler):
    """logging's records into loguru: the recipe of loguru's README, which walks up the
    stack past logging's frames to print the location of the code that called logging."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


logging.basicConfig(handlers=[InterceptHandler()], level=logging.INFO, force=True)


class PaymentError(Exception):
    pass


def charge() -> None:
    raise PaymentError("card declined")


with trace.get_tracer("loguru_app").start_as_current_span("checkout") as span:
    logger.bind(order_id=42, customer={"tier": "gold"}).info("order {} placed", 42)
    logger.success("payment captured")
    context = span.get_span_context()
    print(f"span {context.trace_id:032x} {context.span_id:016x}")

try:
    charge()
except PaymentError:
    logger.exception("payment failed")

logger.debug("below the export level: never exported")
logging.getLogger("legacy.billing").warning("from the logging module")
print("loguru_app done")
