"""A TLS connection's life, on phaseloop and asyncio.

close_notify each way and an unclean EOF (the events each side sees, in
order), 1,000 concurrent handshakes (fds and memory back where they
started), start_tls on the server and on the client with no byte lost
between the plain and the TLS phase, and PHASELOOP_TLS, the switch back to
asyncio's SSLProtocol.
"""
import asyncio
import gc
import socket
import ssl
import sys
import weakref

import pytest

import phaseloop
from support.loops import open_fd_count
from support.net import (HOST, WAIT, Echo, Recorder, ServerSide, assert_fds_steady, close_server,
                      port_of, run)
from support.tls import tls_pair, tls_round_trip, tls_stream_pair
from support.tls import BioPeer, in_thread


@pytest.mark.parametrize("closing", ["client", "server"])
def test_close_notify_each_way(loop, server_ctx, client_ctx, closing):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0, ssl=server_ctx)
        transport, proto = await loop.create_connection(
            Recorder, HOST, port_of(server), ssl=client_ctx, server_hostname="localhost",
            ssl_shutdown_timeout=30)
        peer = await sides.first_protocol()
        await peer.made
        transport.write(b"to server")
        peer.transport.write(b"to client")
        await peer.received_at_least(9)
        await proto.received_at_least(9)
        started = loop.time()
        (transport if closing == "client" else peer.transport).close()
        await asyncio.gather(proto.lost, peer.lost)
        elapsed = loop.time() - started
        await close_server(server)
        return proto, peer, elapsed

    proto, peer, elapsed = run(loop, main())
    # The side that closes sends close_notify and waits for the other's; the
    # other gets it, answers and closes. Both protocols hear eof_received (as
    # on asyncio: the closing side when the answer comes), then
    # connection_lost(None).
    assert proto.events == peer.events == ["made", "data", "eof", "lost"]
    assert proto.lost_calls == peer.lost_calls == [None]
    assert elapsed < WAIT          # not the 30 s shutdown timeout


def test_unclean_eof_from_the_peer(loop, server_ctx, client_ctx):
    """TCP ends without close_notify: as asyncio, eof_received, then
    connection_lost(None)."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(WAIT)

    def server_that_just_closes():
        conn, _ = listener.accept()
        peer = BioPeer(conn, server_ctx, server_side=True)
        peer.handshake()
        peer.sock.sendall(peer.records(b"last words"))
        peer.close()

    async def main():
        join = in_thread(server_that_just_closes)
        transport, proto = await loop.create_connection(
            Recorder, HOST, listener.getsockname()[1], ssl=client_ctx,
            server_hostname="localhost")
        exc = await proto.lost
        await loop.run_in_executor(None, join)
        return proto, exc

    with listener:
        proto, exc = run(loop, main())
    assert bytes(proto.data) == b"last words"
    assert proto.events == ["made", "data", "eof", "lost"]
    assert exc is None


def test_thousand_concurrent_handshakes(loop, server_ctx, client_ctx, many_fds):
    count = 1000
    made = []

    class Counted(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            made.append(weakref.ref(transport))

    async def round_of(server):
        results = await asyncio.gather(*(tls_round_trip(loop, port_of(server), client_ctx, i,
                                                        Counted) for i in range(count)))
        await asyncio.sleep(0.05)      # the server sides' connection_lost
        return results

    async def main():
        server = await loop.create_server(Echo, HOST, 0, ssl=server_ctx, backlog=count)
        assert all(await round_of(server))           # what a loop makes once, made
        gc.collect()
        fds, blocks = open_fd_count(), sys.getallocatedblocks()
        made.clear()
        assert all(await round_of(server))
        gc.collect()
        fds_after, blocks_after = open_fd_count(), sys.getallocatedblocks()
        alive = sum(ref() is not None for ref in made)
        await close_server(server)
        return fds, fds_after, blocks, blocks_after, alive

    fds, fds_after, blocks, blocks_after, alive = run(loop, main(), timeout=120)
    assert fds_after == fds
    assert alive == 0              # every client transport freed
    # Python memory: under a tenth of a block per connection (a leak of one
    # object per connection would be a thousand blocks).
    assert blocks_after - blocks < count // 10


async def starttls_with_read_ahead(loop, server_ctx, client_ctx):
    """A server that reads a STARTTLS line with asyncio streams then calls
    start_tls, and a client that sends the line and its ClientHello in one
    segment: the server's answer to the client's first TLS line (None if the
    handshake failed) and the loop's exception reports."""

    async def handle(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        await writer.start_tls(server_ctx, ssl_handshake_timeout=1.0)
        writer.write(b"secret " + await reader.readline())
        await writer.drain()
        writer.close()

    def client(port):
        peer = BioPeer.connect(port, client_ctx)
        try:
            peer.sock.sendall(b"STARTTLS\n" + peer.first_flight())
            peer.handshake()
            peer.sock.sendall(peer.records(b"hello\n"))
            return peer.read_exactly(13)
        except (ConnectionError, OSError):
            return None
        finally:
            peer.close()

    errors = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))
    server = await asyncio.start_server(handle, HOST, 0)
    answer = await loop.run_in_executor(None, client, port_of(server))
    await close_server(server)
    return answer, errors


