"""Node-style streams for asyncio: Readable, Writable, Duplex, Transform, pipeline.

Bytes mode (the default) counts buffered bytes; ``object_mode=True`` counts
chunks. Each stream has a ``high_water_mark`` (64 KiB, or 16 objects):

- a Readable pulls from its source (``_read``) in the background only while
  its buffer is under the mark, so a slow consumer stops a fast source;
- ``await writable.write(chunk)`` returns at once while the buffer is under
  the mark and waits when it is at or over it (backpressure).

The seed's example::

    from phaseloop.streams import create_read_stream, create_write_stream, pipeline

    class Upper(Transform):
        async def transform(self, chunk):
            return chunk.upper()

    await pipeline(create_read_stream("input.txt"), Upper(), create_write_stream("output.txt"))

With text, give the read stream an encoding: chunks are then ``str``,
decoded without ever splitting a multi-byte character (``bytes.upper()``
changes ASCII letters only)::

    await pipeline(create_read_stream("input.txt", encoding="utf-8"),
                   Transform(str.upper), create_write_stream("output.txt"))

``async for chunk in readable`` reads until the end; leaving the loop early
destroys the stream. Stages of ``pipeline`` may also be iterables (a source),
async generator functions (``async def stage(source): async for c in source:
yield ...``) and plain functions (a Transform over each chunk). Sockets are
Duplex streams: ``await connect(host, port)`` and ``await serve(handler,
host, port)``.

Works on any asyncio loop. File I/O moves one chunk at a time, so the loop
is never blocked for longer than one chunk; a chunk the page cache holds is
read on the loop, any other in the loop's executor, and on phaseloop a
reader resumes as Node's I/O callbacks run (docs/phases.md). A pipeline that
fails removes (or cuts back) the file its write stream was writing.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import inspect
import os
import stat
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

__all__ = ["Duplex", "PassThrough", "Readable", "StreamError", "Transform", "Writable",
           "connect", "create_read_stream", "create_write_stream", "finished", "pipeline",
           "serve"]

BYTES_HIGH_WATER_MARK = 64 * 1024
OBJECTS_HIGH_WATER_MARK = 16


class StreamError(RuntimeError):
    """Misuse of a stream: write after end, or use after destroy."""


def _default_mark(object_mode: bool) -> int:
    return OBJECTS_HIGH_WATER_MARK if object_mode else BYTES_HIGH_WATER_MARK


class _Base:
    """What every stream has: mode, destruction and completion."""

    def __init__(self, *, object_mode: bool = False) -> None:
        self.object_mode = object_mode
        self.destroyed = False
        self.error: BaseException | None = None
        self._done: asyncio.Future | None = None

    def _size(self, chunk: Any) -> int:
        return 1 if self.object_mode else len(chunk)

    def _check_chunk(self, chunk: Any) -> None:
        if not self.object_mode and not isinstance(chunk, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"a bytes-mode stream takes bytes or str chunks, not "
                            f"{type(chunk).__name__} (use object_mode=True)")

    def _completion(self) -> asyncio.Future:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        return self._done

    def _settle(self, error: BaseException | None = None) -> None:
        done = self._completion() if self._done is None else self._done
        if not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)
                done.exception()          # retrieved here: finished() re-raises it

    def destroy(self, error: BaseException | None = None) -> None:
        """Stop the stream now, releasing what it holds; waiters get ``error``
        (or StreamError("destroyed"))."""
        if self.destroyed:
            return
        self.destroyed = True
        if error is not None and self.error is None:
            self.error = error
        self._on_destroy()
        try:
            self._destroy(error)
        finally:
            self._settle(error if error is not None else None)

    def _on_destroy(self) -> None:
        """Side-specific cleanup (tasks, waiters)."""

    async def _released(self) -> None:
        """Wait until what destroy() let go of is really released (an fd
        closes only after the executor call using it returns)."""

    def _destroy(self, error: BaseException | None) -> None:
        """Release resources (files, sockets); override in subclasses."""

    def _discard_partial(self) -> None:
        """The pipeline this stream is in failed: undo what it half-wrote
        where it can (a file write stream does, in _released)."""


# ---- Readable -----------------------------------------------------------------------


class Readable(_Base):
    """A source of chunks. Subclasses implement ``async def _read(self, size)``,
    which returns the next chunk, or None at the end (or calls ``push``).

    With ``encoding`` (or after ``set_encoding``) the chunks read are ``str``,
    decoded incrementally as Node's StringDecoder does: a character split
    between two pushed chunks comes out whole in the second one (invalid
    bytes become U+FFFD, as in Node)."""

    def __init__(self, *, high_water_mark: int | None = None, object_mode: bool = False,
                 encoding: str | None = None) -> None:
        super().__init__(object_mode=object_mode)
        self.readable_high_water_mark = (high_water_mark if high_water_mark is not None
                                         else _default_mark(object_mode))
        self._buffer: collections.deque = collections.deque()
        self._buffered = 0
        self._ended = False           # the source pushed its end
        self._data_waiter: asyncio.Future | None = None
        self._puller: asyncio.Task | None = None
        self._pull_wanted: asyncio.Event | None = None
        self.encoding: str | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        if encoding is not None:
            self.set_encoding(encoding)

    @property
    def readable_length(self) -> int:
        """What is buffered (bytes — characters once decoding — or chunks in object mode)."""
        return self._buffered

    def set_encoding(self, encoding: str) -> "Readable":
        """Give ``str`` chunks from now on, decoded with ``encoding`` without
        ever splitting a multi-byte character between two chunks (Node's
        ``readable.setEncoding``). What is buffered already is decoded too.
        LookupError for an unknown encoding; returns the stream."""
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.encoding = codecs.lookup(encoding).name
        buffered = list(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        self._decoder = decoder
        for chunk in buffered:
            self._append(self._decode(chunk))
        return self

    def _decode(self, chunk: Any) -> Any:
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            return self._decoder.decode(chunk)
        return chunk

    def _append(self, chunk: Any) -> None:
        if self._size(chunk) or self.object_mode:
            self._buffer.append(chunk)
            self._buffered += self._size(chunk)

    async def _read(self, size: int) -> Any:
        return None

    def push(self, chunk: Any) -> bool:
        """Add a chunk (None: the end) to the buffer; False when the buffer is
        now at or over the high-water mark (a push source should pause)."""
        if self.destroyed:
            return False
        if chunk is None:
            self._ended = True
            if self._decoder is not None:
                self._append(self._decoder.decode(b"", True))   # an incomplete tail: U+FFFD
        else:
            self._check_chunk(chunk)
            if self._decoder is not None:
                chunk = self._decode(chunk)
            elif not self.object_mode and isinstance(chunk, str):
                chunk = chunk.encode()
            self._append(chunk)
        waiter = self._data_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return self._buffered < self.readable_high_water_mark

    def _start_pulling(self) -> None:
        if self._puller is None and not self._ended and type(self)._read is not Readable._read:
            self._pull_wanted = asyncio.Event()
            self._puller = asyncio.get_running_loop().create_task(self._pull())

    async def _pull(self) -> None:
        """Fill the buffer from _read while it is under the high-water mark."""
        try:
            while not self._ended and not self.destroyed:
                if self._buffered >= self.readable_high_water_mark:
                    self._pull_wanted.clear()
                    await self._pull_wanted.wait()
                    continue
                chunk = await self._read(self.readable_high_water_mark - self._buffered)
                if chunk is not None or not self._ended:
                    self.push(chunk)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:           # noqa: B036 - the stream carries it
            self.destroy(exc)

    async def read(self) -> Any:
        """The next chunk, or None at the end. Raises the stream's error."""
        while True:
            if self._buffer:
                chunk = self._buffer.popleft()
                self._buffered -= self._size(chunk)
                if self._pull_wanted is not None and self._buffered < self.readable_high_water_mark:
                    self._pull_wanted.set()
                self._after_read()
                return chunk
            if self.error is not None:
                raise self.error
            if self.destroyed:
                raise StreamError("read from a destroyed stream")
            if self._ended:
                self._on_end()
                return None
            self._start_pulling()
            self._data_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._data_waiter
            finally:
                self._data_waiter = None

    def _after_read(self) -> None:
        """A chunk left the buffer (push sources resume here)."""

    def _on_end(self) -> None:
        if not isinstance(self, Writable):
            self._settle()

    def _on_destroy(self) -> None:
        if self._puller is not None and self._puller is not asyncio.current_task():
            self._puller.cancel()
        waiter = self._data_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        completed = False
        try:
            while (chunk := await self.read()) is not None:
                yield chunk
            completed = True
        finally:
            if not completed:         # the consumer left early, or failed
                self.destroy()

    @classmethod
    def from_iterable(cls, iterable: Iterable[Any] | AsyncIterable[Any], *,
                      object_mode: bool = True, high_water_mark: int | None = None) -> "Readable":
        """A Readable over a sync or async iterable (object mode by default)."""
        return _IterableReadable(iterable, object_mode=object_mode, high_water_mark=high_water_mark)


