"""The loop's sock_* coroutines on real sockets, on phaseloop and asyncio.

Sockets are TCP on 127.0.0.1, socketpair() and UDP; files for sock_sendfile
are real files in tmp_path.  Each test checks the bytes that arrive (length
and SHA-256), the exception types asyncio raises, and that a sock_* call
leaves no reader or writer registered once it is done or cancelled.

A test skips on a loop that still inherits the method from
asyncio.AbstractEventLoop (it would raise NotImplementedError).
"""
import asyncio
import errno
import gc
import io
import os
import socket
import ssl
import weakref

import pytest

from test_tcp import (UNREACHABLE, WAIT, assert_fds_steady, closed_port, digest, payload,
                      run, set_linger_zero)


def tcp_pair():
    """Two connected, non-blocking TCP sockets on 127.0.0.1."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setblocking(False)
    server.setblocking(False)
    return client, server


def reset(sock):
    """Close with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    set_linger_zero(sock)
    sock.close()


def fill_send_buffer(sock):
    """Send until the kernel refuses more; returns the number of bytes sent."""
    chunk = b"\0" * 65536
    sent = 0
    while True:
        try:
            sent += sock.send(chunk)
        except BlockingIOError:
            return sent


def no_watchers(loop, fd):
    """True when neither a reader nor a writer is left on fd."""
    return loop.remove_reader(fd) is False and loop.remove_writer(fd) is False


