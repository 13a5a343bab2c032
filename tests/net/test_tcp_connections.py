"""Making TCP connections, on phaseloop and asyncio: extra info, connection
options (local_addr, happy eyeballs, sock=, connect_accepted_socket) and the
errors asyncio raises, with no fd left behind."""
import asyncio
import errno
import socket

import pytest

from support.net import (Echo, HOST, Recorder, ServerSide, UNREACHABLE, assert_fds_steady,
                         close_server, closed_port, connected, port_of,
                         run)


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
