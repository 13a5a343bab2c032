"""TaskGroup: wait for all children; one failure cancels the rest (ExceptionGroup)."""
import asyncio


async def fetch(name, delay, fail=False):
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        print(f"{name}: cancelled")
        raise
    if fail:
        raise ValueError(f"{name} failed")
    print(f"{name}: done")
    return name.upper()


async def main():
    async with asyncio.TaskGroup() as tg:
        first = tg.create_task(fetch("first", 0.02))
        second = tg.create_task(fetch("second", 0.01))
    print("both finished:", first.result(), second.result())

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fetch("slow", 1.0))
            tg.create_task(fetch("broken", 0.01, fail=True))
    except* ValueError as group:
        for exc in group.exceptions:
            print("caught:", exc)

    # Both fail in the same pass of the loop (sleep(0) only yields), so both
    # errors are in the group.  (With timers due at the same moment the order
    # in which tasks resume is the loop's business.)
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(fetch("x", 0, fail=True))
            tg.create_task(fetch("y", 0, fail=True))
    except ExceptionGroup as group:
        print("errors:", sorted(str(e) for e in group.exceptions))


asyncio.run(main())
