"""The stream classes: Readable, Writable, Duplex, Transform, PassThrough.

Every stream has a buffer and a high-water mark (bytes, or chunks in object
mode); the hooks a subclass implements are Node's: ``_read``, ``_write``,
``_final``, ``_transform``, ``_flush``.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import inspect
from typing import Any, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable

__all__ = ["BYTES_HIGH_WATER_MARK", "Duplex", "OBJECTS_HIGH_WATER_MARK", "PassThrough",
           "Readable", "StreamError", "Transform", "Writable"]

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
    """Writes go through ``_transform`` into the readable side.

    The hooks are Node's: subclass with ``async def _transform(self, chunk)``
    returning the output chunk (None for none) or calling ``self.push``, and
    an optional ``async def _flush(self)`` at the end, as ``_read``,
    ``_write`` and ``_final`` are the other streams' hooks.  ``transform`` and
    ``flush`` (without the underscore) are accepted as the same hooks.  Or
    pass ``transform=fn`` (and ``flush=fn``; sync or async), as Node's
    constructor options.

    ``_transform`` gets each chunk as it was written: ``str`` stays ``str``
    (so a text pipeline reads ``Transform(str.upper)``), bytes stay bytes.
    What it returns is pushed: in bytes mode a ``str`` is encoded (UTF-8)
    unless this Transform's readable side has an ``encoding``.
    """

    _encode_strings = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # `transform`/`flush` are the same hooks as `_transform`/`_flush`.
        for alias, hook in (("transform", "_transform"), ("flush", "_flush")):
            if alias in cls.__dict__ and hook not in cls.__dict__:
                setattr(cls, hook, cls.__dict__[alias])

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

    async def _transform(self, chunk: Any) -> Any:
        fn = getattr(self, "_transform_fn", None)
        if fn is None:
            return chunk
        result = fn(chunk)
        return await result if inspect.isawaitable(result) else result

    async def _flush(self) -> Any:
        fn = getattr(self, "_flush_fn", None)
        if fn is not None:
            result = fn()
            return await result if inspect.isawaitable(result) else result
        return None

    async def _write(self, chunk: Any) -> None:
        out = await self._transform(chunk)
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
        out = await self._flush()
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
