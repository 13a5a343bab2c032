"""Where I/O completions resume the code waiting for them.

Node delivers every file-system and thread-pool completion in the poll phase,
so in the code it resumes a microtask runs first, then setImmediate, then
setTimeout(0). phaseloop delivers run_in_executor / asyncio.to_thread
completions (call_soon_threadsafe from another thread) in the poll phase, and a
phaseloop.streams file read in the pending phase (served by the page cache) or
the poll phase (read in the executor). Each order is checked 20 times in a
row: before this was done, some of them came out either way at random.

The call_soon-before-call_later(0) rule is checked on phaseloop and on
asyncio's loop (the `loop` fixture); call_immediate exists on phaseloop only
(`phase_loop`). tests/node/ has the Node twins of these programs.
"""
import asyncio
import collections
import hashlib
import threading

import pytest

from phaseloop import streams
from phaseloop.streams import files as stream_files

RUNS = 20


def order_of(loop, *kinds):
    """Schedule one callback of each kind, in the order given; a future of the
    order they ran in."""
    done = loop.create_future()
    ran = []

    def note(what):
        ran.append(what)
        if len(ran) == len(kinds):
            done.set_result(tuple(ran))

    schedule = {
        "timeout": lambda: loop.call_later(0, note, "timeout"),
        "soon": lambda: loop.call_soon(note, "soon"),
        "immediate": lambda: loop.call_immediate(note, "immediate"),
    }
    for kind in kinds:
        schedule[kind]()
    return done


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


async def executor_work(path):
    await asyncio.get_running_loop().run_in_executor(None, read_file, path)


async def to_thread_work(path):
    await asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", b"secret", b"salt", 1)


async def stream_read_work(path):
    stream = streams.create_read_stream(path)
    try:
        assert await stream.read()
    finally:
        stream.destroy()


WORK = {"run_in_executor": executor_work, "to_thread": to_thread_work,
        "stream_read": stream_read_work, "stream_read_in_executor": stream_read_work}


@pytest.fixture(params=sorted(WORK))
def work(request, monkeypatch, tmp_path):
    """One kind of I/O to await; the path of a small file it reads."""
    if request.param == "stream_read_in_executor":
        # No RWF_NOWAIT: every chunk is read in the executor, as when the page
        # cache does not hold it.
        monkeypatch.setattr(stream_files, "_RWF_NOWAIT", None)
    path = tmp_path / "data.txt"
    path.write_bytes(b"some text\n" * 100)
    return WORK[request.param], path


def count_orders(loop, work, kinds):
    fn, path = work

    async def main():
        seen = collections.Counter()
        for _ in range(RUNS):
            await fn(path)
            seen[await order_of(asyncio.get_running_loop(), *kinds)] += 1
        return dict(seen)

    return loop.run_until_complete(asyncio.wait_for(main(), 30))


def test_call_soon_runs_before_an_earlier_call_later_0(loop, work):
    # asyncio's order, and Node's (a microtask before setTimeout(0)): it
    # used to come out the other way after a phaseloop.streams read.
    assert count_orders(loop, work, ("timeout", "soon")) == {("soon", "timeout"): RUNS}


def test_immediate_runs_before_call_later_0_where_io_resumes(phase_loop, work):
    assert count_orders(phase_loop, work, ("timeout", "immediate")) == \
        {("immediate", "timeout"): RUNS}


def test_microtask_then_immediate_then_timer_where_io_resumes(phase_loop, work):
    assert count_orders(phase_loop, work, ("timeout", "immediate", "soon")) == \
        {("soon", "immediate", "timeout"): RUNS}


def test_call_soon_threadsafe_from_a_thread_runs_in_the_poll_phase(phase_loop):
    async def main():
        loop = asyncio.get_running_loop()
        seen = collections.Counter()
        for _ in range(RUNS):
            resumed = loop.create_future()

            def from_thread():
                loop.call_soon_threadsafe(
                    lambda: resumed.set_result(order_of(loop, "timeout", "immediate")))

            def in_check_phase():
                # The thread hands its callback over while the loop is busy in
                # the check phase, not waiting in poll.
                thread = threading.Thread(target=from_thread)
                thread.start()
                thread.join()

            loop.call_immediate(in_check_phase)
            seen[await (await resumed)] += 1
        return dict(seen)

    assert phase_loop.run_until_complete(main()) == {("immediate", "timeout"): RUNS}


def test_call_soon_threadsafe_on_the_loop_thread_is_call_soon(loop):
    ran = []

    async def main():
        done = loop.create_future()
        loop.call_soon(ran.append, 1)
        loop.call_soon_threadsafe(ran.append, 2)
        loop.call_soon(ran.append, 3)
        loop.call_soon(done.set_result, None)
        await done

    loop.run_until_complete(main())
    assert ran == [1, 2, 3]


def test_call_pending_runs_in_the_next_pending_phase(phase_loop):
    ran = []

    def pending():
        ran.append("pending")
        # Resumed as I/O is: a microtask, an immediate, then the timer.
        phase_loop.call_later(0, ran.append, "timeout")
        phase_loop.call_immediate(ran.append, "immediate")
        phase_loop.call_soon(ran.append, "soon")

    def check():
        ran.append("check")
        handle = phase_loop.call_pending(pending)
        assert type(handle).__name__ == "Handle"

    phase_loop.call_immediate(check)
    phase_loop.call_later(0.05, phase_loop.stop)
    phase_loop.run_forever()
    assert ran == ["check", "pending", "soon", "immediate", "timeout"]


def test_call_pending_cancel_and_errors(phase_loop):
    ran = []
    handle = phase_loop.call_pending(ran.append, "cancelled")
    phase_loop.call_pending(ran.append, "kept")
    handle.cancel()
    phase_loop.run_once(timeout=0)
    assert ran == ["kept"]
    with pytest.raises(TypeError):
        phase_loop.call_pending(42)
    phase_loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        phase_loop.call_pending(print)
