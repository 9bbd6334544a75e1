"""Nothing is logged until many threads log at once (or, with ``fork``, until a forked
child logs first, on its own): the first records, under contention, all arrive."""

import logging
import os
import sys
import threading

logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
log = logging.getLogger("first.logs")
start = threading.Barrier(8)


def work(n: int) -> None:
    start.wait()
    for i in range(25):
        log.info("thread %d record %d", n, i)


if sys.argv[1:] == ["fork"]:
    pid = os.fork()
    if pid == 0:
        log.info("child record from %d", os.getpid())
        os._exit(0)
    os.waitpid(pid, 0)
    log.info("parent record from %d", os.getpid())
else:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
