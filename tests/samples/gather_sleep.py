"""Coroutines with sleep() and gather(): factorials computed concurrently."""
import asyncio


async def factorial(name, number, step):
    f = 1
    for i in range(2, number + 1):
        print(f"Task {name}: Compute factorial({number}), currently i={i}...")
        await asyncio.sleep(step)
        f *= i
    print(f"Task {name}: factorial({number}) = {f}")
    return f


async def say_after(delay, what):
    await asyncio.sleep(delay)
    print(what)


async def main():
    # Sequential awaits, then the same concurrently with tasks.
    await say_after(0.01, "hello")
    await say_after(0.02, "world")
    task1 = asyncio.create_task(say_after(0.02, "world (task)"))
    task2 = asyncio.create_task(say_after(0.01, "hello (task)"))
    await task1
    await task2

    # Steps far apart (30 ms, 70 ms, 110 ms) so the interleaving is fixed.
    results = await asyncio.gather(
        factorial("A", 2, 0.03),
        factorial("B", 3, 0.07),
        factorial("C", 4, 0.11),
    )
    print(results)


asyncio.run(main())
