"""TCP data on 127.0.0.1, on phaseloop and asyncio: every byte arrives (up to
64 MiB, length and SHA-256; Protocol, BufferedProtocol and asyncio's streams),
1,000 concurrent connections, and write flow control (pause_writing and
resume_writing once per crossing)."""
import asyncio
import gc
import hashlib

import pytest

from support.net import (BlockWriter, Echo, FlowWriter, HOST, MiB, Recorder, ServerSide,
                         close_server, connected, digest, echo_once,
                         payload, port_of, run)
from support.loops import open_fd_count


# ---- echo integrity -------------------------------------------------------------

SIZES = [1, 1000, 64 * 1024 + 1, MiB, 64 * MiB]
SIZE_IDS = ["1B", "1000B", "64KiB+1", "1MiB", "64MiB"]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_protocol_echo_keeps_every_byte(loop, size):
    data = payload(size)

    async def main():
        server, transport, proto = await connected(
            loop, client_factory=lambda: Recorder(keep=False))
        transport.write(data)
        transport.write_eof()
        await proto.lost  # the server closes after echoing everything
        await close_server(server)
        return proto

    proto = run(loop, main(), timeout=30)
    assert proto.digest() == digest(data)
    assert proto.events == ["made", "data", "eof", "lost"]
    assert proto.lost_calls == [None]


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_streams_echo_keeps_every_byte(loop, size):
    data = payload(size, seed=1)

    async def handle(reader, writer):
        while chunk := await reader.read(256 * 1024):
            writer.write(chunk)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, HOST, 0)
        reader, writer = await asyncio.open_connection(HOST, port_of(server))

        async def send():
            for offset in range(0, len(data), MiB):
                writer.write(data[offset:offset + MiB])
                await writer.drain()
            writer.write_eof()

        async def receive():
            sha, total = hashlib.sha256(), 0
            while chunk := await reader.read(256 * 1024):
                sha.update(chunk)
                total += len(chunk)
            return total, sha.hexdigest()

        _, result = await asyncio.gather(send(), receive())
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return result

    assert run(loop, main(), timeout=30) == digest(data)


def test_buffered_protocol_receives_every_byte(loop):
    data = payload(2 * MiB, seed=2)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(1000)
            self.sha = hashlib.sha256()
            self.size = 0
            self.hints = []
            self.largest = 0
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            self.hints.append(sizehint)
            return memoryview(self.buf)

        def buffer_updated(self, nbytes):
            self.largest = max(self.largest, nbytes)
            self.sha.update(self.buf[:nbytes])
            self.size += nbytes

        def eof_received(self):
            return None

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        server, transport, proto = await connected(loop, client_factory=Buffered)
        transport.write(data)
        transport.write_eof()
        assert await proto.lost is None
        await close_server(server)
        return proto

    proto = run(loop, main())
    assert (proto.size, proto.sha.hexdigest()) == digest(data)
    assert 0 < proto.largest <= 1000
    assert proto.hints and all(isinstance(h, int) for h in proto.hints)


