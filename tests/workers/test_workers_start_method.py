"""How a process worker starts: fork where it is safe (the main thread, no other
thread), spawn otherwise; forcing either; what spawn needs of the entry point."""
from __future__ import annotations

import threading

import pytest

from phaseloop import workers
from workers_support import no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


def test_fork_from_a_single_threaded_program(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:identity", kind="process")
        info = await w.receive()
        await w.wait()
        return w.start_method, info["is_main_thread"]

    assert run(parent) == ("fork", False)


def test_spawn_while_another_thread_runs(no_leaks):
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="bystander")
    thread.start()

    async def parent():
        w = workers.Worker("workers_support:identity", data=[1, 2], kind="process")
        info = await w.receive()
        await w.wait()
        with pytest.raises(RuntimeError, match="unsafe"):
            workers.Worker("workers_support:identity", kind="process", start_method="fork")
        return w.start_method, info["data"]

    try:
        assert run(parent) == ("spawn", [1, 2])
    finally:
        stop.set()
        thread.join()


def test_spawn_needs_an_importable_entry_point(no_leaks):
    async def parent():
        with pytest.raises(ValueError, match="import its entry point"):
            workers.Worker(lambda: None, kind="process", start_method="spawn")
        from workers_support import identity          # a module-level function pickles
        w = workers.Worker(identity, kind="process", start_method="spawn")
        info = await w.receive()
        await w.wait()
        return info["thread_id"] == w.thread_id

    assert run(parent)
