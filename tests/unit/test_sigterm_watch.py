"""The SIGTERM watcher's pipe stays out of the program's way."""

from __future__ import annotations

import os
import resource

import pytest

from telemetryflow_bootstrap import _sigterm_watch


@pytest.mark.skipif(resource.getrlimit(resource.RLIMIT_NOFILE)[0] <= 513,
                    reason="descriptor limit too low to move a descriptor past 512")
def test_its_descriptors_sit_high_and_are_not_inherited_by_programs_it_starts() -> None:
    """A daemon closes every descriptor and then opens files, which get the lowest free
    numbers: ours must not be one of them (the C handler would write into that file)."""
    read_fd, write_fd = os.pipe()
    moved = [_sigterm_watch._high(fd) for fd in (read_fd, write_fd)]
    try:
        assert all(fd >= 512 for fd in moved), moved
        assert not any(os.get_inheritable(fd) for fd in moved)
        os.write(moved[1], b"\x0f")
        assert os.read(moved[0], 1) == b"\x0f"
        for fd in (read_fd, write_fd):  # the low originals are closed
            with pytest.raises(OSError):
                os.fstat(fd)
    finally:
        for fd in moved:
            os.close(fd)
