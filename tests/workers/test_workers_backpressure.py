"""Backpressure: a worker that posts faster than its parent reads waits in drain(),
and memory stays bounded on both sides — 1 GiB through a slow reader, per kind."""
from __future__ import annotations

import asyncio
import time

import pytest

from phaseloop import workers
from workers_support import KINDS, MiB, no_leaks, run, vm_kib  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(120)

#: What either side may grow by while 1 GiB goes through: the port's limits (1 MiB
#: each way), the socket's buffers, a message being pickled and unpickled, the
#: allocator's slack. Without backpressure it is the whole gigabyte.
MEMORY_BOUND_KIB = 64 * 1024


@pytest.mark.parametrize("kind", KINDS)
def test_a_gigabyte_through_a_slow_reader_stays_within_a_memory_bound(kind, no_leaks):
    async def parent():
        start_rss = vm_kib("VmRSS")
        peak = start_rss
        w = workers.Worker("workers_support:post_gigabyte", kind=kind)
        received = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = await w.receive()
            if isinstance(msg, dict):
                report = msg
                break
            received += len(msg)
            if received % (16 * MiB) == 0:
                await asyncio.sleep(0.01)          # the slow reader
                peak = max(peak, vm_kib("VmRSS"))
        else:
            raise AssertionError("1 GiB did not arrive in 60 s")
        code = await w.wait()
        return received, report, peak - start_rss, code

    received, report, parent_growth, code = run(parent, timeout=90)
    assert code == 0 and received == 1024 * MiB
    assert parent_growth < MEMORY_BOUND_KIB, parent_growth
    if kind == "process":
        worker_growth = report["hwm"] - report["rss_start"]
        assert worker_growth < MEMORY_BOUND_KIB, worker_growth


@pytest.mark.parametrize("kind", KINDS)
def test_drain_waits_while_nobody_reads(kind, no_leaks):
    """The worker posts 64 KiB messages and the parent takes none: drain() stops the
    worker after about the port's limits (1 MiB here, plus the socket's buffer for a
    process), far short of the 64 MiB it would post."""
    async def parent():
        w = workers.Worker("workers_support:flood_without_reader", kind=kind)
        w.set_buffer_limits(high=MiB)
        await asyncio.sleep(1.0)                   # its drain() times out meanwhile
        msgs = []
        async for msg in w:
            msgs.append(msg)
        return msgs, await w.wait()

    msgs, code = run(parent)
    assert code == 0
    label, posted = msgs[-1]
    assert label == "blocked after"
    assert 16 <= posted < 128, posted              # 1 MiB = 16 messages; not 1024
    assert len(msgs) == posted + 1                 # and nothing was lost
