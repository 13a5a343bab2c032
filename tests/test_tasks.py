"""Futures and tasks on the loop: create_task options, factories, cancellation,
gather, asyncio.timeout, TaskGroup and contextvars."""
import asyncio
import contextvars
import sys

import pytest

user = contextvars.ContextVar("user", default="anonymous")


async def echo(value, steps=1):
    for _ in range(steps):
        await asyncio.sleep(0)
    return value


# ---- futures -----------------------------------------------------------------


def test_create_future(loop):
    fut = loop.create_future()
    assert isinstance(fut, asyncio.Future)
    assert fut.get_loop() is loop
    assert not fut.done()
    loop.call_soon(fut.set_result, "value")
    assert loop.run_until_complete(fut) == "value"


def test_future_callbacks_run_on_the_loop_in_order(loop):
    fut = loop.create_future()
    order = []
    for i in range(5):
        fut.add_done_callback(lambda f, i=i: order.append(i))
    fut.set_result(None)
    assert order == []  # never synchronously
    loop.run_until_complete(asyncio.sleep(0))
    assert order == [0, 1, 2, 3, 4]


# ---- create_task -------------------------------------------------------------


def test_create_task_runs_coroutine(loop):
    task = loop.create_task(echo("result", steps=3))
    assert isinstance(task, asyncio.Task)
    assert task.get_loop() is loop
    assert loop.run_until_complete(task) == "result"


def test_create_task_name(loop):
    named = loop.create_task(echo(1), name="worker-1")
    unnamed = loop.create_task(echo(2))
    assert named.get_name() == "worker-1"
    assert unnamed.get_name().startswith("Task-")
    loop.run_until_complete(asyncio.gather(named, unnamed))


def test_create_task_context(loop):
    ctx = contextvars.Context()
    ctx.run(user.set, "alice")

    async def whoami():
        await asyncio.sleep(0)
        name = user.get()
        user.set("changed by task")
        return name

    task = loop.create_task(whoami(), context=ctx)
    assert loop.run_until_complete(task) == "alice"
    assert ctx.get(user) == "changed by task"
    assert user.get() == "anonymous"


def test_current_task_and_all_tasks(loop):
    async def inspect():
        me = asyncio.current_task()
        return me, asyncio.all_tasks()

    task = loop.create_task(inspect())
    me, all_tasks = loop.run_until_complete(task)
    assert me is task
    assert task in all_tasks


# ---- task factory ------------------------------------------------------------


def test_task_factory(loop):
    created = []

    def factory(lp, coro, **kwargs):
        task = asyncio.Task(coro, loop=lp, **kwargs)
        created.append(task)
        return task

    assert loop.get_task_factory() is None
    loop.set_task_factory(factory)
    assert loop.get_task_factory() is factory
    task = loop.create_task(echo("made by factory"), name="factory-made")
    assert created == [task]
    assert task.get_name() == "factory-made"
    assert loop.run_until_complete(task) == "made by factory"

    # Tasks created by asyncio itself go through the factory too.
    loop.run_until_complete(asyncio.gather(echo(1), echo(2)))
    assert len(created) == 3  # one more per gathered coroutine

    loop.set_task_factory(None)
    assert loop.get_task_factory() is None
    plain = loop.create_task(echo(3))
    assert plain not in created
    loop.run_until_complete(plain)


def test_task_factory_with_context(loop):
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(kwargs.get("context"))
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    ctx = contextvars.Context()
    loop.run_until_complete(loop.create_task(echo(1), context=ctx))
    assert seen[0] is ctx


def test_task_factory_gets_every_keyword(phase_loop):
    # phaseloop hands the factory every keyword on every Python, as CPython
    # 3.14 does (gh-128306); asyncio before 3.14 refuses keywords other than
    # name and context, so this is phaseloop-only there.
    loop = phase_loop
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(sorted(kwargs))
        kwargs.pop("priority")
        return asyncio.Task(coro, loop=lp, **kwargs)

    loop.set_task_factory(factory)
    task = loop.create_task(echo(1), name="named", priority=5)
    assert loop.run_until_complete(task) == 1
    assert task.get_name() == "named"
    expected = ["name", "priority"] if sys.version_info >= (3, 14) else ["priority"]
    assert seen == [expected]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