def test_buffered_protocol_as_server(loop):

    class BufferedEcho(asyncio.BufferedProtocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = bytearray(64)

        def get_buffer(self, sizehint):
            return self.buf

        def buffer_updated(self, nbytes):
            self.transport.write(bytes(self.buf[:nbytes]))

    data = payload(100000, seed=4)

    async def main():
        server, transport, proto = await connected(loop, server_factory=BufferedEcho)
        transport.write(data)
        transport.write_eof()
        await proto.lost
        await close_server(server)
        return bytes(proto.data)

    assert run(loop, main()) == data


def test_empty_buffer_from_get_buffer_is_a_fatal_error(loop):
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

    class EmptyBuffer(asyncio.BufferedProtocol):
        def __init__(self):
            self.lost = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            return bytearray()

        def buffer_updated(self, nbytes):
            raise AssertionError("nothing can have been read")

        def connection_lost(self, exc):
            self.lost.set_result(exc)

    async def main():
        # The echo server sends the byte back; reading it into an empty
        # buffer is the error.
        server, transport, proto = await connected(loop, client_factory=EmptyBuffer)
        transport.write(b"x")
        exc = await proto.lost
        await close_server(server)
        return exc

    assert isinstance(run(loop, main()), RuntimeError)
    assert errors and isinstance(errors[0].get("exception"), RuntimeError)


# ---- many connections -------------------------------------------------------------


def test_thousand_concurrent_connections(loop, many_fds):
    count = 1000

    class Counted(Echo):
        """Echo that tracks how many connections the server holds at once."""
        open_now = 0
        most_open = 0
        reached = None  # (number, future): set when open_now hits number

        def connection_made(self, transport):
            super().connection_made(transport)
            Counted.open_now += 1
            Counted.most_open = max(Counted.most_open, Counted.open_now)
            Counted.check()

        def connection_lost(self, exc):
            Counted.open_now -= 1
            Counted.check()

        @classmethod
        async def wait_for(cls, number):
            cls.reached = (number, asyncio.get_running_loop().create_future())
            cls.check()
            await cls.reached[1]

        @classmethod
        def check(cls):
            if cls.reached and cls.open_now == cls.reached[0] and not cls.reached[1].done():
                cls.reached[1].set_result(None)

    async def client(i, port):
        transport, proto = await loop.create_connection(Recorder, HOST, port)
        message = b"client %d\n" % i
        transport.write(message)
        await proto.received_at_least(len(message))
        assert bytes(proto.data) == message
        return transport, proto

    async def main():
        server = await loop.create_server(Counted, HOST, 0, backlog=count)
        port = port_of(server)
        # A first connection opens whatever the loop opens lazily.
        assert await echo_once(loop, HOST, port) == b"ping"
        await Counted.wait_for(0)
        gc.collect()
        start = open_fd_count()
        Counted.most_open = 0
        clients = await asyncio.gather(*(client(i, port) for i in range(count)))
        await Counted.wait_for(count)
        assert Counted.most_open == count
        for transport, _ in clients:
            transport.close()
        await asyncio.gather(*(proto.lost for _, proto in clients))
        await Counted.wait_for(0)
        gc.collect()
        fds_after = open_fd_count()
        await close_server(server)
        return clients, start, fds_after

    clients, start, fds_after = run(loop, main(), timeout=30)
    assert all(proto.lost_calls == [None] for _, proto in clients)
    assert fds_after == start


# ---- flow control ---------------------------------------------------------------------


def test_flow_control_pauses_once_per_crossing(loop):
    high, low, chunk = 64 * 1024, 16 * 1024, 16 * 1024
    sides = ServerSide(keep=False)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, writer = await loop.create_connection(FlowWriter, HOST, port_of(server))
        transport.set_write_buffer_limits(high=high, low=low)
        reader = await sides.first_protocol()
        await reader.made
        blocks = BlockWriter(transport, chunk)
        for cycle in range(1, 3):
            reader.transport.pause_reading()
            await blocks.write_until_paused(writer, 64 * MiB)
            assert len(writer.pauses) == cycle
            assert high < writer.pauses[-1] <= high + chunk
            blocks.write(3)  # more writes while paused: no second pause
            assert len(writer.pauses) == cycle
            assert transport.get_write_buffer_size() <= high + 4 * chunk
            writer.resumed = loop.create_future()
            reader.transport.resume_reading()
            await writer.resumed
            assert len(writer.resumes) == cycle
            assert writer.resumes[-1] <= low
        transport.write_eof()
        await reader.eof
        transport.close()
        await writer.lost
        await close_server(server)
        return reader.digest(), blocks.digest(), writer

    received, sent, writer = run(loop, main(), timeout=20)
    assert received == sent
    assert len(writer.pauses) == len(writer.resumes) == 2


def test_write_buffer_limits(loop):

    async def main():
        server, transport, _ = await connected(loop)
        try:
            assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            transport.set_write_buffer_limits(high=100, low=10)
            assert transport.get_write_buffer_limits() == (10, 100)
            transport.set_write_buffer_limits(high=400)
            assert transport.get_write_buffer_limits() == (100, 400)
            transport.set_write_buffer_limits(low=50)
            assert transport.get_write_buffer_limits() == (50, 200)
            transport.set_write_buffer_limits(high=0)
            assert transport.get_write_buffer_limits() == (0, 0)
            transport.set_write_buffer_limits()
            assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=10, low=20)
            with pytest.raises(ValueError):
                transport.set_write_buffer_limits(high=10, low=-1)
            assert transport.get_write_buffer_size() == 0
        finally:
            transport.close()
            await close_server(server)

    run(loop, main())
