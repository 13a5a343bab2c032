"""Flow control over TLS, on phaseloop and asyncio.

A 16 MiB write to a reader that holds back, write flow control
(pause_writing/resume_writing at asyncio's SSL limits), read flow control
(pause_reading, and the TCP reading paused while undecrypted records pile
up), a BufferedProtocol over TLS with a buffer smaller than a record,
writelines and bytearray/memoryview writes, sendfile over TLS, and the
buffer limit accessors.
"""
import asyncio
import hashlib
import tempfile

import pytest

from support.net import (HOST, MiB, BlockWriter, Echo, FlowWriter, Recorder, ServerSide,
                      close_server,
                      digest, payload, port_of, run)
from support.tls import tls_pair, tls_stream_pair

SSL_WRITE_HIGH = 512 * 1024   # asyncio's FLOW_CONTROL_HIGH_WATER_SSL_WRITE
SSL_READ_HIGH = 256 * 1024    # asyncio's FLOW_CONTROL_HIGH_WATER_SSL_READ


async def tls_server_and_client(loop, server_ctx, client_ctx, client_factory=Recorder):
    """A TLS server whose protocols are kept (ServerSide), one client, its peer."""
    sides = ServerSide(keep=False)
    server = await loop.create_server(sides, HOST, 0, ssl=server_ctx)
    transport, proto = await loop.create_connection(
        client_factory, HOST, port_of(server), ssl=client_ctx, server_hostname="localhost")
    peer = await sides.first_protocol()
    await peer.made
    return server, transport, proto, peer


def test_16_mib_write_to_a_reader_that_holds_back(loop, server_ctx, client_ctx):
    data = payload(16 * MiB, seed=16)

    async def main():
        server, transport, proto, peer = await tls_server_and_client(loop, server_ctx, client_ctx)
        peer.transport.pause_reading()
        transport.write(data)        # one write: the records pile up below TLS
        await asyncio.sleep(0.1)
        held = peer.size
        peer.transport.resume_reading()
        await peer.received_at_least(len(data))
        transport.close()
        await proto.lost
        await peer.lost
        await close_server(server)
        return held, peer

    held, peer = run(loop, main(), timeout=30)
    assert held == 0
    assert peer.digest() == digest(data)
    assert peer.events == ["made", "data", "eof", "lost"]


def test_write_flow_control_pauses_and_resumes_the_writer(loop, server_ctx, client_ctx):
    """Writes while the transport under TLS is full wait in the SSL transport:
    past the high-water mark the writer is paused, once, and resumed, once,
    when they have gone; every byte arrives."""
    chunk = 64 * 1024

    async def main():
        server, transport, writer, peer = await tls_server_and_client(
            loop, server_ctx, client_ctx, client_factory=FlowWriter)
        assert transport.get_write_buffer_limits() == (SSL_WRITE_HIGH // 4, SSL_WRITE_HIGH)
        peer.transport.pause_reading()
        blocks = BlockWriter(transport, chunk)
        await blocks.write_until_paused(writer, 256 * MiB)
        assert writer.pauses[-1] >= SSL_WRITE_HIGH
        blocks.write(4)            # more writes while paused: no second pause
        writer.resumed = loop.create_future()
        peer.transport.resume_reading()
        await writer.resumed
        await peer.received_at_least(blocks.total)
        transport.close()
        await writer.lost
        await close_server(server)
        return writer, peer.digest(), blocks.digest()

    writer, received, sent = run(loop, main(), timeout=30)
    assert received == sent
    assert len(writer.pauses) == len(writer.resumes) == 1
    assert writer.resumes == [0]


def test_stream_writer_drain_over_tls(loop, server_ctx, client_ctx):
    """asyncio streams: write + drain() in a loop against a slow reader."""
    data = payload(8 * MiB, seed=3)

    async def slow_reader(reader, writer):
        sha, size = hashlib.sha256(), 0
        while size < len(data):
            chunk = await reader.read(256 * 1024)
            sha.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0.001)
        writer.write(f"{size} {sha.hexdigest()}".encode())
        await writer.drain()
        writer.close()

    async def main():
        server, reader, writer = await tls_stream_pair(slow_reader, server_ctx, client_ctx)
        protocol = writer.transport.get_protocol()
        drained_paused = 0
        for i in range(0, len(data), 128 * 1024):
            writer.write(data[i:i + 128 * 1024])
            drained_paused += protocol._paused     # StreamWriter.drain() will wait
            await writer.drain()
        answer = await reader.read()               # up to the server's close_notify
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return answer, drained_paused

    answer, drained_paused = run(loop, main(), timeout=30)
    size, sha = digest(data)
    assert answer == f"{size} {sha}".encode()
    assert drained_paused > 0


