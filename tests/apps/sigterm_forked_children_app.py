"""Forks children and sends each SIGTERM the moment ``os.fork()`` returns in the parent,
while the child may still be inside its after-fork hooks; then reports that the parent
itself lived on. (A child's signal must never end the parent: under the launcher, before the
child has its own SIGTERM watcher pipe, it still shares the parent's.)"""

import os
import signal
import sys
import time

statuses = []
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
    pid = os.fork()
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    os.kill(pid, signal.SIGTERM)
    statuses.append(os.waitpid(pid, 0)[1])
time.sleep(0.5)  # the parent's watcher would act within 0.2 s of a stray SIGTERM
killed = sum(1 for status in statuses if os.WIFSIGNALED(status)
             and os.WTERMSIG(status) == signal.SIGTERM)
exited_143 = sum(1 for status in statuses if os.WIFEXITED(status)
                 and os.WEXITSTATUS(status) == 128 + signal.SIGTERM)
print(f"parent survived; children ended by SIGTERM: {killed + exited_143}/{len(statuses)}")