class _IterableReadable(Readable):
    def __init__(self, iterable, *, object_mode: bool, high_water_mark: int | None) -> None:
        super().__init__(object_mode=object_mode, high_water_mark=high_water_mark)
        if hasattr(iterable, "__aiter__"):
            self._source = iterable.__aiter__()
            self._async = True
        else:
            self._source = iter(iterable)
            self._async = False

    async def _read(self, size: int) -> Any:
        try:
            if self._async:
                return await self._source.__anext__()
            return next(self._source)
        except (StopIteration, StopAsyncIteration):
            self.push(None)
            return None

    def _destroy(self, error: BaseException | None) -> None:
        close = getattr(self._source, "aclose" if self._async else "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                asyncio.ensure_future(result)


# ---- Writable -----------------------------------------------------------------------


class Writable(_Base):
    """A sink. Subclasses implement ``async def _write(self, chunk)`` and may
    implement ``async def _final(self)`` (run once by ``end()``). In bytes
    mode a ``str`` written is encoded (UTF-8) before ``_write`` sees it, as
    Node's ``decodeStrings`` does."""

    _encode_strings = True

    def __init__(self, *, high_water_mark: int | None = None, object_mode: bool = False,
                 write: Callable[[Any], Awaitable[None] | None] | None = None) -> None:
        super().__init__(object_mode=object_mode)
        self.writable_high_water_mark = (high_water_mark if high_water_mark is not None
                                         else _default_mark(object_mode))
        self._pending: collections.deque = collections.deque()
        self._pending_size = 0
        self._writer: asyncio.Task | None = None
        self._drained: asyncio.Event | None = None
        self._ending = False
        self.writable_finished = False
        if write is not None:
            self._write_fn = write

    @property
    def writable_length(self) -> int:
        """What is buffered and not yet written (bytes, or chunks)."""
        return self._pending_size

    async def _write(self, chunk: Any) -> None:
        fn = getattr(self, "_write_fn", None)
        if fn is None:
            raise NotImplementedError(f"{type(self).__name__} must implement _write()")
        result = fn(chunk)
        if inspect.isawaitable(result):
            await result

    async def _final(self) -> None:
        pass

    async def write(self, chunk: Any) -> None:
        """Queue a chunk; waits while the buffer is at or over the high-water mark."""
        if self.error is not None:
            raise self.error
        if self.destroyed:
            raise StreamError("write to a destroyed stream")
        if self._ending:
            raise StreamError("write after end")
        self._check_chunk(chunk)
        if self._encode_strings and not self.object_mode and isinstance(chunk, str):
            chunk = chunk.encode()
        self._pending.append(chunk)
        self._pending_size += self._size(chunk)
        if self._writer is None:
            self._drained = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._drain_pending())
        while self._pending_size >= self.writable_high_water_mark and not self.destroyed:
            self._drained.clear()
            await self._drained.wait()
        if self.error is not None:
            raise self.error

    async def _drain_pending(self) -> None:
        try:
            while self._pending and not self.destroyed:
                chunk = self._pending[0]
                await self._write(chunk)
                self._pending.popleft()
                self._pending_size -= self._size(chunk)
                if self._pending_size < self.writable_high_water_mark:
                    self._drained.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:           # noqa: B036 - the stream carries it
            self.destroy(exc)
        finally:
            self._writer = None
            if self._drained is not None:
                self._drained.set()

    async def end(self, chunk: Any = None) -> None:
        """Write a last chunk (optional), wait until everything is written,
        run _final and mark the stream finished."""
        if chunk is not None:
            await self.write(chunk)
        if self._ending:
            await self._completion()
            return
        self._ending = True
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self.error is not None:
            raise self.error
        if self.destroyed:
            raise StreamError("end of a destroyed stream")
        try:
            await self._final()
        except BaseException as exc:
            self.destroy(exc)
            raise
        self.writable_finished = True
        self._on_finish()

    def _on_finish(self) -> None:
        if not isinstance(self, Readable):
            self._settle()

    def _on_destroy(self) -> None:
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()
        if self._drained is not None:
            self._drained.set()


