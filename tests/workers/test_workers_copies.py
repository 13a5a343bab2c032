"""What a message looks like on the other side: the same as after pickle, on both kinds.

A thread worker's messages of built-in data are copied in C (plain_copy.pyx), others
and a process worker's are pickled; either way the receiver must get what
``pickle.loads(pickle.dumps(msg))`` gives: equal values, the same types, shared
references and cycles kept, and nothing the sender changes afterwards. The parent's
side runs on phaseloop and, where the ``loop`` fixture is used, on asyncio's loop too
(the worker always runs phaseloop).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import pickle
import sys

import pytest

from phaseloop import workers
from workers_support import KINDS, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)

Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass
class Job:
    name: str
    args: list


SAMPLES = [
    None, True, 0, -(2 ** 100), 1.5, 2j, "", "héllo ✓", b"\x00bytes", bytearray(b"ba"),
    [], [1, [2, [3]]], (), (1, "a", (2.0, None)), {"a": 1, 2: "b", (1, 2): [3]},
    {1, "x", (2, 3)}, frozenset({1, 2}), {"nested": {"set": {1}, "tuple": ([1], {})}},
    collections.OrderedDict(a=1), collections.defaultdict(list, a=[1]),
    collections.Counter("aab"), Point(1, [2]), Job("j", [1, 2]), [Job("in a list", [])],
    (Point(1, 2),), {"kind": type(None)}, [Ellipsis],
]


def shape(value):
    """What must be equal on both sides: the value and every container's type."""
    if isinstance(value, dict):
        return type(value), [(shape(k), shape(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return type(value), [shape(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return type(value), sorted(map(repr, value))
    if dataclasses.is_dataclass(value):
        return type(value), shape(dataclasses.asdict(value))
    return type(value), value


async def echoed(kind, messages):
    w = workers.Worker("workers_support:echo", kind=kind)
    replies = []
    for msg in messages:
        w.post_message(msg)
        replies.append(await w.receive())
    await w.terminate()
    return replies


@pytest.mark.parametrize("kind", KINDS)
def test_every_sample_arrives_as_pickle_would_give_it(kind, loop, no_leaks):
    replies = run(echoed, kind, SAMPLES, loop=loop)
    for sent, got in zip(SAMPLES, replies):
        expected = pickle.loads(pickle.dumps(sent))
        assert shape(got) == shape(expected), sent


@pytest.mark.parametrize("kind", KINDS)
def test_shared_references_and_cycles_keep_their_shape(kind, loop, no_leaks):
    inner = [1]
    msg = {"a": inner, "b": inner, "t": (inner, "x"), "s": {"k": inner}}
    msg["self"] = msg
    loop_list: list = []
    loop_tuple = (loop_list,)
    loop_list.append(loop_tuple)               # a cycle through a tuple
    got, got_tuple = run(echoed, kind, [msg, loop_tuple], loop=loop)
    assert got["a"] is got["b"] is got["t"][0] is got["s"]["k"]
    assert got["self"] is got
    assert got["a"] == [1] and got["a"] is not inner
    assert got_tuple[0][0] is got_tuple


@pytest.mark.parametrize("kind", KINDS)
def test_changing_a_message_after_posting_it_changes_nothing_there(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind=kind)
        msg = {"list": [1], "set": {1}, "buf": bytearray(b"a"), "t": ([1],),
               "d": {"k": "v"}}
        w.post_message(msg)
        msg["list"].append(2)
        msg["set"].add(2)
        msg["buf"] += b"b"
        msg["t"][0].append(2)
        msg["d"]["k"] = "changed"
        msg["new"] = 1
        got = await w.receive()
        await w.terminate()
        return got

    assert run(parent) == {"list": [1], "set": {1}, "buf": bytearray(b"a"), "t": ([1],),
                           "d": {"k": "v"}}


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_nested_too_deep_raises_at_post(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind=kind)
        deep: list = []
        for _ in range(sys.getrecursionlimit() * 50):
            deep = [deep]
        with pytest.raises(workers.DataCloneError, match="RecursionError"):
            w.post_message(deep)
        w.post_message("still fine")
        reply = await w.receive()
        await w.terminate()
        return reply

    assert run(parent) == "still fine"


def test_a_thread_burst_of_plain_messages_keeps_its_order(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind="thread")
        for i in range(2000):
            w.post_message({"i": i, "pad": [i] * (i % 7)})
            if i % 500 == 499:
                await w.drain()
        got = [await w.receive() for _ in range(2000)]
        await w.terminate()
        return got

    assert [m["i"] for m in run(parent)] == list(range(2000))


def test_a_channel_port_in_one_process_gets_copies_too():
    """Two ports of a MessageChannel (a socketpair) in the same thread: pickled."""
    async def main():
        ch = workers.MessageChannel()
        msg = {"list": [1]}
        ch.port1.post_message(msg)
        msg["list"].append(2)
        got = await asyncio.wait_for(ch.port2.receive(), 5)
        ch.port1.close()
        return got

    assert run(main) == {"list": [1]}