def test_task_factory_gets_eager_start(phase_loop):
    loop = phase_loop
    seen = []

    def factory(lp, coro, **kwargs):
        seen.append(kwargs.get("eager_start"))
        return asyncio.Task(coro, loop=lp, **kwargs)

    async def main():
        order = []

        async def job():
            order.append("ran")

        task = loop.create_task(job(), eager_start=True)
        assert order == ["ran"] and task.done()

    loop.set_task_factory(factory)
    loop.run_until_complete(main())
    assert True in seen


def test_unknown_create_task_keyword_raises_type_error(loop):
    coro = echo(1)
    with pytest.raises(TypeError):
        loop.create_task(coro, no_such_keyword=1)
    coro.close()


def test_set_task_factory_rejects_non_callable(loop):
    with pytest.raises(TypeError):
        loop.set_task_factory(42)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
def test_eager_task_factory(loop):
    order = []

    async def eager():
        order.append("started")
        await asyncio.sleep(0)
        order.append("resumed")
        return "eager"

    async def main():
        task = loop.create_task(eager())
        # On a running loop the coroutine ran up to its first suspension
        # inside create_task.
        assert order == ["started"]
        assert await task == "eager"
        assert order == ["started", "resumed"]

    loop.set_task_factory(asyncio.eager_task_factory)
    loop.run_until_complete(main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
def test_eager_task_that_finishes_synchronously(loop):
    async def immediate():
        return "done at once"

    async def main():
        task = loop.create_task(immediate())
        assert task.done()
        assert task.result() == "done at once"

    loop.set_task_factory(asyncio.eager_task_factory)
    loop.run_until_complete(main())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in Python 3.12")
def test_eager_task_on_a_loop_not_running_starts_later(loop):
    # CPython starts a task eagerly only while its loop runs.
    order = []

    async def eager():
        order.append("started")
        return "later"

    loop.set_task_factory(asyncio.eager_task_factory)
    task = loop.create_task(eager())
    assert order == [] and not task.done()
    assert loop.run_until_complete(task) == "later"
    assert order == ["started"]


# ---- cancellation --------------------------------------------------------------


def test_cancel_a_sleeping_task(loop):
    cleanup = []

    async def sleeper():
        try:
            await asyncio.sleep(10)
        finally:
            cleanup.append("finally ran")

    async def main():
        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0.001)
        task.cancel("stop now")
        with pytest.raises(asyncio.CancelledError):
            await task
        return task

    task = loop.run_until_complete(main())
    assert task.cancelled()
    assert cleanup == ["finally ran"]


def test_cancel_before_first_step(loop):
    started = []

    async def never():
        started.append(True)

    task = loop.create_task(never())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert started == []
    assert task.cancelled()


def test_task_that_suppresses_cancel(loop):
    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "ignored"

    async def main():
        task = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0)
        task.cancel()
        return await task

    assert loop.run_until_complete(main()) == "ignored"


def test_cancelling_a_task_cancels_the_future_it_awaits(loop):
    inner = loop.create_future()

    async def waiter():
        await inner

    task = loop.create_task(waiter())
    loop.run_until_complete(asyncio.sleep(0))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert inner.cancelled()


# ---- gather ---------------------------------------------------------------------


def test_gather_many_tasks(loop):
    async def main():
        return await asyncio.gather(*(echo(i, steps=i % 5) for i in range(2000)))

    assert loop.run_until_complete(main()) == list(range(2000))


def test_gather_many_sleepers(loop):
    async def nap(i):
        await asyncio.sleep((i % 10) / 1000)
        return i

    async def main():
        return await asyncio.gather(*(nap(i) for i in range(1000)))

    assert loop.run_until_complete(main()) == list(range(1000))


def test_gather_return_exceptions(loop):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("bad")

    async def main():
        return await asyncio.gather(echo(1), fail(), echo(3), return_exceptions=True)

    first, error, third = loop.run_until_complete(main())
    assert (first, third) == (1, 3)
    assert isinstance(error, ValueError)


# ---- timeouts and TaskGroup --------------------------------------------------------


def test_asyncio_timeout_expires(loop):
    async def main():
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        return loop.time() - start

    assert loop.run_until_complete(main()) >= 0.01