# ---- Duplex, Transform, PassThrough -----------------------------------------------------------


class Duplex(Readable, Writable):
    """Both a Readable and a Writable (a socket, a Transform)."""

    def __init__(self, *, high_water_mark: int | None = None, object_mode: bool = False) -> None:
        Readable.__init__(self, high_water_mark=high_water_mark, object_mode=object_mode)
        Writable.__init__(self, high_water_mark=high_water_mark, object_mode=object_mode)
        self._read_done = False

    def _on_end(self) -> None:
        self._read_done = True
        if self.writable_finished or self._ending:
            self._settle()

    def _on_finish(self) -> None:
        if self._read_done:
            self._settle()

    def _on_destroy(self) -> None:
        Readable._on_destroy(self)
        Writable._on_destroy(self)


class Transform(Duplex):
    """Writes go through ``transform`` into the readable side.

    Subclass with ``async def transform(self, chunk)`` returning the output
    chunk (None for none) or calling ``self.push``; optional ``async def
    flush(self)`` at the end. Or pass ``transform=fn`` (sync or async).

    ``transform`` gets each chunk as it was written: ``str`` stays ``str``
    (so a text pipeline reads ``Transform(str.upper)``), bytes stay bytes.
    What it returns is pushed: in bytes mode a ``str`` is encoded (UTF-8)
    unless this Transform's readable side has an ``encoding``.
    """

    _encode_strings = False

    def __init__(self, transform: Callable[[Any], Any] | None = None, *,
                 flush: Callable[[], Any] | None = None, high_water_mark: int | None = None,
                 object_mode: bool = False, encoding: str | None = None) -> None:
        super().__init__(high_water_mark=high_water_mark, object_mode=object_mode)
        if encoding is not None:
            self.set_encoding(encoding)
        if transform is not None:
            self._transform_fn = transform
        if flush is not None:
            self._flush_fn = flush

    async def transform(self, chunk: Any) -> Any:
        fn = getattr(self, "_transform_fn", None)
        if fn is None:
            return chunk
        result = fn(chunk)
        return await result if inspect.isawaitable(result) else result

    async def flush(self) -> Any:
        fn = getattr(self, "_flush_fn", None)
        if fn is not None:
            result = fn()
            return await result if inspect.isawaitable(result) else result
        return None

    async def _write(self, chunk: Any) -> None:
        out = await self.transform(chunk)
        if out is not None:
            self.push(out)
        # The readable side's backpressure holds the writer back once it holds
        # more than the mark (one chunk of the mark's size may wait there).
        while self._buffered > self.readable_high_water_mark and not self.destroyed:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await self._room
            finally:
                self._room = None

    def _after_read(self) -> None:
        room = getattr(self, "_room", None)
        if room is not None and not room.done() and self._buffered <= self.readable_high_water_mark:
            room.set_result(None)

    async def _final(self) -> None:
        out = await self.flush()
        if out is not None:
            self.push(out)
        self.push(None)

    def _on_destroy(self) -> None:
        super()._on_destroy()
        room = getattr(self, "_room", None)
        if room is not None and not room.done():
            room.set_result(None)


