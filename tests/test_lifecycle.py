"""run_forever / run_until_complete / stop / close and the state around them."""
import asyncio
import socket
import sys

import pytest

from conftest import LOOP_FACTORIES


async def answer(value):
    await asyncio.sleep(0)
    return value


def test_run_forever_until_stop(loop):
    calls = []
    loop.call_soon(calls.append, 1)
    loop.call_later(0.001, calls.append, 2)
    loop.call_later(0.002, loop.stop)
    loop.run_forever()
    assert calls == [1, 2]
    assert not loop.is_running()


def test_run_forever_again_after_stop(loop):
    calls = []
    loop.call_soon(loop.stop)
    loop.call_later(0.005, calls.append, "from the first run")
    loop.run_forever()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert calls == ["from the first run"]


def test_stop_before_run_forever_runs_one_iteration(loop):
    calls = []
    loop.stop()
    loop.call_soon(calls.append, "ready")
    guard = loop.call_later(5, calls.append, "guard")
    loop.run_forever()
    guard.cancel()
    assert calls == ["ready"]
    assert not loop.is_running()


def test_stop_twice_is_harmless(loop):
    loop.call_soon(loop.stop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert loop.run_until_complete(answer(1)) == 1


def test_is_running(loop):
    seen = []
    assert not loop.is_running()
    loop.call_soon(lambda: seen.append(loop.is_running()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [True]
    assert not loop.is_running()


def test_running_loop_inside_callbacks(loop):
    seen = []
    loop.call_soon(lambda: seen.append(asyncio.get_running_loop()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [loop]
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_run_until_complete_returns_result(loop):
    assert loop.run_until_complete(answer(42)) == 42
    assert not loop.is_running()


def test_run_until_complete_raises_the_exception(loop):
    async def fail():
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        loop.run_until_complete(fail())
    assert loop.run_until_complete(answer("still usable")) == "still usable"


def test_run_until_complete_with_a_future(loop):
    fut = loop.create_future()
    loop.call_later(0.001, fut.set_result, "done")
    assert loop.run_until_complete(fut) == "done"


def test_run_until_complete_with_a_task_and_an_awaitable(loop):
    task = loop.create_task(answer("task"))
    assert loop.run_until_complete(task) == "task"

    class Awaitable:
        def __await__(self):
            return answer("awaitable").__await__()

    assert loop.run_until_complete(Awaitable()) == "awaitable"


def test_run_until_complete_rejects_a_non_future(loop):
    with pytest.raises(TypeError):
        loop.run_until_complete(42)
    with pytest.raises(TypeError):
        loop.run_until_complete(answer)  # the function, not a coroutine


def test_run_until_complete_rejects_a_future_of_another_loop(loop, loop_name):
    other = LOOP_FACTORIES[loop_name]()
    try:
        foreign = other.create_future()
        with pytest.raises(ValueError):
            loop.run_until_complete(foreign)
    finally:
        other.close()


def test_run_until_complete_stopped_early(loop):
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="stopped before Future completed"):
        loop.run_until_complete(fut)
    loop.call_soon(fut.set_result, "later")
    assert loop.run_until_complete(fut) == "later"


# CPython 3.13.0-3.13.2: a nested run_forever() that refuses to start still
# runs its cleanup, which marks the outer loop as not running; the nested
# run_until_complete() that follows then runs for ever in epoll_wait (a bug
# of asyncio's own loop, gh-130145, fixed in 3.13.3).
ASYNCIO_NESTED_RUN_HANGS = (3, 13) <= sys.version_info < (3, 13, 3)


def test_nested_run_raises(loop, loop_name):
    if loop_name == "asyncio" and ASYNCIO_NESTED_RUN_HANGS:
        pytest.skip("asyncio's loop hangs here on this Python (gh-130145)")
    errors = []

    def nested():
        for run in (loop.run_forever, lambda: loop.run_until_complete(loop.create_future())):
            try:
                run()
            except RuntimeError as exc:
                errors.append(str(exc))
        loop.stop()

    loop.call_soon(nested)
    loop.run_forever()
    assert len(errors) == 2
    assert all("already running" in message for message in errors)
    assert not loop.is_running()


def test_running_another_loop_inside_a_callback_raises(loop, loop_name):
    other = LOOP_FACTORIES[loop_name]()
    errors = []

    def run_other():
        other.call_soon(other.stop)  # so that a loop that does not refuse still returns
        try:
            other.run_forever()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    try:
        loop.call_soon(run_other)
        loop.run_forever()
    finally:
        other.close()
    assert len(errors) == 1
    assert "another loop is running" in str(errors[0])


def test_close_while_running_raises(loop):
    errors = []

    def close_now():
        try:
            loop.close()
        except RuntimeError as exc:
            errors.append(str(exc))
        loop.stop()

    loop.call_soon(close_now)
    loop.run_forever()
    assert len(errors) == 1
    assert "running" in errors[0]
    assert not loop.is_closed()


def test_close_is_idempotent(loop):
    assert not loop.is_closed()
    loop.close()
    assert loop.is_closed()
    loop.close()
    assert loop.is_closed()


def noop():
    pass


def create_task(loop):
    coro = answer(1)
    try:
        loop.create_task(coro)
    finally:
        coro.close()


def run_until_complete(loop):
    coro = answer(1)
    try:
        loop.run_until_complete(coro)
    finally:
        coro.close()


# Every way to give a loop new work; a closed loop refuses each one.
NEW_WORK = {
    "call_soon": lambda loop: loop.call_soon(noop),
    "call_later": lambda loop: loop.call_later(0, noop),
    "call_at": lambda loop: loop.call_at(loop.time(), noop),
    "call_soon_threadsafe": lambda loop: loop.call_soon_threadsafe(noop),
    "create_task": create_task,
    "run_forever": lambda loop: loop.run_forever(),
    "run_until_complete": run_until_complete,
    "run_in_executor": lambda loop: loop.run_in_executor(None, noop),
}


@pytest.mark.parametrize("name", sorted(NEW_WORK))
def test_closed_loop_rejects_new_work(loop, name):
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        NEW_WORK[name](loop)


def test_closed_loop_rejects_readers_and_writers(loop):
    a, b = socket.socketpair()
    try:
        loop.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_reader(a, noop)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.add_writer(b, noop)
    finally:
        a.close()
        b.close()
