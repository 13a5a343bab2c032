"""``MemoryLink``: a MessagePort's transport to a port in the same process.

A thread worker and its parent talk through a pair of these: posting appends the
pickled frame to the other port's inbox (a deque, safe to append to from any thread)
and wakes the other port's loop with one ``call_soon_threadsafe`` per burst (a flag
coalesces the wakeups: the receiver clears it before it drains, so a message that
races with the drain schedules another one instead of being missed).

Backpressure without a socket: each side counts the bytes it posted (``sent``,
written by the sender's thread only) and the bytes it delivered (``taken``, written by
the receiver's thread only); what is in flight is ``sent - peer.taken``.
``MessagePort.drain()`` waits while that is above the port's ``high_water``; the
receiver wakes it once it is down to ``low_water``.
"""
from __future__ import annotations

from typing import Any

from .cloning import BUFFER_TYPES

__all__ = ["MemoryLink", "move_handles"]


def move_handles(handles: list) -> tuple[list, int]:
    """Handles as the other thread gets them, and the bytes of the buffers among them:
    a buffer or a SharedBuffer is the same object (no copy), a port is a new port
    object that takes over the channel (the sender's one is dead)."""
    moved = []
    size = 0
    for h in handles:
        if isinstance(h, BUFFER_TYPES):
            size += memoryview(h).nbytes
            moved.append(h)
        elif hasattr(h, "_prepare_transfer"):
            moved.append(h._prepare_transfer(cross_process=False))
        else:
            moved.append(h)
    return moved, size


class MemoryLink:
    """One side of an in-process channel; ``port`` is set by the port."""

    crosses_process = False

    def __init__(self) -> None:
        self.peer: MemoryLink = self
        self.port: Any = None
        self.loop: Any = None
        self.remote_closed = False
        self.closed = False
        self.sent = 0
        self.taken = 0
        self.wake_scheduled = False                  # a dispatch is on its way

    @classmethod
    def pair(cls) -> tuple["MemoryLink", "MemoryLink"]:
        a, b = cls(), cls()
        a.peer, b.peer = b, a
        return a, b

    def bind(self, loop: Any) -> None:
        self.loop = loop
        if self.port._inbox or self.remote_closed:   # posted before this side ran
            self.wake()

    def unbind(self) -> None:
        self.loop = None

    # ---- sending (the sender's thread) ----------------------------------------------

    def check_handles(self, handles: list) -> None:
        """Everything that pickles can cross within the process."""

    def send(self, kind: int, payload: bytes, handles: list) -> int:
        size = len(payload)
        if handles:
            handles, moved_bytes = move_handles(handles)
            size += moved_bytes
        peer = self.peer
        if peer.closed:
            return size                              # the other side is gone (Node drops it)
        self.sent += size
        peer.port._inbox.append((payload, handles, size))
        if not peer.wake_scheduled and peer.loop is not None:
            peer.wake_scheduled = True               # wake(), inlined: once per burst
            try:
                peer.loop.call_soon_threadsafe(peer.port._dispatch)
            except RuntimeError:                     # that loop has closed
                peer.wake_scheduled = False
        return size

    def outstanding(self) -> int:
        return self.sent - self.peer.taken

    # ---- receiving (the receiver's thread) ------------------------------------------

    def wake(self) -> None:
        """From any thread: have this side's loop dispatch its inbox."""
        if self.wake_scheduled:
            return
        loop = self.loop
        if loop is None:
            return
        self.wake_scheduled = True                   # cleared by port._dispatch
        try:
            loop.call_soon_threadsafe(self.port._dispatch)
        except RuntimeError:                         # that loop has closed
            self.wake_scheduled = False

    def delivered(self, size: int) -> None:
        self.taken += size
        sender = self.peer
        port = sender.port
        waiters = port._drain_waiters if port is not None else None
        if waiters and sender.loop is not None and \
                sender.outstanding() <= max([limit for limit, _ in waiters], default=-1):
            try:
                sender.loop.call_soon_threadsafe(port._writable)
            except RuntimeError:
                pass

    def has_buffered_data(self) -> bool:
        return False

    def read_to_end(self) -> None:
        """Nothing to read: what the other side posted is in the inbox already."""

    # ---- closing --------------------------------------------------------------------

    def close(self) -> None:
        """The other side sees the end after every message posted before it."""
        if self.closed:
            return
        self.closed = True
        peer = self.peer
        peer.remote_closed = True
        peer.wake()
