"""Helpers of the transport tests: servers and clients on 127.0.0.1, payloads,
protocols that record what they see, and a check that no fd is left open."""
import asyncio
import gc
import hashlib
import random
import socket
import struct

from support.loops import open_fd_count

WAIT = 5.0  # upper bound for anything a test waits on
HOST = "127.0.0.1"
MiB = 1024 * 1024


def run(loop, coro, timeout=WAIT):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


def digest(data):
    return len(data), hashlib.sha256(data).hexdigest()


def closed_port():
    """A 127.0.0.1 port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def set_linger_zero(sock):
    """Make close() send a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def settle(loop):
    """Let pending close callbacks run and unreachable sockets be collected."""
    for _ in range(3):
        loop.run_until_complete(asyncio.sleep(0))
    gc.collect()


def assert_fds_steady(loop, action, repeats=3):
    """action() leaves no fd open behind it.

    It runs once first, so what a loop opens lazily on first use (a resolver
    thread's pipe, a DNS socket) is not counted; then `repeats` more times,
    and the count must not have moved.
    """
    action()
    settle(loop)
    start = open_fd_count()
    for _ in range(repeats):
        action()
    settle(loop)
    assert open_fd_count() == start


def port_of(server):
    return server.sockets[0].getsockname()[1]


class Recorder(asyncio.Protocol):
    """Records what the transport tells it; hashes the bytes received.

    keep=True also keeps the bytes themselves (in .data).  eof_received
    returns None, so the transport closes at EOF.
    """

    def __init__(self, *, keep=True):
        loop = asyncio.get_running_loop()
        self.keep = keep
        self.transport = None
        self.data = bytearray()
        self.size = 0
        self.sha = hashlib.sha256()
        self.events = []
        self.lost_calls = []
        self.made = loop.create_future()
        self.eof = loop.create_future()
        self.lost = loop.create_future()
        self._size_waiter = None

    def connection_made(self, transport):
        self.events.append("made")
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.size += len(data)
        self.sha.update(data)
        if self.keep:
            self.data += data
        if self._size_waiter and self.size >= self._size_waiter[0]:
            if not self._size_waiter[1].done():
                self._size_waiter[1].set_result(None)

    def eof_received(self):
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):
        self.events.append("lost")
        self.lost_calls.append(exc)
        if not self.lost.done():
            self.lost.set_result(exc)

    async def received_at_least(self, size):
        if self.size < size:
            self._size_waiter = (size, asyncio.get_running_loop().create_future())
            await self._size_waiter[1]

    def digest(self):
        return self.size, self.sha.hexdigest()


class Echo(asyncio.Protocol):
    """Writes back what it reads; closes (after flushing) at EOF."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class ServerSide:
    """A protocol factory that keeps every protocol it made, in order."""

    def __init__(self, cls=Recorder, **kwargs):
        self.cls = cls
        self.kwargs = kwargs
        self.protocols = []
        self.first = None

    def __call__(self):
        proto = self.cls(**self.kwargs)
        self.protocols.append(proto)
        if self.first is not None and not self.first.done():
            self.first.set_result(proto)
        return proto

    async def first_protocol(self):
        """The protocol of the first connection, once it is accepted."""
        if self.protocols:
            return self.protocols[0]
        self.first = asyncio.get_running_loop().create_future()
        return await self.first


async def connected(loop, server_factory=Echo, client_factory=Recorder):
    """A server on 127.0.0.1 and one client connected to it."""
    server = await loop.create_server(server_factory, HOST, 0)
    transport, proto = await loop.create_connection(client_factory, HOST, port_of(server))
    return server, transport, proto


async def close_server(server):
    server.close()
    await server.wait_closed()


#: An address nothing answers on (a multicast group: connect() fails at once).
UNREACHABLE = ("224.0.0.1", 80)


class FlowWriter(Recorder):
    """Counts pause_writing/resume_writing and the buffer size at each call."""

    def __init__(self):
        super().__init__()
        self.pauses = []
        self.resumes = []
        self.paused = False
        self.resumed = None

    def pause_writing(self):
        self.paused = True
        self.pauses.append(self.transport.get_write_buffer_size())

    def resume_writing(self):
        self.paused = False
        self.resumes.append(self.transport.get_write_buffer_size())
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)


class BlockWriter:
    """Writes payload blocks to a transport and keeps the digest of all it wrote."""

    def __init__(self, transport, chunk):
        self.transport = transport
        self.chunk = chunk
        self.sha = hashlib.sha256()
        self.total = 0

    def write(self, count=1):
        for _ in range(count):
            block = payload(self.chunk, seed=self.total)
            self.transport.write(block)
            self.sha.update(block)
            self.total += self.chunk

    async def write_until_paused(self, writer, limit):
        """Write a block per loop iteration until writer (a FlowWriter) is paused."""
        while not writer.paused:
            assert self.total < limit, "pause_writing never came"
            self.write()
            await asyncio.sleep(0)

    def digest(self):
        return self.total, self.sha.hexdigest()


async def echo_once(loop, host, port, message=b"ping"):
    """Connect, send message, read as much back, close: the bytes read."""
    transport, proto = await loop.create_connection(Recorder, host, port)
    transport.write(message)
    await proto.received_at_least(len(message))
    transport.close()
    await proto.lost
    return bytes(proto.data)
