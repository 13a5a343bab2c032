"""Unix stream sockets: create_unix_server / create_unix_connection.

Paths live in tmp_path; Linux abstract names ('\\0name') get a per-test
unique name.  On phaseloop and asyncio: echo integrity (length and
SHA-256), extra info, stale socket files, errors with asyncio's types and
no leaked fds, sock=, streams, and cleanup_socket (Python 3.13+).
"""
import asyncio
import errno
import os
import socket
import sys
import uuid

import pytest

import phaseloop

from test_tcp import (MiB, Echo, Recorder, ServerSide, assert_fds_steady, close_server,
                      digest, payload, run)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="abstract socket names are Linux-only")


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "sock")


@pytest.fixture
def abstract_name():
    return "\0phaseloop-test-" + uuid.uuid4().hex


async def unix_pair(loop, address, server_factory=Echo, client_factory=Recorder):
    server = await loop.create_unix_server(server_factory, address)
    transport, proto = await loop.create_unix_connection(client_factory, address)
    return server, transport, proto


def _echo(loop, address, data):
    async def main():
        server, transport, proto = await unix_pair(
            loop, address, client_factory=lambda: Recorder(keep=False))
        transport.write(data)
        transport.write_eof()
        await proto.lost
        await close_server(server)
        return proto

    return run(loop, main(), timeout=30)


@pytest.mark.parametrize("size", [1, 64 * 1024 + 1, 64 * MiB], ids=["1B", "64KiB+1", "64MiB"])
def test_echo_over_a_path(loop, path, size):
    data = payload(size, seed=size)
    proto = _echo(loop, path, data)
    assert proto.digest() == digest(data)
    assert proto.events == ["made", "data", "eof", "lost"]
    assert proto.lost_calls == [None]


@linux_only
@pytest.mark.parametrize("size", [1, MiB], ids=["1B", "1MiB"])
def test_echo_over_an_abstract_name(loop, abstract_name, size):
    data = payload(size, seed=3)
    assert _echo(loop, abstract_name, data).digest() == digest(data)


@linux_only
def test_abstract_name_leaves_no_file(loop, abstract_name, tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        async def main():
            server = await loop.create_unix_server(Echo, abstract_name)
            name = server.sockets[0].getsockname()
            await close_server(server)
            return name

        name = run(loop, main())
        assert os.listdir(tmp_path) == []
    finally:
        os.chdir(cwd)
    assert name in (abstract_name, abstract_name.encode())


def test_path_like_address(loop, tmp_path):
    assert _echo(loop, tmp_path / "pathlib-sock", b"path-like").digest() == digest(b"path-like")


def test_extra_info(loop, path):
    sides = ServerSide()

    async def main():
        server = await loop.create_unix_server(sides, path)
        transport, proto = await loop.create_unix_connection(Recorder, path)
        peer = await sides.first_protocol()
        await peer.made
        try:
            assert server.sockets[0].getsockname() == path
            sock = transport.get_extra_info("socket")
            assert sock.family == socket.AF_UNIX and sock.type == socket.SOCK_STREAM
            assert transport.get_extra_info("peername") == path
            assert peer.transport.get_extra_info("sockname") == path
            assert transport.get_extra_info("sslcontext") is None
            assert transport.can_write_eof()
        finally:
            transport.close()
            await close_server(server)

    run(loop, main())


def test_half_close(loop, path):

    class Replier(Recorder):
        def eof_received(self):
            super().eof_received()
            self.transport.write(b"got " + bytes(self.data))
            self.transport.close()
            return True

    sides = ServerSide(Replier)

    async def main():
        server = await loop.create_unix_server(sides, path)
        transport, proto = await loop.create_unix_connection(Recorder, path)
        transport.write(b"question")
        transport.write_eof()
        await proto.lost
        await close_server(server)
        return proto

    proto = run(loop, main())
    assert bytes(proto.data) == b"got question"
    assert proto.events == ["made", "data", "eof", "lost"]


def test_stale_socket_file_is_replaced(loop, path):
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)  # left behind, nobody listening
    assert os.path.exists(path)
    assert _echo(loop, path, b"fresh").digest() == digest(b"fresh")


def test_regular_file_at_the_path_is_address_in_use(loop, path):
    with open(path, "w") as f:
        f.write("not a socket")

    def in_use():
        with pytest.raises(OSError) as info:
            run(loop, loop.create_unix_server(Echo, path))
        assert info.value.errno == errno.EADDRINUSE

    assert_fds_steady(loop, in_use)
    with open(path) as f:
        assert f.read() == "not a socket"  # never removed