async def recv_exactly(loop, sock, size):
    buf = bytearray()
    while len(buf) < size:
        chunk = await loop.sock_recv(sock, min(1 << 20, size - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


async def recv_to_eof(loop, sock):
    buf = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            return bytes(buf)
        buf += chunk


async def until_pending(task):
    """Let the task start and park on the loop; fail if it finishes instead."""
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done(), task


@pytest.fixture
def tcp():
    client, server = tcp_pair()
    yield client, server
    client.close()
    server.close()


@pytest.fixture
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.setblocking(False)
    yield s
    s.close()


@pytest.fixture
def udp_pair():
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


@pytest.fixture
def data_file(tmp_path):
    data = payload(3 * 1024 * 1024 + 17, seed=7)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, data


# ---- sock_recv / sock_recv_into / sock_sendall ----------------------------------


@pytest.mark.parametrize("size", [1, 65536, 4 * 1024 * 1024], ids=["1B", "64KiB", "4MiB"])
def test_sendall_then_recv_keeps_every_byte(loop, socket_pair, size):
    a, b = socket_pair
    data = payload(size)

    async def main():
        reader = loop.create_task(recv_exactly(loop, b, size))
        await loop.sock_sendall(a, data)
        return await reader

    assert digest(run(loop, main())) == digest(data)
    assert no_watchers(loop, a.fileno()) and no_watchers(loop, b.fileno())


def test_sendall_accepts_bytearray_and_memoryview(loop, socket_pair):
    a, b = socket_pair

    async def main():
        await loop.sock_sendall(a, bytearray(b"abc"))
        await loop.sock_sendall(a, memoryview(b"--def--")[2:5])
        return await recv_exactly(loop, b, 6)

    assert run(loop, main()) == b"abcdef"


def test_recv_waits_for_data(loop, socket_pair):
    a, b = socket_pair

    async def main():
        task = loop.create_task(loop.sock_recv(b, 100))
        await until_pending(task)
        a.send(b"late")
        return await task

    assert run(loop, main()) == b"late"
    assert no_watchers(loop, b.fileno())


def test_recv_returns_empty_bytes_at_eof(loop, socket_pair):
    a, b = socket_pair

    async def main():
        task = loop.create_task(loop.sock_recv(b, 100))
        await until_pending(task)
        a.shutdown(socket.SHUT_WR)
        first = await task
        again = await loop.sock_recv(b, 100)  # the ready path, not the waiting one
        return first, again

    assert run(loop, main()) == (b"", b"")


def test_recv_into_fills_the_buffer(loop, socket_pair):
    a, b = socket_pair
    data = payload(1024 * 1024 + 3)

    async def main():
        buf = bytearray(len(data))
        view = memoryview(buf)
        got = 0
        sender = loop.create_task(loop.sock_sendall(a, data))
        while got < len(buf):
            n = await loop.sock_recv_into(b, view[got:got + 10000])
            assert n > 0
            got += n
        await sender
        return bytes(buf)

    assert digest(run(loop, main())) == digest(data)
    assert no_watchers(loop, b.fileno())


def test_recv_into_waits_for_data(loop, socket_pair):
    a, b = socket_pair

    async def main():
        buf = bytearray(8)
        task = loop.create_task(loop.sock_recv_into(b, buf))
        await until_pending(task)
        a.send(b"xyz")
        return await task, bytes(buf[:3])

    assert run(loop, main()) == (3, b"xyz")


def test_sendall_waits_while_the_peer_is_full(loop, tcp):
    """sock_sendall must wait for the slow reader, then deliver everything."""
    client, server = tcp
    data = payload(8 * 1024 * 1024, seed=3)

    async def slow_reader():
        buf = bytearray()
        while len(buf) < len(data):
            await asyncio.sleep(0.001)
            chunk = await loop.sock_recv(server, 256 * 1024)
            assert chunk
            buf += chunk
        return bytes(buf)

    async def main():
        reader = loop.create_task(slow_reader())
        await loop.sock_sendall(client, data)
        return await reader

    assert digest(run(loop, main())) == digest(data)
    assert no_watchers(loop, client.fileno())


def test_recv_reports_a_peer_reset(loop, tcp):
    client, server = tcp

    async def main():
        task = loop.create_task(loop.sock_recv(client, 100))
        await until_pending(task)
        reset(server)
        with pytest.raises(ConnectionResetError):
            await task

    run(loop, main())
    assert no_watchers(loop, client.fileno())


def test_sendall_reports_a_peer_reset(loop, tcp):
    client, server = tcp

    async def main():
        fill_send_buffer(client)
        task = loop.create_task(loop.sock_sendall(client, b"x" * (1 << 20)))
        await until_pending(task)
        reset(server)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            await task

    run(loop, main())
    assert no_watchers(loop, client.fileno())


# ---- sock_connect / sock_accept -------------------------------------------------


def test_accept_and_connect_on_tcp(loop, listener):
    client = socket.socket()
    client.setblocking(False)

    async def main():
        accept = loop.create_task(loop.sock_accept(listener))
        await until_pending(accept)
        await loop.sock_connect(client, listener.getsockname())
        conn, addr = await accept
        with conn:
            assert addr == client.getsockname()
            assert conn.gettimeout() == 0.0  # accepted sockets are non-blocking
            await loop.sock_sendall(client, b"ping")
            assert await recv_exactly(loop, conn, 4) == b"ping"
            await loop.sock_sendall(conn, b"pong")
            assert await recv_exactly(loop, client, 4) == b"pong"

    with client:
        run(loop, main())
        assert no_watchers(loop, client.fileno())
    assert no_watchers(loop, listener.fileno())


def test_accept_returns_a_waiting_connection_at_once(loop, listener):
    client = socket.create_connection(listener.getsockname())

    async def main():
        conn, addr = await loop.sock_accept(listener)
        conn.close()
        return addr

    with client:
        assert run(loop, main()) == client.getsockname()


def test_connect_resolves_localhost(loop, listener):
    port = listener.getsockname()[1]
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setblocking(False)
    with client:
        run(loop, loop.sock_connect(client, ("localhost", port)))
        assert client.getpeername() == ("127.0.0.1", port)
        assert no_watchers(loop, client.fileno())


def test_connect_on_a_unix_socket(loop, tmp_path):
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen(1)
        server.setblocking(False)
        client.setblocking(False)

        async def main():
            accept = loop.create_task(loop.sock_accept(server))
            await loop.sock_connect(client, path)
            conn, _ = await accept
            conn.close()

        run(loop, main())
        assert client.getpeername() == path


def test_connect_refused(loop):
    client = socket.socket()
    client.setblocking(False)
    with client:
        with pytest.raises(ConnectionRefusedError):
            run(loop, loop.sock_connect(client, ("127.0.0.1", closed_port())))
        assert no_watchers(loop, client.fileno())


def test_connect_to_an_unreachable_network(loop):
    client = socket.socket()
    client.setblocking(False)
    with client:
        with pytest.raises(OSError) as info:
            run(loop, loop.sock_connect(client, UNREACHABLE))
        assert info.value.errno == errno.ENETUNREACH
        assert no_watchers(loop, client.fileno())


def test_connect_to_an_unknown_host_raises_gaierror(loop):
    client = socket.socket()
    client.setblocking(False)
    with client:
        with pytest.raises(socket.gaierror):
            run(loop, loop.sock_connect(client, ("nonexistent.invalid", 80)))


# ---- UDP: sock_sendto / sock_recvfrom / sock_recvfrom_into ----------------------


def test_sendto_and_recvfrom(loop, udp_pair):
    a, b = udp_pair

    async def main():
        sent = await loop.sock_sendto(a, b"hello", b.getsockname())
        data, addr = await loop.sock_recvfrom(b, 100)
        return sent, data, addr

    assert run(loop, main()) == (5, b"hello", a.getsockname())


def test_recvfrom_waits_for_a_datagram(loop, udp_pair):
    a, b = udp_pair

    async def main():
        task = loop.create_task(loop.sock_recvfrom(b, 100))
        await until_pending(task)
        a.sendto(b"late", b.getsockname())
        return await task

    assert run(loop, main()) == (b"late", a.getsockname())
    assert no_watchers(loop, b.fileno())


def test_recvfrom_keeps_datagram_boundaries(loop, udp_pair):
    a, b = udp_pair
    sizes = [1, 1000, 60000, 7]

    async def main():
        for i, size in enumerate(sizes):
            await loop.sock_sendto(a, payload(size, seed=i), b.getsockname())
        return [(await loop.sock_recvfrom(b, 65536))[0] for _ in sizes]

    assert run(loop, main()) == [payload(size, seed=i) for i, size in enumerate(sizes)]


def test_recvfrom_into(loop, udp_pair):
    a, b = udp_pair

    async def main():
        buf = bytearray(16)
        task = loop.create_task(loop.sock_recvfrom_into(b, buf))
        await until_pending(task)
        a.sendto(b"datagram", b.getsockname())
        nbytes, addr = await task
        return nbytes, addr, bytes(buf[:nbytes])

    assert run(loop, main()) == (8, a.getsockname(), b"datagram")


def test_recvfrom_into_with_nbytes_truncates(loop, udp_pair):
    a, b = udp_pair
    a.sendto(b"0123456789", b.getsockname())
    buf = bytearray(b"." * 8)
    nbytes, addr = run(loop, loop.sock_recvfrom_into(b, buf, 4))
    assert (nbytes, addr, bytes(buf)) == (4, a.getsockname(), b"0123....")


# ---- misuse: blocking sockets, SSL sockets ----------------------------------------


def call_sock_method(name, loop, sock, file):
    calls = {
        "sock_recv": lambda: loop.sock_recv(sock, 10),
        "sock_recv_into": lambda: loop.sock_recv_into(sock, bytearray(10)),
        "sock_recvfrom": lambda: loop.sock_recvfrom(sock, 10),
        "sock_recvfrom_into": lambda: loop.sock_recvfrom_into(sock, bytearray(10)),
        "sock_sendall": lambda: loop.sock_sendall(sock, b"x"),
        "sock_sendto": lambda: loop.sock_sendto(sock, b"x", ("127.0.0.1", 9)),
        "sock_connect": lambda: loop.sock_connect(sock, ("127.0.0.1", 9)),
        "sock_accept": lambda: loop.sock_accept(sock),
        "sock_sendfile": lambda: loop.sock_sendfile(sock, file),
    }
    return calls[name]()


SOCK_METHODS = ["sock_recv", "sock_recv_into", "sock_recvfrom", "sock_recvfrom_into",
                "sock_sendall", "sock_sendto", "sock_connect", "sock_accept",
                "sock_sendfile"]
DATAGRAM_METHODS = {"sock_recvfrom", "sock_recvfrom_into", "sock_sendto"}


@pytest.mark.parametrize("method", SOCK_METHODS)
def test_blocking_socket_raises_value_error_in_debug_mode(loop, method, data_file):
    """asyncio checks the socket's mode in debug mode (phaseloop may always)."""
    loop.set_debug(True)
    kind = socket.SOCK_DGRAM if method in DATAGRAM_METHODS else socket.SOCK_STREAM
    # A timeout makes the socket blocking for asyncio's check while bounding
    # the damage should a loop forget to check.
    with socket.socket(socket.AF_INET, kind) as sock, open(data_file[0], "rb") as f:
        sock.settimeout(0.5)
        with pytest.raises(ValueError, match="the socket must be non-blocking"):
            run(loop, call_sock_method(method, loop, sock, f))
        assert no_watchers(loop, sock.fileno())


STREAM_METHODS = [m for m in SOCK_METHODS if m not in DATAGRAM_METHODS]


@pytest.mark.parametrize("method", STREAM_METHODS)
def test_ssl_socket_raises_type_error(loop, method, data_file):
    ctx = ssl.create_default_context()
    with socket.socket() as raw, open(data_file[0], "rb") as f:
        raw.setblocking(False)
        sock = ctx.wrap_socket(raw, server_hostname="localhost",
                               do_handshake_on_connect=False)
        with sock:
            with pytest.raises(TypeError, match="SSLSocket"):
                run(loop, call_sock_method(method, loop, sock, f))


# ---- cancellation leaves nothing behind ---------------------------------------------


def _pending_connect_target():
    """A listener whose accept queue is full, so a further connect stays pending."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(listener.getsockname())
        fillers.append(s)
    return listener, fillers


@pytest.mark.parametrize("method", ["sock_recv", "sock_recv_into", "sock_recvfrom",
                                    "sock_recvfrom_into"])
def test_cancelled_receive_leaves_no_reader(loop, method, socket_pair, udp_pair):
    a, b = udp_pair if method in DATAGRAM_METHODS else socket_pair

    async def main():
        task = loop.create_task(call_sock_method(method, loop, b, None))
        await until_pending(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return no_watchers(loop, b.fileno())

    assert run(loop, main()) is True
    # The socket still works, and nothing stale consumes its data.
    if method in DATAGRAM_METHODS:
        a.sendto(b"after", b.getsockname())
    else:
        a.send(b"after")
    assert b.recv(100) == b"after"


def test_cancelled_recv_does_not_eat_later_data(loop, socket_pair):
    a, b = socket_pair

    async def main():
        task = loop.create_task(loop.sock_recv(b, 100))
        await until_pending(task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        a.send(b"one")
        return await loop.sock_recv(b, 100)

    assert run(loop, main()) == b"one"


def test_cancelled_accept_leaves_no_reader(loop, listener):

    async def main():
        task = loop.create_task(loop.sock_accept(listener))
        await until_pending(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return no_watchers(loop, listener.fileno())

    assert run(loop, main()) is True
    with socket.create_connection(listener.getsockname()):
        listener.setblocking(True)
        listener.settimeout(WAIT)
        conn, _ = listener.accept()  # the connection was not taken by a stale accept
        conn.close()


def test_cancelled_connect_leaves_no_writer(loop):
    target, fillers = _pending_connect_target()
    client = socket.socket()
    client.setblocking(False)
    try:
        async def main():
            task = loop.create_task(loop.sock_connect(client, target.getsockname()))
            await until_pending(task)
            await asyncio.sleep(0.05)
            if task.done():
                return None  # the kernel completed it despite the full backlog
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0)
            return no_watchers(loop, client.fileno())

        result = run(loop, main())
        if result is None:
            pytest.skip("the kernel completed the connect despite a full backlog")
        assert result is True
    finally:
        for s in [client, target, *fillers]:
            s.close()


def test_cancelled_sendall_leaves_no_writer(loop, tcp):
    client, server = tcp
    fill_send_buffer(client)

    async def main():
        task = loop.create_task(loop.sock_sendall(client, b"y" * (1 << 20)))
        await until_pending(task)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        return no_watchers(loop, client.fileno())

    assert run(loop, main()) is True


def test_finished_waits_leave_no_watcher(loop, tcp, listener):
    """A sock_* call that had to wait unwatches its socket before it returns."""
    client, server = tcp

    async def main():
        recv = loop.create_task(loop.sock_recv(server, 100))
        await until_pending(recv)
        client.send(b"x")
        assert await recv == b"x"
        left = [no_watchers(loop, server.fileno())]

        sent = fill_send_buffer(client)
        sendall = loop.create_task(loop.sock_sendall(client, b"y" * 65536))
        await until_pending(sendall)
        assert len(await recv_exactly(loop, server, sent + 65536)) == sent + 65536
        await sendall
        left.append(no_watchers(loop, client.fileno()))

        accept = loop.create_task(loop.sock_accept(listener))
        await until_pending(accept)
        with socket.create_connection(listener.getsockname()):
            conn, _ = await accept
            conn.close()
        left.append(no_watchers(loop, listener.fileno()))
        return left

    assert run(loop, main()) == [True, True, True]


def test_cancelled_recv_keeps_a_reader_that_replaced_it(loop, socket_pair):
    """add_reader on the fd of a waiting sock_recv replaces it; cancelling the
    sock_recv afterwards must not remove the new reader."""
    a, b = socket_pair

    async def main():
        task = loop.create_task(loop.sock_recv(b, 100))
        await until_pending(task)
        got = loop.create_future()
        loop.add_reader(b.fileno(), lambda: got.done() or got.set_result(b.recv(100)))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        a.send(b"to the new reader")
        try:
            return await got
        finally:
            loop.remove_reader(b.fileno())

    assert run(loop, main()) == b"to the new reader"


def test_abandoned_wait_frees_its_task_and_socket(loop, socket_pair):
    """A cancelled sock_recv leaves no reference to its task or socket behind."""
    _, b = socket_pair
    sock = socket.socket(fileno=os.dup(b.fileno()))
    sock.setblocking(False)

    async def main(sock):
        task = loop.create_task(loop.sock_recv(sock, 100))
        await until_pending(task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return weakref.ref(task)

    task_ref = run(loop, main(sock))
    sock_ref = weakref.ref(sock)
    sock.close()
    del sock
    gc.collect()
    assert task_ref() is None and sock_ref() is None


# ---- sock_sendfile -------------------------------------------------------------------


def _sendfile(loop, tcp, file, *args, **kwargs):
    """Run sock_sendfile on the client while the server reads to EOF."""
    client, server = tcp

    async def main():
        reader = loop.create_task(recv_to_eof(loop, server))
        sent = await loop.sock_sendfile(client, file, *args, **kwargs)
        client.shutdown(socket.SHUT_WR)
        return sent, await reader

    return run(loop, main())


def test_sendfile_sends_a_whole_file(loop, tcp, data_file):
    path, data = data_file
    with open(path, "rb") as f:
        sent, received = _sendfile(loop, tcp, f)
        assert f.tell() == len(data)  # the file position follows what was sent
    assert sent == len(data)
    assert digest(received) == digest(data)
    assert no_watchers(loop, tcp[0].fileno())


def test_sendfile_with_offset_and_count(loop, tcp, data_file):
    path, data = data_file
    with open(path, "rb") as f:
        sent, received = _sendfile(loop, tcp, f, 1000, 200000)
        assert f.tell() == 201000
    assert sent == 200000
    assert received == data[1000:201000]


def test_sendfile_count_past_the_end_stops_at_eof(loop, tcp, data_file):
    path, data = data_file
    with open(path, "rb") as f:
        sent, received = _sendfile(loop, tcp, f, len(data) - 10, 1000)
    assert (sent, received) == (10, data[-10:])


def test_sendfile_of_an_empty_file(loop, tcp, tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        assert _sendfile(loop, tcp, f) == (0, b"")


def test_sendfile_falls_back_for_a_file_without_fileno(loop, tcp):
    data = payload(300000, seed=5)
    f = io.BytesIO(data)
    sent, received = _sendfile(loop, tcp, f, 7, 100000)
    assert (sent, received) == (100000, data[7:100007])
    assert f.tell() == 100007


def test_sendfile_without_fallback_raises(loop, tcp):
    with pytest.raises(asyncio.SendfileNotAvailableError):
        run(loop, loop.sock_sendfile(tcp[0], io.BytesIO(b"abc"), fallback=False))


def test_sendfile_bad_arguments(loop, tcp, data_file, tmp_path):
    client = tcp[0]
    path, _ = data_file
    with open(path, "rb") as f, open(path, "r") as text:
        with pytest.raises(ValueError, match="binary mode"):
            run(loop, loop.sock_sendfile(client, text))
        with pytest.raises(ValueError, match="count"):
            run(loop, loop.sock_sendfile(client, f, 0, 0))
        with pytest.raises(TypeError, match="count"):
            run(loop, loop.sock_sendfile(client, f, 0, "10"))
        with pytest.raises(ValueError, match="offset"):
            run(loop, loop.sock_sendfile(client, f, -1))
        with pytest.raises(TypeError, match="offset"):
            run(loop, loop.sock_sendfile(client, f, 1.5))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setblocking(False)
            with pytest.raises(ValueError, match="SOCK_STREAM"):
                run(loop, loop.sock_sendfile(udp, f))


def test_sendfile_to_a_reset_peer_raises_connection_error(loop, tcp, tmp_path):
    client, server = tcp
    path = tmp_path / "big"
    path.write_bytes(b"z" * (16 * 1024 * 1024))
    with open(path, "rb") as f:
        async def main():
            task = loop.create_task(loop.sock_sendfile(client, f))
            await until_pending(task)
            reset(server)
            with pytest.raises(ConnectionError):
                await task

        run(loop, main())
    assert no_watchers(loop, client.fileno())


def test_fd_count_is_unchanged_after_sock_errors(loop):

    async def refused_and_reset():
        for _ in range(10):
            s = socket.socket()
            s.setblocking(False)
            with s:
                with pytest.raises(ConnectionRefusedError):
                    await loop.sock_connect(s, ("127.0.0.1", closed_port()))
            a, b = tcp_pair()
            with a:
                reset(b)
                with pytest.raises(ConnectionResetError):
                    await loop.sock_recv(a, 10)

    assert_fds_steady(loop, lambda: run(loop, refused_and_reset()))