class PassThrough(Transform):
    """A Transform that passes every chunk through unchanged."""


# ---- pipeline and finished ----------------------------------------------------------------


async def finished(stream: _Base) -> None:
    """Wait until a stream has ended (Readable), finished (Writable) or both
    (Duplex); raises the error it failed with."""
    await asyncio.shield(stream._completion())


def _as_stage(stage: Any, position: int, last: bool, object_mode: bool) -> Any:
    if isinstance(stage, _Base):
        return stage
    if position == 0 and (hasattr(stage, "__aiter__") or hasattr(stage, "__iter__")) \
            and not isinstance(stage, (bytes, str)):
        return Readable.from_iterable(stage)
    if inspect.isasyncgenfunction(stage):
        return stage
    if callable(stage) and not last:
        return Transform(stage, object_mode=object_mode)
    raise TypeError(f"pipeline stage {position} is not a stream, iterable or function: {stage!r}")


async def pipeline(*stages: Any) -> None:
    """Connect stages source -> transforms -> sink and wait until the sink
    has finished. On an error or cancellation every stream stage is destroyed
    and the first error is raised; an unfinished file write stream removes
    the file it created (or cuts an existing one back to its length when
    opened) before that.

    >>> await pipeline(create_read_stream("in.txt"), Transform(bytes.upper),
    ...                create_write_stream("out.txt"))
    """
    if len(stages) < 2:
        raise TypeError("pipeline() needs at least a source and a destination")
    parts: list[Any] = []
    object_mode = True        # what a function stage sees: its source's mode
    for i, s in enumerate(stages):
        part = _as_stage(s, i, i == len(stages) - 1, object_mode)
        object_mode = part.object_mode if isinstance(part, _Base) else True
        parts.append(part)
    if not isinstance(parts[-1], Writable):
        raise TypeError(f"the last pipeline stage must be a Writable, got {parts[-1]!r}")
    loop = asyncio.get_running_loop()
    pumps: list[asyncio.Task] = []
    source: Any = parts[0]
    for part in parts[1:]:
        if isinstance(part, Writable):
            pumps.append(loop.create_task(_pump(source, part)))
            source = part
        else:                                   # an async generator function
            source = part(source)
    streams = [p for p in parts if isinstance(p, _Base)]
    try:
        await asyncio.gather(*pumps)
        await finished(parts[-1])
    except BaseException as exc:
        first = exc
        for task in pumps:
            if task.done() and not task.cancelled() and task.exception() is not None:
                first = task.exception()
                break
        for task in pumps:
            task.cancel()
        failure = first if not isinstance(first, asyncio.CancelledError) else None
        for stream in streams:
            stream._discard_partial()
            stream.destroy(failure)
        await asyncio.gather(*pumps, *(s._released() for s in streams), return_exceptions=True)
        if first is exc:
            raise
        raise first from None


