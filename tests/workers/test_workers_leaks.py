"""Nothing a worker used outlives it: threads, child processes, fds, shared memory and
the Python objects, after terminate(), after a crash, with fork and with spawn."""
from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from phaseloop import workers
from workers_support import no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)

STARTS = [("thread", None), ("process", "fork"), ("process", "spawn")]


@pytest.mark.parametrize("kind, start_method", STARTS)
def test_start_and_terminate_repeatedly(kind, start_method, no_leaks):
    async def parent():
        for _ in range(3):
            w = workers.Worker("workers_support:echo", kind=kind, start_method=start_method)
            w.post_message("x")
            assert await w.receive() == "x"
            assert await w.terminate() == 1
    run(parent, timeout=30)


@pytest.mark.parametrize("kind, start_method", STARTS)
def test_after_an_exception(kind, start_method, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:raises_value_error", kind=kind,
                           start_method=start_method)
        w.on("error", lambda exc: None)
        return await w.wait()
    assert run(parent, timeout=30) == 1


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("entry", ["workers_support:exits_hard",
                                   "workers_support:dies_by_signal"])
def test_after_a_process_crash(entry, start_method, no_leaks):
    async def parent():
        w = workers.Worker(entry, kind="process", start_method=start_method)
        return await w.wait()
    assert run(parent, timeout=30) in (3, -9)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_with_channels_and_shared_buffers(kind, no_leaks):
    async def parent():
        ch = workers.MessageChannel()
        buf = workers.SharedBuffer(1024)
        w = workers.Worker("workers_support:talk_over_port", kind=kind,
                           data={"port": ch.port1, "buf": buf}, transfer=[ch.port1])
        await ch.port2.receive()
        await w.terminate()
        ch.port2.close()
        buf.close()
    run(parent)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_worker_and_ports_are_freed_after_exit(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:identity", kind=kind)
        await w.receive()
        await w.wait()
        refs = [weakref.ref(w), weakref.ref(w._port)]
        del w
        await asyncio.sleep(0.01)
        return refs

    refs = run(parent)
    gc.collect()
    assert [r() for r in refs] == [None, None]
