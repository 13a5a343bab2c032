"""run_in_executor(): blocking work in threads without blocking the loop."""
import asyncio
import concurrent.futures
import hashlib
import threading
import time


def blocking_io(delay):
    time.sleep(delay)
    return f"slept {delay}"


def cpu_bound(data):
    return hashlib.sha256(data).hexdigest()[:16]


async def main():
    loop = asyncio.get_running_loop()
    main_thread = threading.get_ident()

    result = await loop.run_in_executor(None, blocking_io, 0.01)
    print("default executor:", result)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        result = await loop.run_in_executor(pool, cpu_bound, b"phase" * 1000)
        print("custom thread pool:", result)
        thread = await loop.run_in_executor(pool, threading.get_ident)
        print("ran in another thread:", thread != main_thread)

    # The loop keeps running callbacks while a worker blocks.
    ticks = []
    for i in range(3):
        loop.call_later(0.01 * (i + 1), ticks.append, i)
    print(await loop.run_in_executor(None, blocking_io, 0.1), "ticks:", ticks)

    results = await asyncio.gather(*(asyncio.to_thread(cpu_bound, bytes([n]) * 10)
                                     for n in range(3)))
    print("to_thread:", results)


asyncio.run(main())
