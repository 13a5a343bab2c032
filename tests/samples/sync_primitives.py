"""Event, Lock, Semaphore and Condition coordinating tasks."""
import asyncio


async def waiter(event, name, log):
    await event.wait()
    log.append(f"{name} saw the event")


async def use_lock(lock, shared, name):
    async with lock:
        value = shared["counter"]
        await asyncio.sleep(0.001)  # another task would interleave here without the lock
        shared["counter"] = value + 1
        shared["holders"].append(name)


async def limited(sem, state, name):
    async with sem:
        state["inside"] += 1
        state["max"] = max(state["max"], state["inside"])
        await asyncio.sleep(0.005)
        state["inside"] -= 1


async def consumer(cond, items, name, log):
    async with cond:
        await cond.wait_for(lambda: items)
        log.append(f"{name} took {items.pop(0)}")


async def main():
    event = asyncio.Event()
    log = []
    waiters = [asyncio.create_task(waiter(event, f"waiter {i}", log)) for i in range(3)]
    await asyncio.sleep(0.01)
    print("before set:", log)
    event.set()
    await asyncio.gather(*waiters)
    print("after set:", sorted(log))

    lock = asyncio.Lock()
    shared = {"counter": 0, "holders": []}
    await asyncio.gather(*(use_lock(lock, shared, n) for n in range(10)))
    print("counter:", shared["counter"], "holders:", sorted(shared["holders"]))

    sem = asyncio.Semaphore(3)
    state = {"inside": 0, "max": 0}
    await asyncio.gather(*(limited(sem, state, n) for n in range(10)))
    print("most tasks inside the semaphore at once:", state["max"])

    cond = asyncio.Condition()
    items = []
    log = []
    consumers = [asyncio.create_task(consumer(cond, items, f"consumer {i}", log))
                 for i in range(3)]
    for item in ("apple", "banana", "cherry"):
        await asyncio.sleep(0.005)
        async with cond:
            items.append(item)
            cond.notify()
    await asyncio.gather(*consumers)
    print("condition:", len(log), "items taken;", sorted(entry.split()[-1] for entry in log))

    barrier_done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, barrier_done.set)
    print("event set by a timer:", await asyncio.wait_for(barrier_done.wait(), 5))


asyncio.run(main())
