"""Twin of thread_pool_completion_order.js: run_in_executor and asyncio.to_thread
complete in the poll phase, so call_immediate runs before call_later(0)."""
import asyncio
import collections
import hashlib

import phaseloop


def read_this_file():
    with open(__file__, "rb") as f:
        return f.read()


def immediate_or_timeout(loop):
    done = loop.create_future()
    order = []

    def note(what):
        order.append(what)
        if len(order) == 2:
            done.set_result(" then ".join(order))

    loop.call_later(0, note, "timeout")
    loop.call_immediate(note, "immediate")
    return done


async def count(label, work):
    loop = asyncio.get_running_loop()
    seen = collections.Counter()
    for _ in range(20):
        await work()
        seen[await immediate_or_timeout(loop)] += 1
    for order, n in seen.items():
        print(f"{label}: {order} ({n} of 20)")


async def main():
    loop = asyncio.get_running_loop()
    await count("thread pool, first API", lambda: loop.run_in_executor(None, read_this_file))
    await count("thread pool, second API",
                lambda: asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", b"secret", b"salt", 1))


phaseloop.run(main())
