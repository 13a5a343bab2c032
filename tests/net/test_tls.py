"""TLS on the loop's transports: ssl= on endpoints, start_tls, timeouts.

A self-signed certificate for localhost/127.0.0.1 is made once per session
with the `openssl` command (the `certificate` fixture of conftest.py; the
tests skip where it is missing).  On
phaseloop and asyncio: echo integrity (length and SHA-256), extra info,
verification failures, handshake and shutdown timeouts, a closing client
that does not wait for the shutdown timeout, streams, Unix sockets and
connect_accepted_socket with ssl=.
"""
import asyncio
import socket
import ssl
import threading

import pytest

from support.net import (HOST, MiB, Echo, Recorder, ServerSide, WAIT, assert_fds_steady,
                      close_server, digest, payload, port_of, run)


@pytest.fixture
def server_ctx(certificate):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certificate)
    return ctx


@pytest.fixture
def client_ctx(certificate):
    return ssl.create_default_context(cafile=certificate[0])


async def tls_pair(loop, server_ctx, client_ctx, server_factory=Echo,
                   client_factory=Recorder, **client_kwargs):
    server = await loop.create_server(server_factory, HOST, 0, ssl=server_ctx)
    transport, proto = await loop.create_connection(
        client_factory, HOST, port_of(server), ssl=client_ctx,
        server_hostname="localhost", **client_kwargs)
    return server, transport, proto


@pytest.mark.parametrize("size", [1, 64 * 1024 + 1, 64 * MiB], ids=["1B", "64KiB+1", "64MiB"])
def test_tls_echo_keeps_every_byte(loop, server_ctx, client_ctx, size):
    data = payload(size, seed=size)

    class EchoUntilEof(Echo):
        def eof_received(self):
            self.transport.close()

    class CloseAtCount(Recorder):
        """TLS cannot half-close, so the client closes once all came back."""

        def data_received(self, chunk):
            super().data_received(chunk)
            if self.size == len(data):
                self.transport.close()

    async def main():
        server, transport, proto = await tls_pair(
            loop, server_ctx, client_ctx, server_factory=EchoUntilEof,
            client_factory=lambda: CloseAtCount(keep=False))
        transport.write(data)
        assert await proto.lost is None
        await close_server(server)
        return proto

    proto = run(loop, main(), timeout=30)
    assert proto.digest() == digest(data)
    assert proto.lost_calls == [None]


def test_tls_extra_info(loop, server_ctx, client_ctx):
    sides = ServerSide()

    async def main():
        server = await loop.create_server(sides, HOST, 0, ssl=server_ctx)
        transport, proto = await loop.create_connection(
            Recorder, HOST, port_of(server), ssl=client_ctx, server_hostname="localhost")
        peer = await sides.first_protocol()
        await peer.made
        try:
            ssl_object = transport.get_extra_info("ssl_object")
            assert isinstance(ssl_object, ssl.SSLObject)
            assert ssl_object.server_hostname == "localhost"
            assert transport.get_extra_info("sslcontext") is client_ctx
            cert = transport.get_extra_info("peercert")
            assert ("commonName", "localhost") in [pair for rdn in cert["subject"] for pair in rdn]
            cipher = transport.get_extra_info("cipher")
            assert isinstance(cipher, tuple) and len(cipher) == 3
            assert transport.get_extra_info("compression") is None
            assert transport.get_extra_info("peername") == (HOST, port_of(server))
            assert transport.get_extra_info("socket").family == socket.AF_INET
            assert not transport.can_write_eof()  # TLS has no half-close
            assert peer.transport.get_extra_info("peercert") is None  # no client cert
            assert peer.transport.get_extra_info("sslcontext") is server_ctx
            assert isinstance(peer.transport.get_extra_info("ssl_object"), ssl.SSLObject)
        finally:
            transport.close()
            await proto.lost
            await close_server(server)

    run(loop, main())


def test_start_tls_upgrades_a_plain_connection(loop, server_ctx, client_ctx):

    async def handle(reader, writer):
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"OK\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        while line := await reader.readline():
            writer.write(b"secret " + line)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    class Client(Recorder):
        def __init__(self):
            super().__init__()
            self.ready = asyncio.get_running_loop().create_future()

        def data_received(self, data):
            super().data_received(data)
            if bytes(self.data) == b"OK\n" and not self.ready.done():
                self.data.clear()
                self.ready.set_result(None)

    async def main():
        server = await asyncio.start_server(handle, HOST, 0)
        plain, proto = await loop.create_connection(Client, HOST, port_of(server))
        plain.write(b"STARTTLS\n")
        await proto.ready
        secure = await loop.start_tls(plain, proto, client_ctx, server_hostname="localhost")
        assert isinstance(secure.get_extra_info("ssl_object"), ssl.SSLObject)
        secure.write(b"one\n")
        secure.write(b"two\n")
        await proto.received_at_least(len(b"secret one\nsecret two\n"))
        secure.close()
        await proto.lost
        await close_server(server)
        return bytes(proto.data), proto.lost_calls

    data, lost_calls = run(loop, main())
    assert data == b"secret one\nsecret two\n"
    assert lost_calls == [None]


