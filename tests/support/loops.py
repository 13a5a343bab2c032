"""The loops under test, and counting a process's open fds."""
import asyncio
import os

import phaseloop

#: Every loop behaviour test runs on each of these (the `loop` fixture).
LOOP_FACTORIES = {
    "phaseloop": phaseloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def open_fd_count() -> int:
    """Number of open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))
