"""``SharedBuffer``: Node's SharedArrayBuffer, one block of memory several sides see.

The memory is an anonymous memory file (``memfd_create``; elsewhere an unlinked
temporary file, under /dev/shm when there is one) mapped ``MAP_SHARED``. It has no name
anywhere, so nothing can leak into /dev/shm: the kernel frees the memory when the last
mapping and the last descriptor are gone, that is when the last side drops its
``SharedBuffer``. Posting one sends its descriptor (SCM_RIGHTS) to a process worker,
which maps the same pages; a thread worker gets the same object.
"""
from __future__ import annotations

import mmap
import os
import sys
import tempfile
import weakref
from typing import Any

from .cloning import add_handle, handle_at

__all__ = ["SharedBuffer"]

_MEMFD_NAME = "phaseloop-shared"


def _new_memory_fd(size: int) -> int:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create(_MEMFD_NAME, os.MFD_CLOEXEC)
    else:
        where = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryFile(dir=where) as tmp:   # unlinked at once
            fd = os.dup(tmp.fileno())
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


class SharedBuffer(mmap.mmap):
    """``size`` bytes of zeroed memory shared with every worker it is posted to.

    It is an ``mmap.mmap``: index and slice it, take ``memoryview(buf)``, use
    ``struct.pack_into`` or ``numpy.frombuffer`` on it. Posting it (in a message or a
    worker's ``data``) shares it; it is never copied and never listed in ``transfer=``::

        buf = workers.SharedBuffer(1024)
        w = workers.Worker("app.jobs:fill", data=buf, kind="process")
        await w.wait()
        print(buf[:4])

    Writes are visible to the other sides at once; ordering them (a message after the
    write, as with Node's Atomics) is the program's job.
    """

    _shared_fd: int

    def __new__(cls, size: int) -> "SharedBuffer":
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        fd = _new_memory_fd(size)
        try:
            return cls._map(fd, size)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def _map(cls, fd: int, size: int) -> "SharedBuffer":
        """Map the memory file ``fd`` (whose owner we become) of ``size`` bytes."""
        if sys.version_info >= (3, 13):
            # 3.13 can map without a private dup() of the descriptor: one fd per buffer.
            self = super().__new__(cls, fd, size, trackfd=False)
        else:
            self = super().__new__(cls, fd, size)
        self._shared_fd = fd
        self._release_fd = weakref.finalize(self, os.close, fd)
        return self

    def close(self) -> None:
        """Unmap now (BufferError while a memoryview of it is alive); the memory is
        freed once every side has closed or dropped its buffer."""
        super().close()
        self._release_fd()

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (handle_at, (add_handle(self),))

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self)} bytes"
        return f"<SharedBuffer {state}>"
