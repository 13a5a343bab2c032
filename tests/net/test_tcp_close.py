"""Closing TCP connections, on phaseloop and asyncio: bytes written before
close() are delivered, abort() drops them, resets from either side, writes
after close, half-close (write_eof, eof_received) and pausing reads."""
import asyncio
import logging
import socket

import pytest

from support.net import (HOST, MiB, Recorder, ServerSide, close_server, connected, digest, payload,
                         port_of, run, set_linger_zero)


# ---- close, abort, reset --------------------------------------------------------------


def test_bytes_written_before_close_are_delivered(loop):
    data = payload(8 * MiB, seed=9)
    sides = ServerSide(keep=False)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        transport.write(data[:MiB])
        transport.writelines([data[MiB:2 * MiB], memoryview(data)[2 * MiB:]])
        transport.close()
        assert transport.is_closing()
        transport.close()  # a second close is harmless
        assert await proto.lost is None
        peer = await sides.first_protocol()
        await peer.lost
        await close_server(server)
        return peer, proto

    peer, proto = run(loop, main(), timeout=15)
    assert peer.digest() == digest(data)
    assert peer.events == ["made", "data", "eof", "lost"]
    assert proto.lost_calls == [None]


async def _fill_until_buffered(transport, limit=64 * MiB):
    """Write until the transport holds bytes it could not hand to the kernel."""
    transport.set_write_buffer_limits(high=limit)
    block = b"a" * (256 * 1024)
    total = 0
    while transport.get_write_buffer_size() == 0:
        assert total < limit, "the kernel took everything"
        transport.write(block)
        total += len(block)
        await asyncio.sleep(0)
    return total


def test_abort_drops_buffered_bytes(loop):
    sides = ServerSide(keep=False)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        peer.transport.pause_reading()
        total = await _fill_until_buffered(transport)
        buffered = transport.get_write_buffer_size()
        transport.abort()
        assert transport.is_closing()
        assert await proto.lost is None
        peer.transport.resume_reading()
        await peer.lost
        await asyncio.sleep(0.01)
        await close_server(server)
        return total, buffered, peer, proto

    total, buffered, peer, proto = run(loop, main(), timeout=15)
    assert buffered > 0
    assert peer.size <= total - buffered
    assert proto.lost_calls == [None]


def test_connection_lost_once_with_error_when_peer_resets(loop):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        raw = socket.create_connection((HOST, port_of(server)))
        peer = await sides.first_protocol()
        await peer.made
        set_linger_zero(raw)
        raw.close()
        exc = await peer.lost
        await asyncio.sleep(0.02)  # time for a (wrong) second call
        await close_server(server)
        return exc, peer

    exc, peer = run(loop, main())
    assert isinstance(exc, ConnectionResetError)
    assert peer.lost_calls == [exc]


def test_client_sees_reset_from_server(loop):

    class ResetAtOnce(asyncio.Protocol):
        def connection_made(self, transport):
            set_linger_zero(transport.get_extra_info("socket"))
            transport.abort()

    async def main():
        server, transport, proto = await connected(loop, server_factory=ResetAtOnce)
        exc = await proto.lost
        await asyncio.sleep(0.02)
        await close_server(server)
        return exc, proto

    exc, proto = run(loop, main())
    assert isinstance(exc, ConnectionResetError)
    assert proto.lost_calls == [exc]


def test_peer_reset_mid_write(loop):
    sides = ServerSide(keep=False)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        peer.transport.pause_reading()
        await _fill_until_buffered(transport)
        set_linger_zero(peer.transport.get_extra_info("socket"))
        peer.transport.abort()
        exc = await proto.lost
        await asyncio.sleep(0.02)
        await close_server(server)
        return exc, proto

    exc, proto = run(loop, main())
    assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
    assert proto.lost_calls == [exc]
    assert proto.transport.get_write_buffer_size() == 0


def test_write_after_close_is_ignored_with_a_warning(loop, caplog):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        transport.write(b"before")
        transport.close()
        for _ in range(10):
            transport.write(b"after")
        await proto.lost
        for _ in range(10):
            transport.write(b"after lost")
        peer = await sides.first_protocol()
        await peer.lost
        await close_server(server)
        return peer

    with caplog.at_level(logging.WARNING):
        peer = run(loop, main())
    assert bytes(peer.data) == b"before"
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_write_misuse_raises(loop):

    async def main():
        server, transport, _ = await connected(loop)
        try:
            with pytest.raises(TypeError):
                transport.write("text")
            with pytest.raises(TypeError):
                transport.write(12)
            transport.write(b"")  # empty writes are allowed and send nothing
            assert transport.can_write_eof()
            transport.write_eof()
            with pytest.raises(RuntimeError):
                transport.write(b"after eof")
        finally:
            transport.close()
            await close_server(server)

    run(loop, main())


# ---- half-close and reading ------------------------------------------------------------


def test_write_eof_half_closes(loop):

    class Replier(Recorder):
        """Answers after the client's EOF, on the still-open write side."""

        def eof_received(self):
            super().eof_received()
            self.transport.write(b"reply:" + bytes(self.data))
            asyncio.get_running_loop().call_soon(self.transport.close)
            return True

    sides = ServerSide(Replier)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        transport.write(b"hello")
        transport.write_eof()
        await proto.lost
        peer = await sides.first_protocol()
        await peer.lost
        await close_server(server)
        return proto, peer

    proto, peer = run(loop, main())
    assert bytes(proto.data) == b"reply:hello"
    assert proto.events == ["made", "data", "eof", "lost"]
    assert peer.events == ["made", "data", "eof", "lost"]
    assert proto.lost_calls == [None] and peer.lost_calls == [None]


def test_eof_received_returning_true_keeps_writing_open(loop):

    class SaysByeFirst(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"bye")
            transport.write_eof()

    class Client(Recorder):
        def eof_received(self):
            super().eof_received()
            self.transport.write(b"late words")
            self.transport.close()
            return True

    sides = ServerSide(SaysByeFirst)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        _, proto = await loop.create_connection(Client, HOST, port_of(server))
        await proto.lost
        peer = await sides.first_protocol()
        await peer.lost
        await close_server(server)
        return proto, peer

    proto, peer = run(loop, main())
    assert bytes(proto.data) == b"bye"
    assert bytes(peer.data) == b"late words"
    assert peer.events == ["made", "data", "eof", "lost"]


def test_pause_and_resume_reading(loop):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        assert transport.is_reading()
        transport.pause_reading()
        transport.pause_reading()  # pausing twice is allowed
        assert not transport.is_reading()
        peer.transport.write(b"held back")
        await asyncio.sleep(0.05)
        assert proto.size == 0
        transport.resume_reading()
        transport.resume_reading()
        assert transport.is_reading()
        await proto.received_at_least(9)
        transport.close()
        assert not transport.is_reading()
        await proto.lost
        await close_server(server)
        return proto

    assert bytes(run(loop, main()).data) == b"held back"


def test_eof_is_not_delivered_while_paused(loop):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        transport.pause_reading()
        peer.transport.write(b"last")
        peer.transport.close()
        await peer.lost
        await asyncio.sleep(0.05)
        assert proto.events == ["made"]
        transport.resume_reading()
        await proto.lost
        await close_server(server)
        return proto

    proto = run(loop, main())
    assert proto.events == ["made", "data", "eof", "lost"]
    assert bytes(proto.data) == b"last"
