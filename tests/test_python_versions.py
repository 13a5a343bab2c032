"""What asyncio added in 3.12 and 3.13, on phaseloop and asyncio's loop.

Each test runs where the running Python has the feature (a version check,
never a skip of phaseloop alone): eager tasks inside a TaskGroup, custom
eager factories, Task.get_context, Queue.shutdown, as_completed as an async
iterator, and a TaskGroup cancelled from outside.
"""
import asyncio
import contextvars
import sys

import pytest

PY312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="new in Python 3.12")
PY313 = pytest.mark.skipif(sys.version_info < (3, 13), reason="new in Python 3.13")


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 5))


@PY312
def test_eager_tasks_in_a_task_group(loop):
    order = []

    async def child(name, pause):
        order.append(f"{name} started")
        if pause:
            await asyncio.sleep(0)
        order.append(f"{name} done")
        return name

    async def main():
        async with asyncio.TaskGroup() as group:
            first = group.create_task(child("a", pause=False))
            # An eager task that never suspends is done on return.
            assert first.done()
            second = group.create_task(child("b", pause=True))
            assert not second.done()
            order.append("group body ends")
        return first.result(), second.result()

    loop.set_task_factory(asyncio.eager_task_factory)
    assert run(loop, main()) == ("a", "b")
    assert order == ["a started", "a done", "b started", "group body ends", "b done"]


@PY312
def test_custom_eager_task_factory(loop):
    class NamedTask(asyncio.Task):
        pass

    async def job():
        return type(asyncio.current_task()).__name__

    async def main():
        task = asyncio.get_running_loop().create_task(job())
        assert task.done()
        return task.result()

    loop.set_task_factory(asyncio.create_eager_task_factory(NamedTask))
    assert run(loop, main()) == "NamedTask"


@PY312
def test_task_get_context(loop):
    var = contextvars.ContextVar("var", default="unset")

    async def job():
        var.set("in the task")

    async def main():
        ctx = contextvars.copy_context()
        task = asyncio.get_running_loop().create_task(job(), context=ctx)
        assert task.get_context() is ctx
        await task
        return ctx[var]

    assert run(loop, main()) == "in the task"


@PY313
def test_queue_shutdown_wakes_waiting_getters(loop):
    async def main():
        queue = asyncio.Queue()
        getter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        queue.shutdown()
        with pytest.raises(asyncio.QueueShutDown):
            await getter
        with pytest.raises(asyncio.QueueShutDown):
            queue.put_nowait(1)

    run(loop, main())


@PY313
def test_as_completed_async_iterator(loop):
    async def after(delay, value):
        await asyncio.sleep(delay)
        return value

    async def main():
        tasks = [asyncio.ensure_future(after(d, v)) for d, v in ((0.03, "slow"), (0.0, "fast"))]
        got = []
        async for done in asyncio.as_completed(tasks):
            assert done in tasks       # 3.13 yields the original tasks
            got.append(await done)
        return got

    assert run(loop, main()) == ["fast", "slow"]


def test_task_group_cancelled_from_outside(loop):
    cleaned = []

    async def child(i):
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(i)

    async def parent():
        async with asyncio.TaskGroup() as group:
            for i in range(3):
                group.create_task(child(i))

    async def main():
        task = asyncio.ensure_future(parent())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sorted(cleaned)

    assert run(loop, main()) == [0, 1, 2]
