"""File streams: create_read_stream and create_write_stream.

File I/O moves one chunk at a time, so the loop is never blocked for longer
than one chunk.  A read the page cache can serve (preadv with RWF_NOWAIT) is
made on the loop; any other read, and every write that might block, runs in
the loop's executor.  On phaseloop a completed read is handed to the next
poll phase, as libuv delivers Node's file reads (docs/phases.md).
"""
from __future__ import annotations

import asyncio
import codecs
import os
import stat
from typing import Any, Callable

from .core import BYTES_HIGH_WATER_MARK, Readable, Writable

__all__ = ["create_read_stream", "create_write_stream"]


def _run_and_deliver(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple,
                     deliver: Callable[[Any, BaseException | None], None], opens: bool) -> None:
    """In an executor thread: run fn(*args), hand (result, error) back to the loop.

    The thread delivers its own completion with call_soon_threadsafe, which
    phaseloop runs in the poll phase among the I/O callbacks, as libuv runs
    Node's thread-pool completions: whatever the completion wakes resumes in
    that poll phase (asyncio's wrap_future would add a ready-queue hop)."""
    try:
        result, error = fn(*args), None
    except BaseException as exc:          # noqa: B036 - handed to the loop
        result, error = None, exc
    try:
        loop.call_soon_threadsafe(deliver, result, error)
    except RuntimeError:                  # the loop closed meanwhile
        if error is None and opens:
            os.close(_fd_of(result))


def _fd_of(opened: Any) -> int:
    """The fd an opener returned (os.open's int, or _open_for_writing's pair)."""
    return opened if isinstance(opened, int) else opened[0]


def _deliver_as_io(loop: asyncio.AbstractEventLoop) -> Callable[..., Any]:
    """How to deliver an I/O completion that happened inline: phaseloop's
    pending phase (libuv's deferred I/O callbacks), call_soon elsewhere."""
    return getattr(loop, "call_pending", None) or loop.call_soon


