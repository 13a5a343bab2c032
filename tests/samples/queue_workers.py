"""A Queue shared by workers: distribute jobs, wait with join(), cancel the workers."""
import asyncio


async def worker(name, queue, results):
    while True:
        job = await queue.get()
        await asyncio.sleep(job / 1000)
        results.append((job, name))
        queue.task_done()


async def main():
    queue = asyncio.Queue()
    for job in [5, 1, 3, 8, 2, 7, 4, 6, 9, 1, 2, 3]:
        queue.put_nowait(job)

    results = []
    workers = [asyncio.create_task(worker(f"worker-{i}", queue, results))
               for i in range(3)]
    await queue.join()

    for task in workers:
        task.cancel()
    outcome = await asyncio.gather(*workers, return_exceptions=True)

    print("jobs done:", len(results))
    print("total work:", sum(job for job, _ in results))
    print("sorted jobs:", sorted(job for job, _ in results))
    print("every worker helped:", len({name for _, name in results}) == 3)
    print("workers cancelled:", all(isinstance(o, asyncio.CancelledError) for o in outcome))

    # A bounded queue blocks the producer until a consumer makes room.
    bounded = asyncio.Queue(maxsize=2)
    consumed = []

    async def consumer():
        while (item := await bounded.get()) is not None:
            consumed.append(item)

    consumer_task = asyncio.create_task(consumer())
    for item in range(10):
        await bounded.put(item)
    await bounded.put(None)
    await consumer_task
    print("bounded queue delivered:", consumed)


asyncio.run(main())
