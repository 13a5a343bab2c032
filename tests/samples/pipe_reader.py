"""Watch a pipe with add_reader(): read chunks written by timers until EOF."""
import asyncio
import os


async def main():
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    received = []
    words = ["alpha", "beta", "gamma"]
    eof = loop.create_future()

    def write_next():
        # One chunk at a time, so each read sees exactly one word.
        if words:
            os.write(write_fd, words.pop(0).encode())
        else:
            os.close(write_fd)

    def on_readable():
        data = os.read(read_fd, 1024)
        if data:
            received.append(data.decode())
            print("received:", data.decode())
            loop.call_later(0.005, write_next)
        else:
            loop.remove_reader(read_fd)
            eof.set_result(len(received))

    loop.add_reader(read_fd, on_readable)
    loop.call_later(0.01, write_next)

    chunks = await asyncio.wait_for(eof, 5)
    os.close(read_fd)
    print("chunks:", chunks, "text:", "".join(received))

    # A writer watcher: write when the pipe has room, then stop watching.
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    written = loop.create_future()

    def on_writable():
        loop.remove_writer(write_fd)
        written.set_result(os.write(write_fd, b"through add_writer"))

    loop.add_writer(write_fd, on_writable)
    print("wrote bytes:", await asyncio.wait_for(written, 5))
    print("read back:", os.read(read_fd, 100).decode())
    os.close(read_fd)
    os.close(write_fd)


asyncio.run(main())
