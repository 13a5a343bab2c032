"""Timeouts: asyncio.timeout(), wait_for() and wait() with a timeout."""
import asyncio


async def slow_operation(log):
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        log.append("slow operation cancelled")
        raise
    return "never"


async def main():
    log = []
    try:
        async with asyncio.timeout(0.02):
            await slow_operation(log)
    except TimeoutError:
        print("asyncio.timeout: timed out")
    print(log.pop())

    loop = asyncio.get_running_loop()
    async with asyncio.timeout(None) as cm:
        cm.reschedule(loop.time() + 1.0)
        await asyncio.sleep(0.01)
    print("rescheduled timeout expired:", cm.expired())

    try:
        await asyncio.wait_for(slow_operation(log), timeout=0.02)
    except TimeoutError:
        print("wait_for: timed out")
    print(log.pop())

    print("wait_for in time:", await asyncio.wait_for(asyncio.sleep(0.01, "ok"), timeout=5))

    quick = asyncio.create_task(asyncio.sleep(0.01, "quick"))
    slow = asyncio.create_task(asyncio.sleep(10, "slow"))
    done, pending = await asyncio.wait({quick, slow}, timeout=0.1)
    print("done:", [t.result() for t in done], "pending:", len(pending))
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    print("slow cancelled:", slow.cancelled())


asyncio.run(main())