async def _pump(source: Any, sink: Writable) -> None:
    async for chunk in source:
        await sink.write(chunk)
    await sink.end()


# ---- files ---------------------------------------------------------------------------


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


def create_read_stream(path: Any, *, high_water_mark: int = 65536, start: int | None = None,
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


def create_write_stream(path: Any, *, flags: str = "w", high_water_mark: int = 65536) -> Writable:
    """A Writable into a file (Node's fs.createWriteStream); ``flags`` "w",
    "wx", "a", "ax" or "r+"; ``str`` chunks are written as UTF-8. A chunk
    goes to a regular file on the loop (one write into the page cache), to
    a pipe or device in the executor.

    When a :func:`pipeline` it ends fails or is cancelled, a regular file
    this stream created is removed, and one that existed is cut back to the
    length it had once opened ("w": empty, "a": its old content; "r+" is
    left as it is): a half-written output never passes for a whole one."""
    return _FileWritable(path, flags, high_water_mark)


# ---- sockets ---------------------------------------------------------------------------


class _SocketProtocol(asyncio.Protocol):
    def __init__(self, stream: "SocketStream") -> None:
        self.stream = stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.stream._transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.stream.push(data):
            self.stream._transport.pause_reading()

    def eof_received(self) -> bool:
        self.stream.push(None)
        return True                 # keep the writing side open (half-close)

    def pause_writing(self) -> None:
        self.stream._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        fut, self.stream._can_write = self.stream._can_write, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        stream = self.stream
        stream.push(None)
        fut, stream._can_write = stream._can_write, None
        if fut is not None and not fut.done():
            fut.set_exception(exc or ConnectionResetError("connection lost"))
            fut.exception()
        if exc is not None:
            stream.destroy(exc)
        elif not stream.destroyed:
            stream._lost = True


class SocketStream(Duplex):
    """A connection as a Duplex stream: reading pauses the transport when the
    buffer is full, writing waits for the transport's pause/resume_writing."""

    def __init__(self, *, high_water_mark: int | None = None) -> None:
        super().__init__(high_water_mark=high_water_mark)
        self._transport: asyncio.Transport | None = None
        self._can_write: asyncio.Future | None = None
        self._lost = False

    def _after_read(self) -> None:
        t = self._transport
        if t is not None and self._buffered < self.readable_high_water_mark and not t.is_closing():
            t.resume_reading()

    async def _write(self, chunk: Any) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the connection is closed")
        self._transport.write(chunk)
        if self._can_write is not None:
            await self._can_write

    async def _final(self) -> None:
        t = self._transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default) if self._transport else default

    def _destroy(self, error: BaseException | None) -> None:
        if self._transport is not None:
            if error is None:
                self._transport.close()
            else:
                self._transport.abort()


