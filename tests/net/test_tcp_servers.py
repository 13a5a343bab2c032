"""TCP servers, on phaseloop and asyncio: the Server API (start_serving,
serve_forever, close, close_clients, wait_closed...), backlog and reuse
options, and loop.sendfile over a transport."""
import asyncio
import io
import socket
import sys

import pytest

from support.net import (Echo, HOST, MiB, Recorder, ServerSide, WAIT, close_server, digest,
                         echo_once, payload, port_of, run)


# ---- servers ----------------------------------------------------------------------------


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
                assert await echo_once(loop, host, port) == b"ping"
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
                assert await echo_once(loop, HOST, port, b"%d" % i) == b"%d" % i
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
            assert await echo_once(loop, HOST, port) == b"ping"
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
            assert await echo_once(loop, HOST, port) == b"ping"
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
        assert await echo_once(loop, HOST, port) == b"ping"
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
            assert await echo_once(loop, HOST, port_of(server)) == b"ping"
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