def test_asyncio_timeout_not_reached(loop):
    async def main():
        async with asyncio.timeout(10) as scope:
            result = await echo("in time", steps=3)
        return result, scope.expired()

    assert loop.run_until_complete(main()) == ("in time", False)


def test_asyncio_timeout_at_and_wait_for(loop):
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout_at(loop.time() + 0.005):
                await asyncio.sleep(10)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(10), 0.005)
        return await asyncio.wait_for(echo("fast"), 10)

    assert loop.run_until_complete(main()) == "fast"


def test_task_group(loop):
    async def main():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(echo(i, steps=2)) for i in range(100)]
        return [t.result() for t in tasks]

    assert loop.run_until_complete(main()) == list(range(100))


def test_task_group_failure_cancels_siblings(loop):
    cancelled = []

    async def sibling(i):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def fail():
        await asyncio.sleep(0.001)
        raise ValueError("one failed")

    async def main():
        async with asyncio.TaskGroup() as group:
            for i in range(5):
                group.create_task(sibling(i))
            group.create_task(fail())

    with pytest.raises(ExceptionGroup) as info:
        loop.run_until_complete(main())
    assert [type(e) for e in info.value.exceptions] == [ValueError]
    assert sorted(cancelled) == [0, 1, 2, 3, 4]


# ---- contextvars ------------------------------------------------------------------


def test_context_is_copied_into_child_tasks(loop):
    async def child():
        seen = user.get()
        user.set("child's own value")
        await asyncio.sleep(0)
        return seen, user.get()

    async def parent():
        user.set("parent")
        result = await asyncio.create_task(child())
        return result, user.get()

    (seen, child_value), parent_value = loop.run_until_complete(parent())
    assert seen == "parent"
    assert child_value == "child's own value"
    assert parent_value == "parent"  # the child's change did not leak
    assert user.get() == "anonymous"


def test_context_propagates_into_callbacks_from_a_task(loop):
    async def main():
        user.set("task user")
        seen = loop.create_future()
        loop.call_soon(lambda: seen.set_result(("soon", user.get())))
        soon = await seen
        seen = loop.create_future()
        loop.call_later(0.001, lambda: seen.set_result(("later", user.get())))
        later = await seen
        return soon, later

    assert loop.run_until_complete(main()) == (("soon", "task user"), ("later", "task user"))


def test_each_task_keeps_its_own_context(loop):
    async def worker(name):
        user.set(name)
        for _ in range(3):
            await asyncio.sleep(0)
        return user.get()

    async def main():
        return await asyncio.gather(*(worker(f"user-{i}") for i in range(50)))

    assert loop.run_until_complete(main()) == [f"user-{i}" for i in range(50)]


# ---- tasks as asyncio's own introspection sees them ------------------------------

# Tasks are asyncio's own (C) Task, entered and left through asyncio's C
# helpers, and the running loop is set with asyncio._set_running_loop:
# current_task(), all_tasks() and, from 3.14, `python -m asyncio ps` see
# them as they see tasks on asyncio's loop.


def test_tasks_are_asyncios_own(loop):
    async def main():
        task = asyncio.current_task()
        assert type(task) is asyncio.Task
        assert asyncio.current_task(loop) is task
        assert task in asyncio.all_tasks(loop)
        assert asyncio.get_running_loop() is loop and asyncio._get_running_loop() is loop
        return task

    task = loop.create_task(main())
    assert loop.run_until_complete(task) is task
    assert asyncio._get_running_loop() is None
    assert asyncio.current_task(loop) is None


def test_a_task_is_entered_while_it_runs(loop):
    # asyncio's _enter_task refuses a second task while one is entered: the
    # running task was entered through the same helper.
    async def other():
        pass

    async def main():
        coro = other()
        intruder = loop.create_task(coro)
        with pytest.raises(RuntimeError, match="while another task"):
            asyncio.tasks._enter_task(loop, intruder)
        await intruder

    loop.run_until_complete(main())


def test_no_task_is_current_in_a_plain_callback(loop):
    seen = []

    def callback():
        seen.append(asyncio.current_task(loop))

    async def main():
        loop.call_soon(callback)
        await asyncio.sleep(0.01)

    loop.run_until_complete(main())
    assert seen == [None]
