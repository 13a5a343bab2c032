"""phaseloop.workers.Worker: events, messages, data and exit codes, on both kinds.

Every worker is a real thread or process; the parent's side runs on phaseloop, and
where the parent's code does not need phaseloop, on asyncio's default loop too (the
``loop`` fixture). ``no_leaks`` checks threads, processes, fds and shared memory after.
"""
from __future__ import annotations

import asyncio
import os
import threading

import pytest

import phaseloop
from phaseloop import workers
from workers_support import KINDS, WAIT, loop_errors, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", KINDS)
def test_messages_events_and_exit_on_both_loops(kind, loop, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind=kind)
        events = []
        w.on("online", lambda: events.append("online"))
        w.on("exit", lambda code: events.append(("exit", code)))
        got = []
        w.on("message", got.append)
        for i in range(3):
            w.post_message({"i": i})
        while len(got) < 3:
            await asyncio.sleep(0.005)
        code = await w.terminate()
        return events, got, code, w.exit_code

    events, got, code, exit_code = run(parent, loop=loop)
    assert got == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert events == ["online", ("exit", 1)]
    assert code == exit_code == 1                    # terminate() exits 1, as in Node


@pytest.mark.parametrize("kind", KINDS)
def test_worker_side_globals(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:identity", data={"n": 10}, kind=kind,
                           name="ident")
        info = await w.receive()
        assert await w.wait() == 0
        return w, info

    w, info = run(parent)
    assert info["thread_id"] == w.thread_id > 0
    assert info["is_main_thread"] is False
    assert info["data"] == {"n": 10}
    assert info["loop"] == "phaseloop"
    if kind == "thread":
        assert info["pid"] == os.getpid() and info["thread"] == f"phaseloop-worker-{w.thread_id}"
        assert w.pid is None and w.start_method is None
    else:
        assert info["pid"] == w.pid != os.getpid()
        assert w.start_method == "fork"              # pytest's main thread, no other thread
    assert workers.is_main_thread is True and workers.thread_id == 0
    assert workers.parent_port is None and workers.worker_data is None
    assert w.name == "ident" and w.kind == kind


@pytest.mark.parametrize("kind", KINDS)
def test_messages_and_data_are_copies(kind, no_leaks):
    async def parent():
        data = {"items": [1, 2]}
        w = workers.Worker("workers_support:mutate_data", data=data, kind=kind)
        data["items"].append("after start")
        seen = await w.receive()
        msg = {"list": [1]}
        w.post_message(msg)
        msg["list"].append("after post")
        echoed = await w.receive()
        await w.wait()
        return data, seen, echoed

    data, seen, echoed = run(parent)
    assert seen == {"items": [1, 2], "seen": True}
    assert data == {"items": [1, 2, "after start"]}  # the worker's change stayed there
    assert echoed == {"list": [1]}


@pytest.mark.parametrize("kind", KINDS)
def test_async_iteration_ends_when_the_worker_exits(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:identity", data="x", kind=kind)
        got = [msg async for msg in w]
        with pytest.raises(EOFError):
            await w.receive()
        return got, await w.wait()

    got, code = run(parent)
    assert len(got) == 1 and got[0]["data"] == "x" and code == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry, data, expected", [
    ("workers_support:returns_data", None, 0),
    ("workers_support:returns_data", 7, 7),
    ("workers_support:returns_data", "a string", 0),
    ("workers_support:exits_with_data", 5, 5),
    ("workers_support:exits_with_data", None, 0),
])
def test_exit_codes(kind, entry, data, expected, no_leaks):
    async def parent():
        w = workers.Worker(entry, data=data, kind=kind)
        exits = []
        w.on("exit", exits.append)       # events come later than this line, as in Node
        code = await w.wait()
        return code, exits, w.exit_code

    code, exits, exit_code = run(parent)
    assert code == exit_code == expected and exits == [expected]


