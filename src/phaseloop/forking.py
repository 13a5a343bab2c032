"""``os.fork()`` for a process that runs an event loop: what phaseloop.cluster and
phaseloop.workers both do around it.

The parent's stop signals are blocked across the fork, so the child cannot run the
parent's Python handlers (which would act on the parent's loop) before it has put the
default ones back; the child unblocks them once it has.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any

__all__ = ["ExitWatcher", "fork_with_signals_blocked", "reset_signals_in_child"]

SIGNALS_BLOCKED_AROUND_FORK = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD}


def fork_with_signals_blocked() -> tuple[int, Any]:
    """Fork; return ``(pid, mask)``. In the parent the signal mask is already restored;
    the child restores ``mask`` itself after :func:`reset_signals_in_child`."""
    sys.stdout.flush()              # what was printed before is printed once
    sys.stderr.flush()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS_BLOCKED_AROUND_FORK)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid, old_mask


def reset_signals_in_child() -> None:
    """In the child: no wakeup fd, and the default action for every signal that had
    a Python handler (the parent's loop is not running here)."""
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in signal.valid_signals():
        try:
            handler = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        if callable(handler) and handler is not signal.default_int_handler:
            try:
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT
                              else signal.SIG_DFL)
            except (ValueError, OSError):
                pass


class ExitWatcher:
    """Reap the child ``pid`` from ``loop`` and call ``on_exit(status)`` (a wait
    status) once it has exited: through a pidfd the loop watches, or a 50 ms
    ``waitpid`` poll where there is no ``os.pidfd_open``."""

    POLL_INTERVAL = 0.05

    def __init__(self, loop: Any, pid: int, on_exit: Any) -> None:
        self._loop = loop
        self._pid = pid
        self._on_exit = on_exit
        self._pidfd = -1
        self._poll: Any = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._pidfd = pidfd_open(pid)
            except OSError:
                self._pidfd = -1
        if self._pidfd >= 0:
            loop.add_reader(self._pidfd, self._check)
        else:
            self._poll = loop.call_later(self.POLL_INTERVAL, self._check)

    def _check(self) -> None:
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:       # reaped by someone else: the status is lost
            pid, status = self._pid, 0
        if pid == 0:
            if self._pidfd < 0:
                self._poll = self._loop.call_later(self.POLL_INTERVAL, self._check)
            return
        self.close()
        self._on_exit(status)

    def close(self) -> None:
        """Stop watching (done once the child is reaped)."""
        if self._pidfd >= 0:
            if not self._loop.is_closed():
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def close_in_child(self) -> None:
        """In a forked child: drop the parent's pidfd without touching its loop."""
        if self._pidfd >= 0:
            try:
                os.close(self._pidfd)
            except OSError:
                pass
            self._pidfd = -1
