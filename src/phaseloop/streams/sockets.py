"""Sockets as Duplex streams: connect() and serve() give SocketStreams."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from .core import Duplex

__all__ = ["SocketStream", "connect", "serve"]


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