def test_handshake_timeout_when_the_server_never_answers(loop, client_ctx):
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(8)  # the kernel completes TCP handshakes; nobody speaks TLS

        def times_out():
            started = loop.time()
            with pytest.raises(ConnectionAbortedError):
                run(loop, loop.create_connection(
                    Recorder, HOST, silent.getsockname()[1], ssl=client_ctx,
                    server_hostname="localhost", ssl_handshake_timeout=0.2))
            assert 0.15 <= loop.time() - started < WAIT

        assert_fds_steady(loop, times_out, repeats=2)


def test_server_handshake_timeout_drops_a_silent_client(loop, server_ctx):

    async def main():
        server = await loop.create_server(Echo, HOST, 0, ssl=server_ctx,
                                          ssl_handshake_timeout=0.2)
        raw = socket.create_connection((HOST, port_of(server)))
        raw.settimeout(WAIT)
        try:
            started = loop.time()
            try:
                ended = await loop.run_in_executor(None, raw.recv, 100)
            except ConnectionResetError:
                ended = b""
            return ended, loop.time() - started
        finally:
            raw.close()
            await close_server(server)

    ended, elapsed = run(loop, main())
    assert ended == b"" and 0.15 <= elapsed < WAIT


@pytest.mark.parametrize("hostname, use_ca", [("localhost", False), ("wrong.example", True)],
                         ids=["unknown-ca", "wrong-hostname"])
def test_verification_failure(loop, server_ctx, certificate, hostname, use_ca):
    ctx = ssl.create_default_context(cafile=certificate[0] if use_ca else None)
    server = run(loop, loop.create_server(Echo, HOST, 0, ssl=server_ctx))
    loop.set_exception_handler(lambda lp, context: None)  # the server's side of the failure

    def refused():
        with pytest.raises(ssl.SSLCertVerificationError):
            run(loop, loop.create_connection(
                Recorder, HOST, port_of(server), ssl=ctx, server_hostname=hostname))

    try:
        assert_fds_steady(loop, refused, repeats=2)
    finally:
        run(loop, close_server(server))


def test_closing_client_does_not_wait_for_the_shutdown_timeout(loop, server_ctx, client_ctx):

    async def main():
        server, transport, proto = await tls_pair(
            loop, server_ctx, client_ctx, ssl_shutdown_timeout=30)
        transport.write(b"ping")
        await proto.received_at_least(4)
        started = loop.time()
        transport.close()
        exc = await proto.lost  # run() fails the test after WAIT, well before 30 s
        elapsed = loop.time() - started
        await close_server(server)
        return exc, elapsed

    exc, elapsed = run(loop, main())
    assert exc is None
    assert elapsed < WAIT


def test_server_closing_first_ends_the_client(loop, server_ctx, client_ctx):

    class CloseOnData(Echo):
        def data_received(self, data):
            self.transport.write(data)
            self.transport.close()

    async def main():
        server, transport, proto = await tls_pair(
            loop, server_ctx, client_ctx, server_factory=CloseOnData)
        transport.write(b"bye")
        exc = await proto.lost
        await close_server(server)
        return exc, proto

    exc, proto = run(loop, main())
    assert bytes(proto.data) == b"bye"
    assert exc is None and proto.lost_calls == [None]
    assert "eof" in proto.events


class ThreadPeer:
    """A blocking TLS server in a thread: handshakes, then does `then`."""

    def __init__(self, server_ctx, then):
        self.listener = socket.create_server((HOST, 0))
        self.listener.settimeout(WAIT)
        self.server_ctx = server_ctx
        self.then = then
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.listener.getsockname()[1]

    def _serve(self):
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT)
        tls = self.server_ctx.wrap_socket(conn, server_side=True)
        if self.then == "abrupt-close":
            tls.close()  # no close_notify: the TCP connection just ends
            return
        self.release.wait(WAIT * 2)  # "silent": never reads, never answers close_notify
        tls.close()

    def stop(self):
        self.release.set()
        self.thread.join(WAIT)
        self.listener.close()


