"""TCP transports and servers on 127.0.0.1, on phaseloop and asyncio.

create_connection / create_server / connect_accepted_socket with protocols
(Protocol and BufferedProtocol) and with asyncio's streams: echo integrity
up to 64 MiB (length and SHA-256), 1,000 concurrent connections, flow
control, close/abort/reset semantics, half-close, reading pauses, extra
info, the Server API, and the errors asyncio raises (with the process's fd
count back where it started after each error path).

The helpers and protocols (run, payload, digest, assert_fds_steady,
Recorder, Echo, ServerSide...) are support/net.py's, shared with the other
transport tests.
"""
import asyncio
import errno
import gc
import hashlib
import io
import logging
import socket
import sys

import pytest

from support.net import (HOST, UNREACHABLE, WAIT, BlockWriter, Echo, FlowWriter, MiB, Recorder,
                         ServerSide,
                         assert_fds_steady, close_server, closed_port, connected, digest,
                         payload, port_of, run, set_linger_zero)
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
        assert await _echo_once(loop, HOST, port) == b"ping"
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


# ---- extra info --------------------------------------------------------------------------


def test_get_extra_info(loop):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, _ = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        try:
            sock = transport.get_extra_info("socket")
            assert sock.family == socket.AF_INET
            assert sock.type == socket.SOCK_STREAM
            assert transport.get_extra_info("sockname") == sock.getsockname()
            assert transport.get_extra_info("peername") == (HOST, port_of(server))
            assert peer.transport.get_extra_info("peername") == sock.getsockname()
            assert peer.transport.get_extra_info("sockname") == (HOST, port_of(server))
            for key in ("sslcontext", "ssl_object", "peercert", "cipher"):
                assert transport.get_extra_info(key) is None
            assert transport.get_extra_info("no such key") is None
            assert transport.get_extra_info("no such key", 42) == 42
            for side in (transport, peer.transport):
                nodelay = side.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert nodelay != 0
        finally:
            transport.close()
            await close_server(server)

    run(loop, main())


def test_transport_protocol_accessors(loop):

    async def main():
        server, transport, proto = await connected(loop)
        assert transport.get_protocol() is proto
        other = Recorder()
        transport.set_protocol(other)
        assert transport.get_protocol() is other
        transport.write(b"to the new protocol")
        await other.received_at_least(19)
        transport.close()
        await other.lost
        await close_server(server)
        return proto, other

    proto, other = run(loop, main())
    assert proto.size == 0 and bytes(other.data) == b"to the new protocol"


def test_a_transports_method_can_be_replaced_on_the_instance(loop):
    # asyncio's transports are Python objects; test suites replace a method
    # on one connection (uvicorn's websocket tests: `transport.write = ...`).
    swallowed = []

    async def main():
        server, transport, proto = await connected(loop)
        transport.write = swallowed.append
        transport.write(b"never sent")
        assert transport.get_write_buffer_size() == 0
        del transport.write
        transport.write(b"sent")
        transport.close()
        await proto.lost
        await close_server(server)

    run(loop, main())
    assert swallowed == [b"never sent"]


# ---- connection options and errors -------------------------------------------------------


