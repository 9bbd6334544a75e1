"""Sleeps briefly, then exits 0 (used where only start-up and exit matter)."""

import time

time.sleep(0.1)
print("slept")
