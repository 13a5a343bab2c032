# cython: language_level=3
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

Compiled (memory_link.pxd): a thread worker's message goes through ``send_copy`` on
one side and ``delivered`` on the other, called from port_core.pyx as C methods; in
Python each cost a frame on a path where every microsecond shows in the round trip
(docs/workers.md).
"""
from .cloning import BUFFER_TYPES

__all__ = ["MemoryLink", "move_handles"]


def move_handles(handles: list) -> tuple:
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


cdef class MemoryLink:
    """One side of an in-process channel; ``port`` is set by the port."""

    crosses_process = False

    def __init__(self):
        self.peer = self
        self.port = None
        self.loop = None
        self.remote_closed = False
        self.closed = False
        self.sent = 0
        self.taken = 0
        self.wake_scheduled = False                  # a dispatch is on its way

    @classmethod
    def pair(cls):
        cdef MemoryLink a = cls(), b = cls()
        a.peer, b.peer = b, a
        return a, b

    def bind(self, loop):
        self.loop = loop
        if self.port._inbox or self.remote_closed:   # posted before this side ran
            self.wake()

    def unbind(self):
        self.loop = None

    # ---- sending (the sender's thread) ----------------------------------------------

    def check_handles(self, handles):
        """Everything that pickles can cross within the process."""

    def send(self, kind, payload, handles):
        """A pickled message (``handles``: what travels beside it); its size."""
        cdef Py_ssize_t size = len(payload)
        if handles:
            handles, moved_bytes = move_handles(handles)
            size += moved_bytes
        self._append(payload, handles, size)
        return size

    cpdef send_copy(self, object message, Py_ssize_t size):
        """A message copied already (plain_copy.pyx): it needs no decoding there."""
        self._append(message, None, size)

    cdef void _append(self, object payload, object handles, Py_ssize_t size):
        cdef MemoryLink peer = self.peer
        if peer.closed:
            return                                   # the other side is gone (Node drops it)
        self.sent += size
        peer.port._inbox.append((payload, handles, size))
        if not peer.wake_scheduled:
            peer._schedule_wake()

    def outstanding(self):
        return self.sent - self.peer.taken

    # ---- receiving (the receiver's thread) ------------------------------------------

    cpdef wake(self):
        """From any thread: have this side's loop dispatch its inbox."""
        if not self.wake_scheduled:
            self._schedule_wake()

    cdef void _schedule_wake(self):
        """Once per burst: the flag is cleared by port._dispatch, which this schedules."""
        loop = self.loop
        if loop is None:
            return
        self.wake_scheduled = True
        try:
            loop.call_soon_threadsafe(self.port._dispatch)
        except RuntimeError:                         # that loop has closed
            self.wake_scheduled = False

    cpdef delivered(self, Py_ssize_t size):
        self.taken += size
        cdef MemoryLink sender = self.peer
        port = sender.port
        if port is None or sender.loop is None:
            return
        waiters = port._drain_waiters
        if waiters and sender.sent - self.taken <= max([limit for limit, _ in waiters]):
            try:
                sender.loop.call_soon_threadsafe(port._writable)
            except RuntimeError:
                pass

    def has_buffered_data(self):
        return False

    def read_to_end(self):
        """Nothing to read: what the other side posted is in the inbox already."""

    # ---- closing --------------------------------------------------------------------

    def close(self):
        """The other side sees the end after every message posted before it."""
        if self.closed:
            return
        self.closed = True
        cdef MemoryLink peer = self.peer
        peer.remote_closed = True
        peer.wake()