def test_shutdown_timeout_ends_a_close_the_peer_never_answers(loop, server_ctx, client_ctx):
    peer = ThreadPeer(server_ctx, "silent")

    async def main():
        transport, proto = await loop.create_connection(
            Recorder, HOST, peer.port, ssl=client_ctx, server_hostname="localhost",
            ssl_shutdown_timeout=0.2)
        started = loop.time()
        transport.close()
        await proto.lost
        return loop.time() - started, proto

    try:
        elapsed, proto = run(loop, main())
    finally:
        peer.stop()
    assert elapsed < WAIT
    assert len(proto.lost_calls) == 1


def test_peer_ending_tcp_without_close_notify(loop, server_ctx, client_ctx):
    peer = ThreadPeer(server_ctx, "abrupt-close")

    async def main():
        transport, proto = await loop.create_connection(
            Recorder, HOST, peer.port, ssl=client_ctx, server_hostname="localhost")
        await proto.lost
        await asyncio.sleep(0.01)
        return proto

    try:
        proto = run(loop, main())
    finally:
        peer.stop()
    assert len(proto.lost_calls) == 1


def test_streams_with_ssl(loop, server_ctx, client_ctx):

    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line[::-1][1:] + b"\n")
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, HOST, 0, ssl=server_ctx)
        reader, writer = await asyncio.open_connection(
            HOST, port_of(server), ssl=client_ctx, server_hostname="localhost")
        assert isinstance(writer.get_extra_info("ssl_object"), ssl.SSLObject)
        answers = []
        for line in (b"abc\n", b"hello tls\n", b"z" * 30000 + b"\n"):
            writer.write(line)
            await writer.drain()
            answers.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return answers

    assert run(loop, main()) == [b"cba\n", b"slt olleh\n", b"z" * 30000 + b"\n"]


def test_many_tls_clients(loop, server_ctx, client_ctx):

    async def one(port, i):
        transport, proto = await loop.create_connection(
            Recorder, HOST, port, ssl=client_ctx, server_hostname="localhost")
        message = b"client %d" % i
        transport.write(message)
        await proto.received_at_least(len(message))
        transport.close()
        await proto.lost
        return bytes(proto.data)

    async def main():
        server = await loop.create_server(Echo, HOST, 0, ssl=server_ctx)
        answers = await asyncio.gather(*(one(port_of(server), i) for i in range(30)))
        await close_server(server)
        return answers

    assert run(loop, main(), timeout=20) == [b"client %d" % i for i in range(30)]


def test_tls_over_unix_sockets(loop, server_ctx, client_ctx, tmp_path):
    path = str(tmp_path / "tls.sock")
    data = payload(MiB, seed=12)

    async def main():
        server = await loop.create_unix_server(Echo, path, ssl=server_ctx)
        transport, proto = await loop.create_unix_connection(
            lambda: Recorder(keep=False), path, ssl=client_ctx, server_hostname="localhost")
        transport.write(data)
        await proto.received_at_least(len(data))
        transport.close()
        await proto.lost
        await close_server(server)
        return proto

    assert run(loop, main()).digest() == digest(data)


def test_connect_accepted_socket_with_ssl(loop, server_ctx, client_ctx):
    listener = socket.create_server((HOST, 0))

    async def main():
        connecting = loop.create_task(loop.create_connection(
            Recorder, HOST, listener.getsockname()[1], ssl=client_ctx,
            server_hostname="localhost"))
        conn, _ = await loop.run_in_executor(None, listener.accept)
        server_t, _ = await loop.connect_accepted_socket(Echo, conn, ssl=server_ctx)
        transport, proto = await connecting
        transport.write(b"accepted over tls")
        await proto.received_at_least(17)
        transport.close()
        await proto.lost
        server_t.close()
        return bytes(proto.data)

    with listener:
        assert run(loop, main()) == b"accepted over tls"


def test_bad_tls_arguments_raise_like_asyncio(loop, server_ctx, client_ctx):

    async def main():
        with socket.socket() as sock:
            with pytest.raises(ValueError):  # ssl over sock= needs server_hostname
                await loop.create_connection(Recorder, sock=sock, ssl=client_ctx)
        server = await loop.create_server(Echo, HOST, 0)
        transport, proto = await loop.create_connection(Recorder, HOST, port_of(server))
        try:
            with pytest.raises(TypeError):
                await loop.start_tls(transport, proto, "not a context")
            for bad in (0, -1):
                with pytest.raises(ValueError):
                    await loop.start_tls(transport, proto, client_ctx,
                                         server_hostname="localhost",
                                         ssl_handshake_timeout=bad)
                with pytest.raises(ValueError):
                    await loop.start_tls(transport, proto, client_ctx,
                                         server_hostname="localhost",
                                         ssl_shutdown_timeout=bad)
        finally:
            transport.close()
            await close_server(server)

    run(loop, main())
