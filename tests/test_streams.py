"""asyncio's streams (open_connection / start_server), unchanged, on both loops.

The streams module itself is asyncio's: these tests check that it runs on
phaseloop's transports as it does on asyncio's: line and exact reads,
limits, EOF handling, drain against a peer that does not read, many
clients, and the server object.
"""
import asyncio
import hashlib

import pytest

from test_tcp import HOST, MiB, close_server, digest, payload, port_of, run


async def serve(handler, **kwargs):
    server = await asyncio.start_server(handler, HOST, 0, **kwargs)
    return server, port_of(server)


async def upper_lines(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


def test_readline_readexactly_readuntil(loop):

    async def handler(reader, writer):
        writer.write(b"first line\nEXACT12345header: a\r\n\r\nbody")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server, port = await serve(handler)
        reader, writer = await asyncio.open_connection(HOST, port)
        got = [
            await reader.readline(),
            await reader.readexactly(10),
            await reader.readuntil(b"\r\n\r\n"),
            await reader.read(100),
        ]
        assert await reader.read(100) == b""
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return got

    assert run(loop, main()) == [b"first line\n", b"EXACT12345", b"header: a\r\n\r\n", b"body"]


def test_line_iteration_and_echo(loop):
    lines = [b"line %d\n" % i for i in range(100)]

    async def main():
        server, port = await serve(upper_lines)
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.writelines(lines)
        await writer.drain()
        assert writer.can_write_eof()
        writer.write_eof()
        got = [line async for line in reader]
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return got

    assert run(loop, main()) == [line.upper() for line in lines]


def test_incomplete_read(loop):

    async def handler(reader, writer):
        writer.write(b"short")
        writer.close()

    async def main():
        server, port = await serve(handler)
        reader, writer = await asyncio.open_connection(HOST, port)
        with pytest.raises(asyncio.IncompleteReadError) as info:
            await reader.readexactly(10)
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return info.value

    error = run(loop, main())
    assert (error.partial, error.expected) == (b"short", 10)


def test_limit_overrun(loop):

    async def handler(reader, writer):
        writer.write(b"x" * 40 + b"\n")
        await writer.drain()
        await reader.read()  # wait for the client to finish
        writer.close()

    async def main():
        server, port = await serve(handler)
        reader, writer = await asyncio.open_connection(HOST, port, limit=16)
        with pytest.raises(asyncio.LimitOverrunError):
            await reader.readuntil(b"\n")
        with pytest.raises(ValueError):
            await reader.readline()
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())


def test_drain_waits_for_a_peer_that_does_not_read(loop):
    data = payload(16 * MiB, seed=13)
    chunk = 64 * 1024

    async def main():
        backed_up = asyncio.Event()
        received = loop.create_future()

        async def slow_reader(reader, writer):
            await backed_up.wait()  # read nothing until the writer is held back
            sha, size = hashlib.sha256(), 0
            while block := await reader.read(chunk):
                sha.update(block)
                size += len(block)
            received.set_result((size, sha.hexdigest()))
            writer.close()

        server, port = await serve(slow_reader)
        reader, writer = await asyncio.open_connection(HOST, port)
        transport = writer.transport
        low, high = transport.get_write_buffer_limits()
        waits = 0
        for offset in range(0, len(data), chunk):
            writer.write(data[offset:offset + chunk])
            if transport.get_write_buffer_size() > high:
                waits += 1
                backed_up.set()
            await writer.drain()
            assert transport.get_write_buffer_size() <= high  # memory stays bounded
        writer.write_eof()
        result = await received
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return waits, result

    waits, result = run(loop, main(), timeout=20)
    assert waits >= 1, "the peer never held the writer back"
    assert result == digest(data)


def test_many_clients(loop):
    count = 200

    async def client(port, i):
        reader, writer = await asyncio.open_connection(HOST, port)
        answers = []
        for j in range(3):
            writer.write(b"client %d message %d\n" % (i, j))
            answers.append(await reader.readline())
        writer.close()
        await writer.wait_closed()
        return answers

    async def main():
        server, port = await serve(upper_lines, backlog=count)
        results = await asyncio.gather(*(client(port, i) for i in range(count)))
        await close_server(server)
        return results

    results = run(loop, main(), timeout=20)
    assert results == [[b"CLIENT %d MESSAGE %d\n" % (i, j) for j in range(3)]
                       for i in range(count)]


def test_writer_extra_info_and_close(loop):
    peers = []

    async def handler(reader, writer):
        peers.append(writer.get_extra_info("peername"))
        await reader.read()
        writer.close()

    async def main():
        server, port = await serve(handler)
        reader, writer = await asyncio.open_connection(HOST, port)
        sockname = writer.get_extra_info("sockname")
        assert writer.get_extra_info("peername") == (HOST, port)
        assert not writer.is_closing()
        writer.close()
        assert writer.is_closing()
        await writer.wait_closed()
        await close_server(server)
        return sockname

    sockname = run(loop, main())
    assert peers == [sockname]


def test_handler_exception_goes_to_the_exception_handler(loop):
    contexts = []
    loop.set_exception_handler(lambda lp, context: contexts.append(context))

    async def failing(reader, writer):
        raise RuntimeError("handler failed")

    async def main():
        server, port = await serve(failing)
        reader, writer = await asyncio.open_connection(HOST, port)
        assert await reader.read() == b""  # the server side was closed
        writer.close()
        await writer.wait_closed()
        await close_server(server)

    run(loop, main())
    assert any(isinstance(c.get("exception"), RuntimeError) for c in contexts)


def test_server_serve_forever_and_async_with(loop):

    async def main():
        server = await asyncio.start_server(upper_lines, HOST, 0, start_serving=False)
        port = port_of(server)
        async with server:
            serving = loop.create_task(server.serve_forever())
            while not server.is_serving():
                await asyncio.sleep(0)
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"hi\n")
            answer = await reader.readline()
            writer.close()
            await writer.wait_closed()
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
        assert not server.is_serving()
        return answer

    assert run(loop, main()) == b"HI\n"