def test_connect_with_local_addr(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        transport, proto = await loop.create_connection(
            Recorder, HOST, port_of(server), local_addr=(HOST, 0))
        sockname = transport.get_extra_info("sockname")
        transport.close()
        await proto.lost
        await close_server(server)
        return sockname

    host, port = run(loop, main())
    assert host == HOST and port > 0


def test_connect_with_sock(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        sock = socket.create_connection((HOST, port_of(server)))
        transport, proto = await loop.create_connection(Recorder, sock=sock)
        assert transport.get_extra_info("socket").fileno() == sock.fileno()
        transport.write(b"via sock")
        await proto.received_at_least(8)
        transport.close()
        await proto.lost
        await close_server(server)
        return sock, proto

    sock, proto = run(loop, main())
    assert bytes(proto.data) == b"via sock"
    assert sock.fileno() == -1  # the transport owned and closed it


def test_connect_to_localhost_with_happy_eyeballs(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        transport, proto = await loop.create_connection(
            Recorder, "localhost", port_of(server), happy_eyeballs_delay=0.1, interleave=1)
        transport.write(b"hi")
        await proto.received_at_least(2)
        transport.close()
        await close_server(server)

    run(loop, main())


def test_connection_refused(loop):

    def refused():
        with pytest.raises(ConnectionRefusedError):
            run(loop, loop.create_connection(Recorder, HOST, closed_port()))

    assert_fds_steady(loop, refused)


# TCP to a multicast address fails in the kernel's connect() with
# ENETUNREACH, before any packet leaves: an "unreachable" error offline.


def test_network_unreachable(loop):

    def unreachable():
        with pytest.raises(OSError) as info:
            run(loop, loop.create_connection(Recorder, *UNREACHABLE))
        assert info.value.errno == errno.ENETUNREACH

    assert_fds_steady(loop, unreachable)


def test_dns_failure_raises_gaierror(loop):

    def unknown_host():
        with pytest.raises(socket.gaierror):
            run(loop, loop.create_connection(Recorder, "nonexistent.invalid", 80))
        with pytest.raises(socket.gaierror):
            run(loop, loop.create_server(Echo, "nonexistent.invalid", 0))

    assert_fds_steady(loop, unknown_host)


def test_create_server_on_a_port_in_use(loop):
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen(1)

        def port_in_use():
            with pytest.raises(OSError) as info:
                run(loop, loop.create_server(Echo, HOST, taken.getsockname()[1]))
            assert info.value.errno == errno.EADDRINUSE

        assert_fds_steady(loop, port_in_use)


def test_local_addr_in_use(loop):
    server = run(loop, loop.create_server(Echo, HOST, 0))
    port = port_of(server)

    def local_addr_in_use():
        with pytest.raises(OSError) as info:
            run(loop, loop.create_connection(Recorder, HOST, port, local_addr=(HOST, port)))
        assert info.value.errno == errno.EADDRINUSE

    try:
        assert_fds_steady(loop, local_addr_in_use)
    finally:
        run(loop, close_server(server))


def test_bad_arguments_raise_like_asyncio(loop):
    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        bad = [
            lambda: loop.create_connection(Recorder, HOST, 80, sock=tcp),
            lambda: loop.create_connection(Recorder),
            lambda: loop.create_connection(Recorder, HOST, 80, server_hostname="x"),
            lambda: loop.create_connection(Recorder, HOST, 80, ssl_handshake_timeout=1),
            lambda: loop.create_connection(Recorder, HOST, 80, ssl_shutdown_timeout=1),
            lambda: loop.create_connection(Recorder, sock=udp),
            lambda: loop.create_server(Echo, HOST, 0, sock=tcp),
            lambda: loop.create_server(Echo, sock=udp),
            lambda: loop.create_server(Echo, HOST, 0, ssl_handshake_timeout=1),
            lambda: loop.create_server(Echo, HOST, 0, ssl_shutdown_timeout=1),
            lambda: loop.connect_accepted_socket(Recorder, udp),
        ]

        def each_raises():
            for make in bad:
                with pytest.raises(ValueError):
                    run(loop, make())

        assert_fds_steady(loop, each_raises)


def test_fd_count_after_many_failed_connects(loop):

    async def fifty_refused():
        port = closed_port()
        results = await asyncio.gather(
            *(loop.create_connection(Recorder, HOST, port) for _ in range(50)),
            return_exceptions=True)
        assert all(isinstance(r, ConnectionRefusedError) for r in results), results

    assert_fds_steady(loop, lambda: run(loop, fifty_refused()))


def test_fd_count_after_connections_close(loop):

    async def served_and_closed():
        server = await loop.create_server(Echo, HOST, 0)
        for _ in range(10):
            transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
            transport.write(b"x")
            await proto.received_at_least(1)
            transport.close()
            await proto.lost
        await close_server(server)

    assert_fds_steady(loop, lambda: run(loop, served_and_closed()))


# ---- servers ----------------------------------------------------------------------------


async def _echo_once(loop, host, port, message=b"ping"):
    transport, proto = await loop.create_connection(Recorder, host, port)
    transport.write(message)
    await proto.received_at_least(len(message))
    transport.close()
    await proto.lost
    return bytes(proto.data)


def _has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_server_on_several_hosts(loop):

    async def main():
        server = await loop.create_server(Echo, [HOST, "::1"], 0)
        try:
            assert len(server.sockets) == 2
            families = sorted(s.family for s in server.sockets)
            assert families == sorted([socket.AF_INET, socket.AF_INET6])
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                assert await _echo_once(loop, host, port) == b"ping"
        finally:
            await close_server(server)

    run(loop, main())


def test_reuse_port_lets_two_servers_share_a_port(loop):
    if not hasattr(socket, "SO_REUSEPORT"):
        pytest.skip("no SO_REUSEPORT")

    async def main():
        first = await loop.create_server(Echo, HOST, 0, reuse_port=True)
        port = port_of(first)
        second = await loop.create_server(Echo, HOST, port, reuse_port=True)
        try:
            assert port_of(second) == port
            for server in (first, second):
                opt = server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
                assert opt != 0
            for i in range(4):
                assert await _echo_once(loop, HOST, port, b"%d" % i) == b"%d" % i
        finally:
            await close_server(first)
            await close_server(second)

    run(loop, main())


def test_server_from_a_listening_sock(loop):
    sock = socket.socket()
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]

    async def main():
        server = await loop.create_server(Echo, sock=sock)
        try:
            assert port_of(server) == port
            assert await _echo_once(loop, HOST, port) == b"ping"
        finally:
            await close_server(server)

    run(loop, main())
    assert sock.fileno() == -1  # closed along with the server


def test_start_serving_false_then_start_serving(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0, start_serving=False)
        try:
            assert not server.is_serving()
            port = port_of(server)
            await server.start_serving()
            assert server.is_serving()
            await server.start_serving()  # a second call does nothing
            assert await _echo_once(loop, HOST, port) == b"ping"
        finally:
            await close_server(server)
        assert not server.is_serving()

    run(loop, main())


def test_serve_forever_cancelled_closes_the_server(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0, start_serving=False)
        port = port_of(server)
        task = loop.create_task(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        assert await _echo_once(loop, HOST, port) == b"ping"
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # already being served forever
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, HOST, port)
        with pytest.raises(RuntimeError):
            await server.serve_forever()  # closed

    run(loop, main())


def test_server_api(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        assert server.get_loop() is loop
        assert server.is_serving()
        sockets = server.sockets
        assert len(sockets) == 1 and sockets[0].family == socket.AF_INET
        assert sockets[0].getsockname()[0] == HOST
        server.close()
        assert not server.is_serving()
        assert list(server.sockets) == []
        await server.wait_closed()
        server.close()  # closing twice is fine
        await server.wait_closed()

    run(loop, main())


def test_server_async_with(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        async with server as entered:
            assert entered is server
            assert await _echo_once(loop, HOST, port_of(server)) == b"ping"
        assert not server.is_serving()

    run(loop, main())


def test_closing_the_server_keeps_open_connections(loop):

    async def main():
        server = await loop.create_server(Echo, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        server.close()
        transport.write(b"still here")
        await proto.received_at_least(10)
        transport.close()
        await proto.lost
        await server.wait_closed()
        return proto

    assert bytes(run(loop, main()).data) == b"still here"


@pytest.mark.parametrize("method", ["close_clients", "abort_clients"])
def test_server_close_or_abort_clients(loop, loop_name, method):
    if loop_name == "asyncio" and sys.version_info < (3, 13):
        pytest.skip(f"asyncio's Server.{method} is new in Python 3.13")
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        peer = await sides.first_protocol()
        await peer.made
        server.close()
        getattr(server, method)()
        await proto.lost
        await peer.lost
        await server.wait_closed()
        return peer

    peer = run(loop, main())
    assert len(peer.lost_calls) == 1


def test_connect_accepted_socket(loop):
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()

    async def main():
        transport, proto = await loop.connect_accepted_socket(Echo, conn)
        assert transport.get_extra_info("peername") == client.getsockname()
        await loop.run_in_executor(None, client.sendall, b"accepted")
        got = b""
        client.settimeout(WAIT)
        while len(got) < 8:
            got += await loop.run_in_executor(None, client.recv, 100)
        transport.close()
        return got

    with client:
        assert run(loop, main()) == b"accepted"


# ---- loop.sendfile over a transport ----------------------------------------------------


def test_loop_sendfile_over_tcp(loop, tmp_path):
    data = payload(2 * MiB + 5, seed=11)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    sides = ServerSide(keep=False)

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        transport.write(b"head")
        with open(path, "rb") as f:
            sent = await loop.sendfile(transport, f)
            part = await loop.sendfile(transport, f, 10, 1000)
            position = f.tell()
        fallback = await loop.sendfile(transport, io.BytesIO(b"bytesio"))
        transport.write(b"tail")
        transport.close()
        peer = await sides.first_protocol()
        await peer.lost
        await close_server(server)
        return sent, part, position, fallback, peer

    sent, part, position, fallback, peer = run(loop, main(), timeout=15)
    assert (sent, part, position, fallback) == (len(data), 1000, 1010, 7)
    assert peer.digest() == digest(b"head" + data + data[10:1010] + b"bytesio" + b"tail")


def test_close_transports_closes_every_connection_after_flushing(phase_loop):
    # phaseloop's own method (phaseloop.errors' strict mode calls it): every
    # transport closes, a server's connections and the loop's own clients,
    # and what was written is still sent.  The peer is a plain socket, so
    # that it can read after the loop's transports are gone.
    loop = phase_loop
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0)
        inbound = socket.create_connection((HOST, port_of(server)))
        listener = socket.create_server((HOST, 0))
        transport, proto = await loop.create_connection(Recorder, *listener.getsockname())
        outbound, _ = listener.accept()
        listener.close()
        peer = await sides.first_protocol()
        await peer.made
        transport.write(b"x" * 200_000)      # more than the socket takes at once
        loop.close_transports()
        assert transport.is_closing()
        await proto.lost
        await peer.lost
        await close_server(server)
        return inbound, outbound

    inbound, outbound = run(loop, main())
    with inbound, outbound:
        outbound.settimeout(WAIT)
        received = b"".join(iter(lambda: outbound.recv(65536), b""))
        inbound.settimeout(WAIT)
        assert inbound.recv(10) == b""       # the server's side closed too
    assert received == b"x" * 200_000
