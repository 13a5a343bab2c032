"""TCP echo server and client with streams (start_server / open_connection)."""
import asyncio


async def handle_echo(reader, writer):
    while data := await reader.readline():
        writer.write(data.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle_echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    print("serving on 127.0.0.1:", isinstance(port, int))

    async with server:
        reader, writer = await asyncio.open_connection(host, port)
        for line in ("hello", "phased", "loop"):
            writer.write(line.encode() + b"\n")
            await writer.drain()
            print("echo:", (await reader.readline()).decode().strip())
        writer.write_eof()
        print("eof:", await reader.read() == b"")
        writer.close()
        await writer.wait_closed()

        # Several clients at once.
        async def client(n):
            r, w = await asyncio.open_connection(host, port)
            w.write(f"client {n}\n".encode())
            line = await r.readline()
            w.close()
            await w.wait_closed()
            return line.decode().strip()

        print(await asyncio.gather(*(client(n) for n in range(5))))
    print("server closed:", not server.is_serving())


asyncio.run(main())