def test_start_tls_on_the_server_keeps_a_client_hello_read_ahead(loop, server_ctx, client_ctx):
    """The client sends its STARTTLS line and its ClientHello in one segment
    (a PROXY header does the same): the server's StreamReader has read the
    ClientHello before start_tls. phaseloop hands those bytes to the TLS
    layer. asyncio's loop up to Python 3.13.0 leaves them in the reader and
    the handshake waits for bytes that already came (CPython gh-142352,
    docs/compat.md): here its handshake times out."""
    answer, errors = run(loop, starttls_with_read_ahead(loop, server_ctx, client_ctx))
    if isinstance(loop, phaseloop.Loop):
        assert answer == b"secret hello\n"
        assert errors == []
    else:
        assert answer in (b"secret hello\n", None)


def test_read_ahead_reaches_asyncios_tls_layer_too(phase_loop, server_ctx, client_ctx,
                                                   monkeypatch):
    monkeypatch.setenv("PHASELOOP_TLS", "asyncio")
    answer, errors = run(phase_loop, starttls_with_read_ahead(phase_loop, server_ctx, client_ctx))
    assert answer == b"secret hello\n"
    assert errors == []


def test_writes_before_an_error_in_data_received_go_out(loop, server_ctx, client_ctx):
    """The records a data_received() wrote wait for it to return: when it
    raises instead, they still leave before the connection is closed."""

    class WritesThenFails(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(b"first ")
            self.transport.write(b"second")
            raise RuntimeError("the protocol failed")

    async def main():
        errors = []
        loop.set_exception_handler(lambda lp, context: errors.append(context))
        server, transport, proto = await tls_pair(loop, server_ctx, client_ctx,
                                                  server_factory=WritesThenFails)
        transport.write(b"go")
        await proto.lost
        await close_server(server)
        return proto, errors

    proto, errors = run(loop, main())
    assert bytes(proto.data) == b"first second"
    assert proto.events[:2] == ["made", "data"] and proto.events[-1] == "lost"
    assert [type(e.get("exception")) for e in errors] == [RuntimeError]


def test_start_tls_on_the_client_keeps_data_behind_the_handshake(loop, certificate, client_ctx):
    """The server's first application data comes in the same segment as the
    end of its handshake (TLS 1.2: its Finished): the client gets it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    listener = socket.create_server((HOST, 0))
    listener.settimeout(WAIT)

    def server():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(WAIT)
            assert conn.recv(100) == b"STARTTLS\n"
            conn.sendall(b"OK\n")
            peer = BioPeer(conn, context, server_side=True)
            while True:
                try:
                    peer.tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if peer.outgoing.pending:
                        conn.sendall(peer.outgoing.read())
                    peer._receive()
            finished = peer.outgoing.read()
            conn.sendall(finished + peer.records(b"welcome"))   # one segment
            return peer.read_exactly(3)

    class Client(Recorder):
        def __init__(self):
            super().__init__()
            self.ok = asyncio.get_running_loop().create_future()

        def data_received(self, data):
            if not self.ok.done():
                assert data == b"OK\n"
                self.ok.set_result(None)
                return
            super().data_received(data)

    async def main():
        join = in_thread(server)
        plain, proto = await loop.create_connection(Client, HOST, listener.getsockname()[1])
        plain.write(b"STARTTLS\n")
        await proto.ok
        secure = await loop.start_tls(plain, proto, client_ctx, server_hostname="localhost")
        await proto.received_at_least(7)
        secure.write(b"bye")
        assert await loop.run_in_executor(None, join) == b"bye"
        await proto.lost
        return proto

    with listener:
        proto = run(loop, main())
    assert bytes(proto.data) == b"welcome"


def test_tls_inside_tls(loop, server_ctx, client_ctx):
    """start_tls over a TLS transport (an HTTPS proxy's tunnel does it): the
    inner layer runs on the outer as on any transport, data_received and
    write."""

    async def handle(reader, writer):
        assert await reader.readline() == b"inner, please\n"
        writer.write(b"ok\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        writer.write(b"twice " + await reader.readline())
        await writer.drain()
        writer.close()

    async def main():
        server, reader, writer = await tls_stream_pair(handle, server_ctx, client_ctx)
        outer = writer.transport
        writer.write(b"inner, please\n")
        assert await reader.readline() == b"ok\n"
        await writer.start_tls(client_ctx, server_hostname="localhost")
        assert writer.transport is not outer
        assert writer.get_extra_info("ssl_object") is not outer.get_extra_info("ssl_object")
        writer.write(b"encrypted\n")
        answer = await reader.readline()
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return answer

    assert run(loop, main()) == b"twice encrypted\n"


@pytest.mark.parametrize("value, kind", [(None, "phaseloop"), ("phaseloop", "phaseloop"),
                                         ("asyncio", "asyncio")])
def test_phaseloop_tls_switch(phase_loop, server_ctx, client_ctx, monkeypatch, value, kind):
    if value is None:
        monkeypatch.delenv("PHASELOOP_TLS", raising=False)
    else:
        monkeypatch.setenv("PHASELOOP_TLS", value)
    expected = phaseloop.SSLTransport if kind == "phaseloop" else \
        asyncio.sslproto._SSLProtocolTransport

    async def main():
        server, transport, proto = await tls_pair(phase_loop, server_ctx, client_ctx)
        transport.write(b"ping")
        await proto.received_at_least(4)
        kinds = type(transport)
        transport.close()
        await proto.lost
        await close_server(server)
        return kinds, bytes(proto.data)

    kinds, data = run(phase_loop, main())
    assert kinds is expected
    assert data == b"ping"


def test_phaseloop_tls_switch_rejects_other_values(phase_loop, client_ctx, monkeypatch):
    monkeypatch.setenv("PHASELOOP_TLS", "openssl")
    listener = socket.create_server((HOST, 0))

    def refused():
        with pytest.raises(ValueError, match="PHASELOOP_TLS"):
            run(phase_loop, phase_loop.create_connection(
                Recorder, HOST, listener.getsockname()[1], ssl=client_ctx,
                server_hostname="localhost"))

    with listener:
        assert_fds_steady(phase_loop, refused, repeats=2)


def test_ssl_transport_is_an_asyncio_transport(loop, server_ctx, client_ctx):
    async def main():
        server, transport, proto = await tls_pair(loop, server_ctx, client_ctx)
        try:
            assert isinstance(transport, asyncio.Transport)
            assert "ssl" in transport.__class__.__name__.lower()
            assert transport.get_protocol() is proto
            other = Recorder()
            transport.set_protocol(other)
            assert transport.get_protocol() is other
            transport.set_protocol(proto)
            assert transport.is_reading() and not transport.is_closing()
            assert transport.get_extra_info("nothing such", 42) == 42
        finally:
            transport.close()
            assert transport.is_closing()
            await proto.lost
            await close_server(server)
        assert transport.get_protocol() is None        # as asyncio: dropped when lost
        assert isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)

    run(loop, main())