async def connect(host: str, port: int, *, ssl: Any = None,
                  high_water_mark: int | None = None) -> SocketStream:
    """Open a TCP (or TLS) connection as a Duplex stream."""
    stream = SocketStream(high_water_mark=high_water_mark)
    await asyncio.get_running_loop().create_connection(lambda: _SocketProtocol(stream),
                                                       host, port, ssl=ssl)
    return stream


async def serve(handler: Callable[[SocketStream], Awaitable[None]], host: str, port: int, *,
                ssl: Any = None, high_water_mark: int | None = None) -> asyncio.AbstractServer:
    """Serve connections: ``handler(stream)`` runs as a task per connection;
    the stream is destroyed when the handler returns or fails."""
    loop = asyncio.get_running_loop()

    def factory() -> _SocketProtocol:
        stream = SocketStream(high_water_mark=high_water_mark)
        protocol = _SocketProtocol(stream)
        loop.call_soon(lambda: loop.create_task(_handle(handler, stream)))
        return protocol

    return await loop.create_server(factory, host, port, ssl=ssl)


async def _handle(handler: Callable[[SocketStream], Awaitable[None]], stream: SocketStream) -> None:
    try:
        await handler(stream)
    except Exception as exc:
        stream.destroy(exc)
        raise
    else:
        if not stream.destroyed:
            if not stream._ending:
                await stream.end()          # flush what the handler wrote, then EOF
            stream.destroy()
