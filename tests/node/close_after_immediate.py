"""Twin of close_after_immediate.js. Node reports the close in its close phase;
phaseloop runs connection_lost as a ready callback, as asyncio does."""
import asyncio

import phaseloop


class Server(asyncio.Protocol):
    def __init__(self, lost):
        self.lost = lost

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        loop = asyncio.get_running_loop()
        print("data received")
        loop.call_immediate(print, "immediate")
        self.transport.close()
        loop.call_soon(print, "microtask")

    def connection_lost(self, exc):
        print("connection lost")
        self.lost.set_result(None)


async def main():
    loop = asyncio.get_running_loop()
    lost = loop.create_future()
    server = await loop.create_server(lambda: Server(lost), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    transport.write(b"x")
    await lost
    transport.close()
    server.close()
    await server.wait_closed()


loop = phaseloop.new_event_loop()
loop.run_until_complete(main())
loop.close()
