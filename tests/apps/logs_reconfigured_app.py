"""A program that logs, then reconfigures or shuts down ``logging`` mid-run the way
frameworks do (Django's ``setup()`` and uvicorn call ``dictConfig``), and logs on, up to an
``atexit`` function. Knows nothing of telemetryflow.
Run by hand: ``telemetryflow-run python tests/apps/logs_reconfigured_app.py dictConfig``
(or ``fileConfig``, ``shutdown``).

Both configurations print the records to stdout as ``LEVEL name message``.
"""

import atexit
import io
import logging
import logging.config
import sys

_FILE_CONFIG = """\
[loggers]
keys=root

[handlers]
keys=out

[formatters]
keys=plain

[logger_root]
level=INFO
handlers=out

[handler_out]
class=StreamHandler
formatter=plain
args=(sys.stdout,)

[formatter_plain]
format=%(levelname)s %(name)s %(message)s
"""

how = sys.argv[1]
log = logging.getLogger("app")
logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                    format="%(levelname)s %(name)s %(message)s")
log.warning("before %s", how)

if how == "dictConfig":
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                             "stream": "ext://sys.stdout"}},
        "root": {"level": "INFO", "handlers": ["out"]},
    })
elif how == "fileConfig":
    logging.config.fileConfig(io.StringIO(_FILE_CONFIG), disable_existing_loggers=False)
elif how == "shutdown":
    logging.shutdown()
else:
    raise SystemExit(f"unknown mode {how!r}")

log.warning("after %s", how)
log.info("info after %s", how)
atexit.register(lambda: log.warning("from an atexit function after %s", how))