@pytest.mark.parametrize("kind", KINDS)
def test_message_listener_keeps_the_worker_alive_until_removed(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:serve_with_listener", kind=kind)
        w.post_message("a")
        first = await w.receive()
        await asyncio.sleep(0.05)                  # its entry point returned long ago
        assert w.exit_code is None
        w.post_message("b")
        second = await w.receive()
        w.post_message("stop")
        return first, second, await w.wait()

    assert run(parent) == (("got", "a"), ("got", "b"), 0)


def test_on_returns_the_listener_and_off_removes_it(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind="thread")
        got, other = [], []
        assert w.on("message", got.append) == got.append
        listener = w.on("message")(other.append)       # the decorator form
        assert listener == other.append
        assert w.listener_count("message") == 2
        w.post_message(1)
        while not got:
            await asyncio.sleep(0.005)
        w.off("message", other.append)
        assert w.listener_count("message") == 1
        once = []
        w.once("message", once.append)
        w.post_message(2)
        w.post_message(3)
        while len(got) < 3:
            await asyncio.sleep(0.005)
        w.off("message", got.append)
        w.post_message(4)
        assert await w.receive() == 4                # no listener left: receive() gets it
        await w.terminate()
        return got, other, once

    got, other, once = run(parent)
    assert got == [1, 2, 3] and other == [1] and once == [2]


def test_a_listener_that_raises_is_reported_and_the_others_run(no_leaks):
    async def parent():
        reported = loop_errors()
        w = workers.Worker("workers_support:echo", kind="thread")
        got = []
        w.on("message", lambda m: 1 / 0)
        w.on("message", got.append)
        w.post_message("x")
        while not got:
            await asyncio.sleep(0.005)
        await w.terminate()
        return got, reported

    got, reported = run(parent)
    assert got == ["x"]
    assert len(reported) == 1 and isinstance(reported[0]["exception"], ZeroDivisionError)
    assert "listener" in reported[0]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_that_does_not_pickle_raises_naming_its_type(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind=kind)
        with pytest.raises(workers.DataCloneError, match="lock") as info:
            w.post_message({"lock": threading.Lock()})
        assert isinstance(info.value, TypeError)
        with pytest.raises(workers.DataCloneError, match="function"):
            w.post_message(lambda: 1)
        w.post_message("still fine")
        reply = await w.receive()
        await w.terminate()
        return reply

    assert run(parent) == "still fine"


def test_bad_arguments_raise_at_once():
    async def parent():
        with pytest.raises(ValueError, match="kind"):
            workers.Worker("workers_support:echo", kind="fiber")
        with pytest.raises(ValueError, match="module:function"):
            workers.Worker("workers_support", kind="thread")
        with pytest.raises(TypeError, match="callable"):
            workers.Worker(42, kind="thread")
        with pytest.raises(ValueError, match="start_method"):
            workers.Worker("workers_support:echo", kind="thread", start_method="fork")
        with pytest.raises(ValueError, match="start_method"):
            workers.Worker("workers_support:echo", kind="process", start_method="forkserver")
        with pytest.raises(workers.DataCloneError):
            workers.Worker("workers_support:echo", data=threading.Lock())
        with pytest.raises(TypeError, match="transfer"):
            workers.Worker("workers_support:echo", data=b"x", transfer=b"x")
    run(parent)
    with pytest.raises(RuntimeError, match="no running event loop"):
        workers.Worker("workers_support:echo")


@pytest.mark.parametrize("kind", KINDS)
def test_posting_to_an_exited_worker_is_dropped(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:returns_data", kind=kind)
        await w.wait()
        w.post_message("nobody listens")             # Node drops it too
        await w.drain()
        with pytest.raises(EOFError):
            await w.receive()
        return await w.terminate()                   # already exited: its own code

    assert run(parent) == 0


def test_callable_entry_points(no_leaks):
    state = {"n": 0}

    def closure():                                  # forked or run in a thread: no pickling
        state["n"] += 1
        workers.parent_port.post_message(state["n"])

    async def parent():
        out = []
        for kind in KINDS:
            w = workers.Worker(closure, kind=kind)
            out.append(await w.receive())
            await w.wait()
        return out

    assert run(parent) == [1, 2]    # the fork copied state after the thread's change...
    assert state["n"] == 1          # ...and changed only its own copy


def test_worker_started_from_a_callback_on_phaseloop(phase_loop, no_leaks):
    """Worker needs only a running loop, not a coroutine."""
    box = {}

    def start():
        box["w"] = workers.Worker("workers_support:returns_data", data=3, kind="thread")

    phase_loop.call_soon(start)
    phase_loop.run_until_complete(asyncio.sleep(0))

    async def wait():
        return await asyncio.wait_for(box["w"].wait(), WAIT)
    assert phase_loop.run_until_complete(wait()) == 3


def test_import_shapes():
    import phaseloop.workers as direct
    assert direct is workers is phaseloop.workers
    from phaseloop.workers import is_main_thread, thread_id
    assert is_main_thread is True and thread_id == 0
    assert set(workers.__all__) >= {"Worker", "MessageChannel", "MessagePort", "SharedBuffer",
                                    "Pool", "parent_port", "worker_data", "is_main_thread",
                                    "thread_id", "DataCloneError", "WorkerError"}
    with pytest.raises(AttributeError):
        workers.no_such_name
