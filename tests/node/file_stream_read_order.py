"""Twin of file_stream_read_order.js: a chunk read by phaseloop.streams is
delivered as an I/O completion, so where the reader resumes call_soon runs
first (even one queued after a call_later(0)), then call_immediate, then
call_later(0)."""
import asyncio
import collections

import phaseloop
from phaseloop.streams import create_read_stream


async def first_chunk_then(loop):
    stream = create_read_stream(__file__)
    await stream.read()
    stream.destroy()
    done = loop.create_future()
    order = []

    def note(what):
        order.append(what)
        if len(order) == 3:
            done.set_result(", ".join(order))

    loop.call_later(0, note, "timeout")
    loop.call_soon(note, "microtask")
    loop.call_immediate(note, "immediate")
    return await done


async def main():
    loop = asyncio.get_running_loop()
    seen = collections.Counter()
    for _ in range(20):
        seen[await first_chunk_then(loop)] += 1
    for order, n in seen.items():
        print(f"after a chunk is read: {order} ({n} of 20)")


phaseloop.run(main())
