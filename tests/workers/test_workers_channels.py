"""MessageChannel and MessagePort: ports in one thread, ports transferred to workers so
that two workers talk directly, what transfer= refuses, and bytes that move."""
from __future__ import annotations

import asyncio

import pytest

from phaseloop import workers
from workers_support import KINDS, MiB, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


def test_a_channel_in_one_thread_on_both_loops(loop, no_leaks):
    async def parent():
        ch = workers.MessageChannel()
        got, closed = [], []
        ch.port2.on("message", got.append)
        ch.port2.on("close", lambda: closed.append(2))
        ch.port1.on("close", lambda: closed.append(1))
        ch.port1.post_message({"a": 1})
        ch.port1.post_message(b"bytes")
        ch.port2.post_message("back")
        back = await ch.port1.receive()
        while len(got) < 2:
            await asyncio.sleep(0.005)
        ch.port1.close()
        while len(closed) < 2:
            await asyncio.sleep(0.005)
        with pytest.raises(EOFError):
            await ch.port2.receive()
        ch.port1.post_message("dropped")             # closed: dropped, as in Node
        return got, back, sorted(closed), ch.port1.closed, ch.port2.closed

    got, back, closed, closed1, closed2 = run(parent, loop=loop)
    assert got == [{"a": 1}, b"bytes"] and back == "back"
    assert closed == [1, 2] and closed1 and closed2


def test_messages_posted_before_close_are_delivered(no_leaks):
    async def parent():
        ch = workers.MessageChannel()
        closed = []
        ch.port2.on("close", lambda: closed.append(True))
        for i in range(1000):
            ch.port1.post_message(i)
        ch.port1.close()
        got = [msg async for msg in ch.port2]
        await asyncio.sleep(0)
        return got, closed, ch.port2.closed

    assert run(parent) == (list(range(1000)), [True], True)


@pytest.mark.parametrize("first, second", [("thread", "thread"), ("process", "process"),
                                           ("thread", "process")])
def test_two_workers_talk_directly_over_transferred_ports(first, second, no_leaks):
    async def with_message():
        ch = workers.MessageChannel()
        a = workers.Worker("workers_support:talk_over_port", kind=first,
                           data={"port": ch.port1}, transfer=[ch.port1])
        b = workers.Worker("workers_support:talk_over_port", kind=second,
                           data={"port": ch.port2}, transfer=[ch.port2])
        assert ch.port1.closed and ch.port2.closed     # they moved: dead here
        heard = [await a.receive(), await b.receive()]
        codes = [await a.wait(), await b.wait()]
        return a, b, heard, codes

    a, b, heard, codes = run(with_message)
    assert heard == [("heard", ("hello from", b.thread_id)),
                     ("heard", ("hello from", a.thread_id))]
    assert codes == [0, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_port_sent_in_a_message_reaches_a_running_worker(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:talk_over_port", kind=kind)
        ch = workers.MessageChannel()
        w.post_message({"port": ch.port1}, transfer=[ch.port1])
        greeting = await ch.port2.receive()
        ch.port2.post_message("over the moved port")
        heard = await w.receive()
        await w.wait()
        ch.port2.close()
        return w, greeting, heard

    w, greeting, heard = run(parent)
    assert greeting == ("hello from", w.thread_id)
    assert heard == ("heard", "over the moved port")


def test_what_transfer_refuses(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind="process")
        ch = workers.MessageChannel()
        with pytest.raises(workers.DataCloneError, match="listed in transfer"):
            w.post_message({"port": ch.port1})
        with pytest.raises(workers.DataCloneError, match="twice"):
            w.post_message(ch.port1, transfer=[ch.port1, ch.port1])
        with pytest.raises(workers.DataCloneError, match="through itself"):
            ch.port1.post_message(ch.port1, transfer=[ch.port1])
        with pytest.raises(workers.DataCloneError, match="SharedBuffer"):
            w.post_message(1, transfer=[workers.SharedBuffer(8)])
        with pytest.raises(workers.DataCloneError, match="not int"):
            w.post_message(1, transfer=[1])
        ch.port2.post_message("taken")
        ch.port2.post_message("unread")
        assert await ch.port1.receive() == "taken"      # port1 reads from now on...
        await asyncio.sleep(0.05)                       # ...so it holds "unread"
        with pytest.raises(workers.DataCloneError, match="not to a process"):
            w.post_message(ch.port1, transfer=[ch.port1])
        inner = workers.Worker("workers_support:identity", kind="thread")
        with pytest.raises(workers.DataCloneError, match="parent_port"):
            w.post_message(inner._port, transfer=[inner._port])
        assert not ch.port1.closed                      # nothing moved on a refusal
        ch.port1.close()
        await inner.receive()
        await inner.wait()
        await w.terminate()

    run(parent)


def test_a_port_with_unread_messages_moves_to_a_thread_worker(no_leaks):
    async def parent():
        ch = workers.MessageChannel()
        for i in range(3):
            ch.port2.post_message(i)
        assert await ch.port1.receive() == 0            # port1 is reading: 1 and 2 queued
        w = workers.Worker("workers_support:talk_over_port", kind="thread",
                           data={"port": ch.port1}, transfer=[ch.port1])
        # the worker posts its greeting, then receives 1 (queued before the move)
        greeting = await ch.port2.receive()
        heard = await w.receive()
        await w.wait()
        ch.port2.close()
        return greeting, heard

    greeting, heard = run(parent)
    assert greeting[0] == "hello from" and heard == ("heard", 1)


@pytest.mark.parametrize("kind", KINDS)
def test_transferred_bytes(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:receive_transferred", kind=kind)
        out = []
        for buf in (b"abcdefgh", bytearray(b"ijklmnop"), memoryview(bytearray(MiB))):
            w.post_message(buf, transfer=[buf])
            out.append(await w.receive())
        w.post_message(None)
        await w.wait()
        return out

    assert run(parent) == [("bytes", 8, b"abcd"), ("bytearray", 8, b"ijkl"),
                           ("memoryview", MiB, b"\0\0\0\0")]


@pytest.mark.parametrize("kind", KINDS)
def test_a_transferred_buffer_moves_without_a_copy_within_a_process(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:mark_transferred", kind=kind)
        buf = bytearray(b"shared")
        w.post_message(buf, transfer=[buf])
        assert await w.receive() == "marked"
        await w.wait()
        return bytes(buf)

    # A thread worker got this very object (Python cannot detach the sender's copy, as
    # Node does: the sender must leave it alone); a process worker got the bytes.
    assert run(parent) == (b"Xhared" if kind == "thread" else b"shared")


def test_set_buffer_limits_checks_its_arguments():
    async def parent():
        ch = workers.MessageChannel()
        with pytest.raises(ValueError):
            ch.port1.set_buffer_limits(high=10, low=20)
        ch.port1.set_buffer_limits(high=100)
        assert (ch.port1.high_water, ch.port1.low_water) == (100, 25)
        ch.port1.close()
    run(parent)
