"""TLS records as they come off the wire, on phaseloop and asyncio.

The peer is a thread that speaks TLS by hand (ssl.SSLObject over two
MemoryBIOs on a blocking socket, BioPeer), so a test can cut records at
any byte, stop in the middle of one, spoil one, or send bytes that are not
TLS at all. Each test checks what the loop's protocol sees (the events in
order, the bytes, the exception) and that the server and the fd count are
unharmed; both loops must give the same outcome.
"""
import asyncio
import socket
import ssl
import threading

import pytest

from support.net import (HOST, WAIT, Recorder, ServerSide, assert_fds_steady, close_server,
                      digest, payload, port_of, run, set_linger_zero)
from support.tls import BioPeer, in_thread, serve_one_peer, tls_server


def split_records(wire):
    """TLS records: a 5-byte header (type, version, length), then length bytes."""
    records = []
    while wire:
        end = 5 + int.from_bytes(wire[3:5], "big")
        records.append(wire[:end])
        wire = wire[end:]
    return records


def cut_at_pattern(wire):
    """Cuts of 1 to 16,000 bytes: inside headers, inside bodies, across records."""
    sizes = [1, 2, 3, 4, 5, 6, 7, 100, 1, 16000, 3, 1000, 2, 7000]
    pieces, i, k = [], 0, 0
    while i < len(wire):
        pieces.append(wire[i:i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return pieces


def cut_record_tails(wire):
    """Every record in three: inside its header, its body, its last 7 bytes.
    The last piece holds less than the record's plaintext: the whole record
    must come out when it arrives, not 7 bytes of it."""
    pieces = []
    for record in split_records(wire):
        pieces += [record[:2], record[2:-7], record[-7:]]
    return pieces


def send_pieces(sock, pieces):
    for piece in pieces:
        sock.sendall(piece)
        threading.Event().wait(0.002)   # each piece its own read on the other side


@pytest.mark.parametrize("cut", [cut_at_pattern, cut_record_tails], ids=["pattern", "tails"])
def test_records_cut_at_any_byte_arrive_whole(loop, server_ctx, client_ctx, cut):
    messages = [payload(700, seed=1), payload(20000, seed=2), payload(50, seed=3),
                payload(40000, seed=4)]
    sent = b"".join(messages)
    sides = ServerSide(keep=False)

    def peer(port):
        client = BioPeer.connect(port, client_ctx)
        try:
            client.handshake()
            send_pieces(client.sock, cut(b"".join(client.records(m) for m in messages)))
            return client.read_exactly(5)
        finally:
            client.close()

    async def main():
        server, errors = await tls_server(loop, server_ctx, sides)
        join = in_thread(peer, port_of(server))
        proto = await sides.first_protocol()
        await proto.received_at_least(len(sent))
        proto.transport.write(b"thank")
        assert await loop.run_in_executor(None, join) == b"thank"
        await proto.lost
        await close_server(server)
        return proto, errors

    proto, errors = run(loop, main(), timeout=WAIT * 3)
    assert proto.digest() == digest(sent)
    assert errors == []


def test_record_cut_short_by_tcp_eof(loop, server_ctx, client_ctx):
    def peer(port):
        client = BioPeer.connect(port, client_ctx)
        try:
            client.handshake()
            whole = client.records(b"complete")
            half = client.records(b"never completed")
            client.sock.sendall(whole + half[:len(half) // 2])
            client.sock.shutdown(socket.SHUT_WR)   # a FIN inside a record, no close_notify
            while client.sock.recv(4096):          # session tickets, then the server's FIN
                pass
        finally:
            client.close()

    proto, exc, errors = run(loop, serve_one_peer(loop, server_ctx, peer))
    # As asyncio's SSLProtocol: the whole record is delivered, the cut one is
    # not, then eof_received (an unclean EOF), then connection_lost(None).
    assert bytes(proto.data) == b"complete"
    assert proto.events == ["made", "data", "eof", "lost"]
    assert exc is None
    assert errors == []


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
                                     bytes(range(256))],
                         ids=["http", "bad-handshake-record", "binary"])
def test_garbage_instead_of_a_client_hello(loop, server_ctx, client_ctx, garbage):
    sides = ServerSide()

    def raw_client(port):
        with socket.create_connection((HOST, port), timeout=WAIT) as raw:
            raw.sendall(garbage)
            answer = b""
            try:
                while chunk := raw.recv(4096):
                    answer += chunk
            except ConnectionResetError:
                pass
            return answer

    server, errors = run(loop, tls_server(loop, server_ctx, sides))
    port = port_of(server)
    answers = []
    # The server drops each one without a report (as asyncio: an SSLError
    # is an OSError, only logged in debug mode) and goes on serving.
    assert_fds_steady(
        loop, lambda: answers.append(run(loop, loop.run_in_executor(None, raw_client, port))),
        repeats=2)
    assert answers == [b""] * 3

    async def good_client():
        transport, proto = await loop.create_connection(
            Recorder, HOST, port, ssl=client_ctx, server_hostname="localhost")
        transport.close()
        return await proto.lost

    assert run(loop, good_client()) is None
    run(loop, close_server(server))
    assert errors == []
    # The application protocol of a connection whose handshake failed never
    # hears of it: made by the factory, never connection_made.
    assert all(p.events == [] for p in sides.protocols[:-1])


def test_spoiled_record_after_the_handshake(loop, server_ctx, client_ctx):
    delivered = threading.Event()

    def peer(port):
        client = BioPeer.connect(port, client_ctx)
        try:
            client.handshake()
            client.sock.sendall(client.records(b"fine"))
            delivered.wait(WAIT)
            bad = bytearray(client.records(b"tampered with"))
            bad[-3] ^= 0x55                    # in the tag: the record fails to decrypt
            client.sock.sendall(bytes(bad))
            try:
                while client.sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
        finally:
            client.close()

    async def fine_delivered(proto):
        await proto.received_at_least(4)
        delivered.set()

    proto, exc, errors = run(loop, serve_one_peer(loop, server_ctx, peer, fine_delivered))
    assert bytes(proto.data) == b"fine"
    assert proto.events == ["made", "data", "lost"]
    assert isinstance(exc, ssl.SSLError)
    assert errors == []


def test_client_hello_then_the_client_goes_away(loop, server_ctx, client_ctx):
    """Abort in the middle of the handshake, seen from the server."""
    sides = ServerSide()
    server, errors = run(loop, tls_server(loop, server_ctx, sides))
    port = port_of(server)

    def hello_then_reset():
        client = BioPeer.connect(port, client_ctx)
        try:
            client.sock.sendall(client.first_flight())
            client.sock.recv(1)                 # the server's first flight has begun
            set_linger_zero(client.sock)
        finally:
            client.close()

    try:
        assert_fds_steady(loop, lambda: run(loop, loop.run_in_executor(None, hello_then_reset)),
                          repeats=2)
        run(loop, asyncio.sleep(0.05))
    finally:
        run(loop, close_server(server))
    assert errors == []
    assert all(p.events == [] for p in sides.protocols)


@pytest.mark.parametrize("how", ["reset", "close"])
def test_server_goes_away_in_the_middle_of_the_handshake(loop, client_ctx, how):
    """Abort in the middle of the handshake, seen from the client."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(WAIT)

    def accept_hello_and_go():
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)                     # the ClientHello
            if how == "reset":
                set_linger_zero(conn)

    def connect_once():
        join = in_thread(accept_hello_and_go)
        with pytest.raises(ConnectionResetError):
            run(loop, loop.create_connection(Recorder, HOST, listener.getsockname()[1],
                                             ssl=client_ctx, server_hostname="localhost"))
        join()

    with listener:
        assert_fds_steady(loop, connect_once, repeats=2)


def test_handshake_cancelled_by_the_caller(loop, client_ctx):
    """Abort in the middle of the handshake: the connecting task is cancelled."""
    listener = socket.create_server((HOST, 0))   # accepts TCP, never speaks TLS

    def cancelled():
        async def main():
            task = loop.create_task(loop.create_connection(
                Recorder, HOST, listener.getsockname()[1], ssl=client_ctx,
                server_hostname="localhost"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(loop, main())

    with listener:
        assert_fds_steady(loop, cancelled, repeats=2)


def test_renegotiation_is_refused_cleanly(loop, certificate):
    """A TLS 1.2 client asks to renegotiate (openssl s_client's R command).
    Python's server contexts refuse; the connection ends with the client's
    alert as an SSLError, the server and its other connections go on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    sides = ServerSide()

    async def main():
        server, errors = await tls_server(loop, context, sides)
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"{HOST}:{port_of(server)}", "-tls1_2",
            "-no_ign_eof", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        proto = await sides.first_protocol()
        proc.stdin.write(b"before\n")
        await proto.received_at_least(7)
        proc.stdin.write(b"R\n")
        exc = await proto.lost
        proc.stdin.close()
        out, _ = await proc.communicate()
        bystander, bystander_proto = await loop.create_connection(
            Recorder, HOST, port_of(server), ssl=ssl.create_default_context(cafile=certificate[0]),
            server_hostname="localhost")
        bystander.close()
        await bystander_proto.lost
        await close_server(server)
        return proto, exc, errors

    proto, exc, errors = run(loop, main(), timeout=WAIT * 2)
    assert bytes(proto.data) == b"before\n"
    assert proto.events == ["made", "data", "lost"]
    assert isinstance(exc, ssl.SSLError)
    assert errors == []


def test_echo_over_a_peer_that_cuts_every_record(loop, server_ctx, client_ctx):
    """Both directions at once: the loop's client writes, the thread's server
    echoes every record cut in pieces."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(WAIT)
    data = payload(100_000, seed=7)

    def cutting_echo_server():
        conn, _ = listener.accept()
        server = BioPeer(conn, server_ctx, server_side=True)
        try:
            server.handshake()
            echoed = server.read_exactly(len(data))
            send_pieces(server.sock, cut_record_tails(server.records(echoed)))
        finally:
            server.close()

    async def main():
        join = in_thread(cutting_echo_server)
        transport, proto = await loop.create_connection(
            lambda: Recorder(keep=False), HOST, listener.getsockname()[1], ssl=client_ctx,
            server_hostname="localhost")
        transport.write(data)
        await proto.received_at_least(len(data))
        await loop.run_in_executor(None, join)
        await proto.lost
        return proto

    with listener:
        proto = run(loop, main(), timeout=WAIT * 3)
    assert proto.digest() == digest(data)
    assert proto.events == ["made", "data", "eof", "lost"]
