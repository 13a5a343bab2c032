"""SharedBuffer: one block of memory every side sees, freed when the last side drops
it, never a name in /dev/shm (the leak check looks there and at /proc maps)."""
from __future__ import annotations

import copy
import gc
import os
import pickle
import struct

import pytest

from phaseloop import workers
from workers_support import KINDS, no_leaks, run, shared_mappings  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_writes_what_the_parent_reads(kind, no_leaks):
    async def parent():
        buf = workers.SharedBuffer(16)
        w = workers.Worker("workers_support:write_shared", data=(buf, 3), kind=kind)
        assert await w.receive() == "written"
        seen = buf[3]
        other = workers.SharedBuffer(8)
        w.post_message([other])                        # shared in a message too
        assert await w.receive() == "written again"
        await w.wait()
        return seen, bytes(other[:3]), bytes(buf)

    seen, other, whole = run(parent)
    assert seen == 4 and other == b"abc"
    assert whole == b"\0\0\0\4" + b"\0" * 12


def test_it_is_a_buffer():
    buf = workers.SharedBuffer(64)
    try:
        assert len(buf) == 64 and buf[:] == b"\0" * 64
        struct.pack_into("<Q", buf, 8, 2 ** 40)
        view = memoryview(buf)
        assert struct.unpack_from("<Q", view, 8)[0] == 2 ** 40
        view.release()
        assert "64 bytes" in repr(buf)
    finally:
        buf.close()
    assert "closed" in repr(buf)


def test_bad_sizes_and_pickling_outside_a_message():
    with pytest.raises(ValueError):
        workers.SharedBuffer(0)
    with pytest.raises(TypeError):
        workers.SharedBuffer(1.5)
    buf = workers.SharedBuffer(8)
    with pytest.raises(TypeError, match="post_message"):
        pickle.dumps(buf)
    with pytest.raises(TypeError, match="post_message"):
        copy.copy(buf)
    buf.close()


def test_the_memory_lives_while_any_side_holds_it_and_is_freed_after(no_leaks):
    """The parent drops its buffer while a process worker still uses it; the memory
    goes once the worker drops its own. (The worker is forked first, so it does not
    inherit the parent's copy.)"""
    async def parent():
        w = workers.Worker("workers_support:hold_shared_until_told", kind="process")
        buf = workers.SharedBuffer(4096)
        buf[0] = 42
        w.post_message(buf)
        holding = await w.receive()
        assert shared_mappings() > 0
        buf.close()
        del buf
        gc.collect()
        mine = shared_mappings()
        w.post_message("the parent dropped it")
        still = await w.receive()
        child_while_holding = shared_mappings(w.pid)
        w.post_message("drop it")
        dropped = await w.receive()
        child_after = shared_mappings(w.pid)
        w.post_message("bye")
        await w.wait()
        return holding, mine, still, child_while_holding, dropped, child_after

    holding, mine, still, child_holding, dropped, child_after = run(parent)
    assert holding[:2] == ("holding", 42) and holding[2] > 0
    assert mine == 0                                   # nothing of it left here
    assert still == ("still there", 42)                # yet the worker still reads it
    assert child_holding > 0
    assert dropped == ("dropped", 0) and child_after == 0


def test_a_thread_worker_shares_the_same_object(no_leaks):
    async def parent():
        buf = workers.SharedBuffer(8)
        w = workers.Worker("workers_support:write_shared", data=(buf, 0), kind="thread")
        await w.receive()
        w.post_message([buf])
        await w.receive()
        await w.wait()
        return bytes(buf)

    assert run(parent) == b"abc" + b"\0" * 5


def test_no_name_in_dev_shm():
    before = sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []
    buf = workers.SharedBuffer(1 << 20)
    try:
        assert (sorted(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else []) == before
    finally:
        buf.close()
