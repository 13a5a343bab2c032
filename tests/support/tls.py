"""Helpers of the TLS tests: TLS pairs on the loop, and a peer driven by hand
in a thread (BioPeer: ssl.SSLObject over two MemoryBIOs on a blocking
socket), so a test can cut, stop or spoil records at any byte.  The
certificate fixtures (certificate, server_ctx, client_ctx) are in conftest.py."""
import asyncio
import socket
import ssl
import threading

from support.net import HOST, WAIT, Echo, Recorder, ServerSide, close_server, port_of


async def tls_pair(loop, server_ctx, client_ctx, server_factory=Echo,
                   client_factory=Recorder, **client_kwargs):
    server = await loop.create_server(server_factory, HOST, 0, ssl=server_ctx)
    transport, proto = await loop.create_connection(
        client_factory, HOST, port_of(server), ssl=client_ctx,
        server_hostname="localhost", **client_kwargs)
    return server, transport, proto


async def tls_stream_pair(handle, server_ctx, client_ctx):
    """asyncio.start_server(handle) over TLS and one open_connection to it."""
    server = await asyncio.start_server(handle, HOST, 0, ssl=server_ctx)
    reader, writer = await asyncio.open_connection(
        HOST, port_of(server), ssl=client_ctx, server_hostname="localhost")
    return server, reader, writer


async def tls_round_trip(loop, port, client_ctx, i, factory=Recorder):
    """Connect to an echo server, send b"client <i>", wait for it back, close:
    whether it came back whole and connection_lost(None) came once."""
    transport, proto = await loop.create_connection(
        factory, HOST, port, ssl=client_ctx, server_hostname="localhost")
    message = b"client %d" % i
    transport.write(message)
    await proto.received_at_least(len(message))
    transport.close()
    await proto.lost
    return bytes(proto.data) == message and proto.lost_calls == [None]


class BioPeer:
    """One end of a TLS connection over a blocking socket, driven by hand."""

    def __init__(self, sock, context, *, server_side=False, server_hostname=None):
        sock.settimeout(WAIT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname)

    @classmethod
    def connect(cls, port, context):
        return cls(socket.create_connection((HOST, port)), context, server_hostname="localhost")

    def first_flight(self):
        """The records the first do_handshake() writes (a client's ClientHello)."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def _receive(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the peer closed the connection")
        self.incoming.write(data)

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                self._receive()
            else:
                self.sock.sendall(self.outgoing.read())
                return

    def records(self, data):
        """data encrypted: the bytes of its records, not sent."""
        self.tls.write(data)
        return self.outgoing.read()

    def read_exactly(self, size):
        data = bytearray()
        while len(data) < size:
            try:
                data += self.tls.read(size - len(data))
            except ssl.SSLWantReadError:
                self._receive()
        return bytes(data)

    def close(self):
        self.sock.close()


def in_thread(target, *args):
    """Run target(*args) in a thread; join() re-raises what it raised."""
    outcome = {}

    def body():
        try:
            outcome["result"] = target(*args)
        except BaseException as exc:  # handed to the test by join()
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()

    def join():
        thread.join(WAIT * 2)
        assert not thread.is_alive(), "the peer thread did not finish"
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    return join


async def tls_server(loop, server_ctx, factory, **kwargs):
    """A TLS server, and the list the loop's exception handler fills."""
    errors = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))
    server = await loop.create_server(factory, HOST, 0, ssl=server_ctx, **kwargs)
    return server, errors


async def serve_one_peer(loop, server_ctx, peer, between=None):
    """A TLS server whose one client is peer(port) in a thread: the server
    side's protocol, its connection_lost argument and the handler's reports.
    between(protocol) is awaited once the connection is accepted."""
    sides = ServerSide()
    server, errors = await tls_server(loop, server_ctx, sides)
    join = in_thread(peer, port_of(server))
    proto = await sides.first_protocol()
    if between is not None:
        await between(proto)
    exc = await proto.lost
    await loop.run_in_executor(None, join)
    await close_server(server)
    return proto, exc, errors