def test_pause_reading_holds_data_and_bounds_what_piles_up(loop, server_ctx, client_ctx):
    data = payload(4 * MiB, seed=5)

    async def main():
        server, transport, proto, peer = await tls_server_and_client(loop, server_ctx, client_ctx)
        assert transport.is_reading()
        transport.pause_reading()
        assert not transport.is_reading()
        assert transport.get_read_buffer_limits() == (SSL_READ_HIGH // 4, SSL_READ_HIGH)
        peer.transport.write(data)
        await asyncio.sleep(0.2)
        held = proto.size
        # Past the read high-water mark the TCP reading stops: what waits
        # undecrypted stays under a mark and one read.
        piled = transport.get_read_buffer_size()
        transport.resume_reading()
        await proto.received_at_least(len(data))
        transport.close()
        await proto.lost
        await close_server(server)
        return held, piled, proto

    held, piled, proto = run(loop, main(), timeout=20)
    assert held == 0
    assert SSL_READ_HIGH <= piled <= 2 * SSL_READ_HIGH
    assert proto.digest() == digest(data)


class SmallBuffers(asyncio.BufferedProtocol):
    """A BufferedProtocol whose buffer (a memoryview, or the bytearray
    itself) can be smaller than one TLS record."""

    def __init__(self, size, view=True):
        loop = asyncio.get_running_loop()
        self.buffer = memoryview(bytearray(size)) if view else bytearray(size)
        self.sha = hashlib.sha256()
        self.size = 0
        self.hints = []
        self.events = []
        self.done = loop.create_future()
        self.expected = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport

    def get_buffer(self, sizehint):
        self.hints.append(sizehint)
        return self.buffer

    def buffer_updated(self, nbytes):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.sha.update(self.buffer[:nbytes])
        self.size += nbytes
        if self.size == self.expected:
            self.done.set_result(None)

    def eof_received(self):
        self.events.append("eof")

    def connection_lost(self, exc):
        self.events.append("lost")


async def echo_into_buffers(loop, server_ctx, client_ctx, data, buffer_size, view):
    server = await loop.create_server(Echo, HOST, 0, ssl=server_ctx)
    transport, proto = await loop.create_connection(
        lambda: SmallBuffers(buffer_size, view), HOST, port_of(server), ssl=client_ctx,
        server_hostname="localhost")
    proto.expected = len(data)
    transport.write(data)
    await proto.done
    transport.close()
    await asyncio.sleep(0.05)
    await close_server(server)
    return proto


@pytest.mark.parametrize("buffer_size", [1000, 256 * 1024])
def test_buffered_protocol_over_tls(loop, server_ctx, client_ctx, buffer_size):
    data = payload(3 * MiB + 7, seed=11)
    proto = run(loop, echo_into_buffers(loop, server_ctx, client_ctx, data, buffer_size, True),
                timeout=20)
    assert (proto.size, proto.sha.hexdigest()) == digest(data)
    assert proto.events[:2] == ["made", "data"]
    assert all(isinstance(hint, int) for hint in proto.hints)


def test_buffered_protocol_with_a_bytearray_buffer(phase_loop, server_ctx, client_ctx):
    """get_buffer() may return any writable buffer. asyncio's SSLProtocol
    decrypts the rest of a record into buf[offset:], a copy when buf is a
    bytearray, and the bytes are lost (docs/compat.md); phaseloop writes
    into the buffer itself."""
    data = payload(MiB, seed=12)
    proto = run(phase_loop, echo_into_buffers(phase_loop, server_ctx, client_ctx, data, 1000,
                                              False), timeout=20)
    assert (proto.size, proto.sha.hexdigest()) == digest(data)


def test_writelines_and_mutable_buffers(loop, server_ctx, client_ctx):
    """write() and writelines() take bytes, bytearray and memoryview; a
    bytearray changed after write() is sent as it was at write()."""

    class EarlyWriter(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            buf = bytearray(b"first ")
            transport.write(buf)
            buf[:] = b"XXXXXX"
            view = memoryview(bytearray(b"second "))
            transport.write(view)
            transport.writelines([b"third ", bytearray(b"fourth "), memoryview(b"fifth")])

    async def main():
        server, transport, proto, peer = await tls_server_and_client(
            loop, server_ctx, client_ctx, client_factory=EarlyWriter)
        expected = b"first second third fourth fifth"
        peer.keep = True
        await peer.received_at_least(len(expected))
        transport.close()
        await proto.lost
        await close_server(server)
        return peer.digest(), digest(expected)

    received, expected = run(loop, main())
    assert received == expected


def test_sendfile_over_tls(loop, server_ctx, client_ctx):
    data = payload(3 * MiB + 1, seed=21)

    async def main():
        server, transport, proto, peer = await tls_server_and_client(loop, server_ctx, client_ctx)
        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            sent = await loop.sendfile(transport, f)
        await peer.received_at_least(len(data))
        transport.close()
        await proto.lost
        await close_server(server)
        return sent, peer.digest()

    sent, received = run(loop, main(), timeout=20)
    assert sent == len(data)
    assert received == digest(data)


def test_tls_buffer_limits(loop, server_ctx, client_ctx):
    async def main():
        server, transport, proto = await tls_pair(loop, server_ctx, client_ctx)
        try:
            assert transport.get_write_buffer_size() == 0
            assert transport.get_read_buffer_size() == 0
            transport.set_write_buffer_limits(high=100, low=10)
            assert transport.get_write_buffer_limits() == (10, 100)
            transport.set_write_buffer_limits(low=50)
            assert transport.get_write_buffer_limits() == (50, 200)
            transport.set_write_buffer_limits()
            assert transport.get_write_buffer_limits() == (SSL_WRITE_HIGH // 4, SSL_WRITE_HIGH)
            transport.set_read_buffer_limits(high=1000)
            assert transport.get_read_buffer_limits() == (250, 1000)
            transport.set_read_buffer_limits()
            assert transport.get_read_buffer_limits() == (SSL_READ_HIGH // 4, SSL_READ_HIGH)
            for bad in ({"high": 10, "low": 20}, {"high": 10, "low": -1}):
                with pytest.raises(ValueError):
                    transport.set_write_buffer_limits(**bad)
                with pytest.raises(ValueError):
                    transport.set_read_buffer_limits(**bad)
            with pytest.raises(TypeError):
                transport.write("text")
            with pytest.raises(NotImplementedError):
                transport.write_eof()
            assert not transport.can_write_eof()
            transport.write(b"")          # nothing, no error
        finally:
            transport.close()
            await proto.lost
            await close_server(server)

    run(loop, main())