class _FileIO:
    """An fd used from the executor, one call at a time. Cancelling the
    caller does not lose an fd being opened, and closing waits for the call
    in flight (closing under a running pread could hit a reused fd)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self._busy = False
        self._idle_waiters: list[asyncio.Future] = []
        self._closing = False
        self._buf: bytearray | None = None

    def submit(self, fn: Callable[..., Any], args: tuple,
               then: Callable[[Any, BaseException | None], None], *, opens: bool = False) -> None:
        """Run fn(*args) in the loop's executor; then(result, error) runs on
        the loop (phaseloop: in the poll phase), after the fd is idle again.
        With ``opens``, fn opens the fd: it is kept even if the stream was
        destroyed meanwhile, so closing the stream closes it."""
        loop = asyncio.get_running_loop()
        self._busy = True

        def done(result: Any, error: BaseException | None) -> None:
            if opens and error is None:
                self.fd = _fd_of(result)
            self._idle()
            then(result, error)
        fut = loop.run_in_executor(None, _run_and_deliver, loop, fn, args, done, opens)
        fut.add_done_callback(_retrieve)

    async def call(self, fn: Callable[..., Any], *args: Any, opens: bool = False) -> Any:
        """fn(*args) in the executor, awaited (see submit)."""
        fut = asyncio.get_running_loop().create_future()

        def then(result: Any, error: BaseException | None) -> None:
            if fut.done():
                return
            if error is None:
                fut.set_result(result)
            else:
                fut.set_exception(error)
        self.submit(fn, args, then, opens=opens)
        return await asyncio.shield(fut)

    def _idle(self) -> None:
        self._busy = False
        if self._closing:
            self._close_now()
        waiters, self._idle_waiters = self._idle_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def read_cached(self, size: int, offset: int) -> bytes | None:
        """What the page cache holds of [offset, offset + size), read on the
        loop with RWF_NOWAIT, which never blocks; None when nothing could be
        read that way (not cached, or no RWF_NOWAIT here)."""
        if _RWF_NOWAIT is None:
            return None
        buf = self._buf
        if buf is None or len(buf) < size:
            # One buffer for every read: a fresh bytearray is zero-filled
            # first, and that memset cost a tenth of a chunk's instructions.
            buf = self._buf = bytearray(size)
        try:
            n = os.preadv(self.fd, [memoryview(buf)[:size]], offset, _RWF_NOWAIT)
        except (BlockingIOError, OSError):
            return None                         # not cached, or unsupported here
        return bytes(memoryview(buf)[:n])

    async def wait_idle(self) -> None:
        if self._busy:
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    def close(self) -> None:
        self._closing = True
        if not self._busy:
            self._close_now()

    def _close_now(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _retrieve(fut: asyncio.Future) -> None:
    """The executor future's own outcome is carried by the delivery; this
    only keeps an error of the hand-back itself from going unreported."""
    if not fut.cancelled():
        fut.exception()


class _FileReadable(Readable):
    """fs.ReadStream: one read in flight at a time, started whenever the
    buffer is under the mark. A read that a reader waits for completes as
    an I/O callback (served by the page cache: in the next pending phase;
    from the executor: in the poll phase), so the reader resumes where
    Node's 'data' listener would run. A read ahead that nobody waits for
    yet is pushed as soon as the page cache serves it: no one resumes, so
    no order is at stake, and the reader finds the chunk buffered."""

    def __init__(self, path: Any, *, high_water_mark: int, start: int | None,
                 end: int | None, encoding: str | None) -> None:
        super().__init__(high_water_mark=high_water_mark, encoding=encoding)
        self.path = os.fspath(path)
        self._chunk = high_water_mark
        self._file = _FileIO()
        self._position = start or 0
        self._end = end                          # inclusive, as Node's
        self._reading = False

    def _start_pulling(self) -> None:
        self._read_more(True)             # read() is about to wait for it

    def _after_read(self) -> None:
        self._read_more(False)

    def _read_more(self, waited_for: bool) -> None:
        if self._reading or self._ended or self.destroyed \
                or self._buffered >= self.readable_high_water_mark:
            return
        self._reading = True
        if self._file.fd is None:
            self._file.submit(os.open, (self.path, os.O_RDONLY, 0o666), self._opened, opens=True)
            return
        want = self._chunk
        if self._end is not None:
            want = min(want, self._end + 1 - self._position)
        if want <= 0:
            self._served(b"", waited_for)
            return
        head = self._file.read_cached(want, self._position)
        if head is not None and (len(head) == want or not head
                                 or self._position + len(head) >= os.fstat(self._file.fd).st_size):
            self._served(head, waited_for)      # by the page cache, up to the end if short
        elif head:
            # Short: the end of the file, or the rest is not cached: ask the kernel.
            self._file.submit(os.pread, (self._file.fd, want - len(head),
                                         self._position + len(head)),
                              lambda rest, error: self._on_data(head + (rest or b""), error))
        else:
            self._file.submit(os.pread, (self._file.fd, want, self._position), self._on_data)

    def _served(self, data: bytes, waited_for: bool) -> None:
        if waited_for:
            _deliver_as_io(asyncio.get_running_loop())(self._on_data, data, None)
        else:
            self._on_data(data, None)

    def _opened(self, fd: Any, error: BaseException | None) -> None:
        self._reading = False
        if error is not None:
            self.destroy(error)
        elif not self.destroyed:
            self._read_more(self._data_waiter is not None)

    def _on_data(self, data: bytes | None, error: BaseException | None) -> None:
        self._reading = False
        if self.destroyed:
            return
        if error is not None:
            self.destroy(error)
            return
        if not data:
            self.push(None)
            return
        self._position += len(data)
        self.push(data)
        self._read_more(False)                   # read ahead while under the mark

    def _on_end(self) -> None:
        self._file.close()
        super()._on_end()

    def _destroy(self, error: BaseException | None) -> None:
        self._file.close()

    async def _released(self) -> None:
        await self._file.wait_idle()


def create_read_stream(path: Any, *, high_water_mark: int = BYTES_HIGH_WATER_MARK,
                       start: int | None = None,
                       end: int | None = None, encoding: str | None = None) -> Readable:
    """A Readable of a file, ``start``..``end`` inclusive (Node's
    fs.createReadStream). Chunks are bytes, or ``str`` with ``encoding``
    (decoded incrementally: a multi-byte character is never split).

    A chunk the page cache holds is read on the loop and delivered in the
    next pending phase; any other is read in the executor and delivered in
    the poll phase (on phaseloop; asyncio's loop has no phases), so a reader
    resumes as a Node 'data' listener runs: before the check phase."""
    if start is not None and start < 0 or end is not None and end < 0:
        raise ValueError("start and end must be >= 0")
    if start is not None and end is not None and end < start:
        raise ValueError(f"end ({end}) must be >= start ({start})")
    if encoding is not None:
        codecs.lookup(encoding)                  # LookupError now, not at the first read
    return _FileReadable(path, high_water_mark=high_water_mark, start=start, end=end,
                         encoding=encoding)


_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None) if hasattr(os, "preadv") else None

_FLAGS = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "wx": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "ax": os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL,
    "r+": os.O_RDWR,
}


def _open_for_writing(path: str, flags: int) -> tuple[int, bool]:
    """os.open, and whether this call created the file (O_EXCL first)."""
    if flags & os.O_CREAT and not flags & os.O_EXCL:
        try:
            return os.open(path, flags | os.O_EXCL, 0o666), True
        except FileExistsError:
            pass
    return os.open(path, flags, 0o666), bool(flags & os.O_EXCL)


class _FileWritable(Writable):
    def __init__(self, path: Any, flags: str, high_water_mark: int) -> None:
        super().__init__(high_water_mark=high_water_mark)
        if flags not in _FLAGS:
            raise ValueError(f"flags must be one of {sorted(_FLAGS)}, got {flags!r}")
        self.path = os.fspath(path)
        self.flags = flags
        self._flags = _FLAGS[flags]
        self._file = _FileIO()
        self._chunk = high_water_mark
        self._inline = False
        self._created = False
        self._identity: tuple[int, int, int] | None = None   # (dev, inode, size when opened)
        self._discard = False
        self.bytes_written = 0

    async def _open(self) -> None:
        fd, self._created = await self._file.call(_open_for_writing, self.path, self._flags,
                                                  opens=True)
        st = os.fstat(fd)
        self._inline = stat.S_ISREG(st.st_mode)
        if self._inline:
            self._identity = (st.st_dev, st.st_ino, st.st_size)

    async def _write(self, chunk: Any) -> None:
        if self._file.fd is None:
            await self._open()
        view = memoryview(chunk)
        while view:
            if self._inline:
                # A regular file: one chunk into the page cache, on the loop
                # (a thread round trip costs more than the copy).
                n = os.write(self._file.fd, view[:self._chunk])
            else:
                n = await self._file.call(os.write, self._file.fd, view)
            view = view[n:]
            self.bytes_written += n

    async def _final(self) -> None:
        if self._file.fd is None:               # nothing written: still create the file
            await self._open()
        self._file.close()

    def _discard_partial(self) -> None:
        self._discard = True

    def _destroy(self, error: BaseException | None) -> None:
        self._file.close()

    async def _released(self) -> None:
        await self._file.wait_idle()
        if self._discard and not self.writable_finished and self._identity is not None:
            self._undo()

    def _undo(self) -> None:
        """A failed pipeline: remove the file if this stream created it,
        otherwise cut it back to its length when opened. Only if the path
        still names the file this stream wrote (not one put there since)."""
        dev, ino, size = self._identity
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) != (dev, ino) or not stat.S_ISREG(st.st_mode):
                return
            if self._created:
                os.unlink(self.path)
            elif self.flags != "r+" and st.st_size > size:
                os.truncate(self.path, size)
        except OSError:
            pass                                 # best effort: the pipeline's error is raised


def create_write_stream(path: Any, *, flags: str = "w",
                        high_water_mark: int = BYTES_HIGH_WATER_MARK) -> Writable:
    """A Writable into a file (Node's fs.createWriteStream); ``flags`` "w",
    "wx", "a", "ax" or "r+"; ``str`` chunks are written as UTF-8. A chunk
    goes to a regular file on the loop (one write into the page cache), to
    a pipe or device in the executor.

    When a :func:`pipeline` it ends fails or is cancelled, a regular file
    this stream created is removed, and one that existed is cut back to the
    length it had once opened ("w": empty, "a": its old content; "r+" is
    left as it is): a half-written output never passes for a whole one."""
    return _FileWritable(path, flags, high_water_mark)