@linux_only
def test_abstract_name_in_use(loop, abstract_name):
    with socket.socket(socket.AF_UNIX) as taken:
        taken.bind(abstract_name)
        taken.listen(1)

        def in_use():
            with pytest.raises(OSError) as info:
                run(loop, loop.create_unix_server(Echo, abstract_name))
            assert info.value.errno == errno.EADDRINUSE

        assert_fds_steady(loop, in_use)


def test_connect_to_a_missing_path(loop, path):

    def missing():
        with pytest.raises(FileNotFoundError):
            run(loop, loop.create_unix_connection(Recorder, path))

    assert_fds_steady(loop, missing)


def test_connect_to_a_socket_nobody_listens_on(loop, path):
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)

        def refused():
            with pytest.raises(ConnectionRefusedError):
                run(loop, loop.create_unix_connection(Recorder, path))

        assert_fds_steady(loop, refused)


def test_server_and_client_from_sock(loop, path):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)

    async def main():
        server = await loop.create_unix_server(Echo, sock=listener)
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        transport, proto = await loop.create_unix_connection(Recorder, sock=client)
        transport.write(b"via socks")
        await proto.received_at_least(9)
        transport.close()
        await proto.lost
        await close_server(server)
        return client, proto

    client, proto = run(loop, main())
    assert bytes(proto.data) == b"via socks"
    assert client.fileno() == -1 and listener.fileno() == -1


def test_bad_arguments_raise_like_asyncio(loop, path):
    with socket.socket(socket.AF_UNIX) as unix, socket.socket() as tcp:
        for make in [
            lambda: loop.create_unix_server(Echo, path, sock=unix),
            lambda: loop.create_unix_server(Echo),
            lambda: loop.create_unix_server(Echo, sock=tcp),
            lambda: loop.create_unix_server(Echo, path, ssl_handshake_timeout=1),
            lambda: loop.create_unix_connection(Recorder, path, sock=unix),
            lambda: loop.create_unix_connection(Recorder),
            lambda: loop.create_unix_connection(Recorder, sock=tcp),
            lambda: loop.create_unix_connection(Recorder, path, server_hostname="x"),
        ]:
            with pytest.raises(ValueError):
                run(loop, make())
        with pytest.raises(TypeError):
            run(loop, loop.create_unix_server(Echo, path, ssl=True))


def test_fds_steady_after_connections_close(loop, path):
    assert_fds_steady(loop, lambda: _echo(loop, path, b"x"))


def test_streams_over_unix(loop, path):

    async def handle(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_unix_server(handle, path)
        reader, writer = await asyncio.open_unix_connection(path)
        answers = []
        for word in (b"alpha\n", b"beta\n", b"x" * 50000 + b"\n"):
            writer.write(word)
            answers.append(await reader.readline())
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return answers

    assert run(loop, main()) == [b"ALPHA\n", b"BETA\n", b"X" * 50000 + b"\n"]


# ---- cleanup_socket (Python 3.13+ keyword) -------------------------------------------------


def _server_with_cleanup(loop, path, **kwargs):
    """Start and close a server; whether the socket file is still there."""
    async def main():
        server = await loop.create_unix_server(Echo, path, **kwargs)
        assert os.path.exists(path)
        await close_server(server)
        return os.path.exists(path)

    return run(loop, main())


@pytest.mark.parametrize("cleanup", [True, False])
def test_cleanup_socket(loop, loop_name, path, cleanup):
    if loop_name == "asyncio" and sys.version_info < (3, 13):
        pytest.skip("asyncio's cleanup_socket= is new in Python 3.13")
    exists_after_close = _server_with_cleanup(loop, path, cleanup_socket=cleanup)
    assert exists_after_close is (not cleanup)


def needs_cleanup_socket(loop):
    """phaseloop has 3.13's cleanup_socket on every version; asyncio from 3.13."""
    if not isinstance(loop, phaseloop.Loop) and sys.version_info < (3, 13):
        pytest.skip("asyncio removes the socket file on close from Python 3.13")


def test_socket_file_removed_on_close_by_default(loop, path):
    needs_cleanup_socket(loop)
    assert _server_with_cleanup(loop, path) is False


def test_cleanup_leaves_a_replaced_file_alone(loop, path):
    needs_cleanup_socket(loop)

    async def main():
        server = await loop.create_unix_server(Echo, path)
        os.unlink(path)
        with open(path, "w") as f:  # someone else's file now
            f.write("other")
        await close_server(server)

    run(loop, main())
    assert os.path.exists(path)
