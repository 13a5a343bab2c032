"""terminate(), per kind: a thread's tasks are cancelled (then SystemExit in the thread
after the grace period); a process gets SIGTERM (it cancels the same way), then
SIGKILL. Nested workers end with the worker that started them."""
from __future__ import annotations

import os
import signal
import time

import pytest

from phaseloop import workers
from workers_support import KINDS, child_pids, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", KINDS)
def test_terminate_cancels_and_cleanup_code_runs(kind, tmp_path, loop, no_leaks):
    marker = tmp_path / "cleanup"

    async def parent():
        w = workers.Worker("workers_support:sleeps_with_cleanup", data=str(marker), kind=kind)
        assert await w.receive() == "started"
        start = time.monotonic()
        code = await w.terminate(grace=5.0)
        return code, time.monotonic() - start, w.signal_code

    code, took, sig = run(parent, loop=loop)
    assert code == 1
    assert took < 4.0                          # stopped by cancelling, not by the grace step
    assert sig is None                         # a process exited by itself (SIGTERM handled)
    assert marker.read_text() == "cleaned up"


@pytest.mark.parametrize("kind, entry", [
    ("thread", "workers_support:swallows_cancellation"),
    ("thread", "workers_support:busy_python"),
    ("process", "workers_support:swallows_cancellation"),
    ("process", "workers_support:ignores_sigterm"),
    ("process", "workers_support:busy_python"),
])
def test_a_worker_that_does_not_stop_is_stopped_after_the_grace_period(kind, entry, no_leaks):
    async def parent():
        w = workers.Worker(entry, kind=kind)
        assert await w.receive() == "started"
        start = time.monotonic()
        code = await w.terminate(grace=0.3)
        return code, time.monotonic() - start, w.signal_code

    code, took, sig = run(parent)
    assert code == 1
    assert 0.3 <= took < 5.0
    assert sig == (signal.SIGKILL if kind == "process" else None)


@pytest.mark.parametrize("kind", KINDS)
def test_terminate_right_after_start(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:echo", kind=kind)
        events = []
        w.on("exit", events.append)
        return await w.terminate(), events

    code, events = run(parent)
    assert code == 1 and events == [1]


@pytest.mark.parametrize("kind", KINDS)
def test_terminate_after_exit_returns_the_exit_code(kind, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:returns_data", data=4, kind=kind)
        await w.wait()
        return await w.terminate(), await w.terminate()

    assert run(parent) == (4, 4)


def test_a_crashed_process_reports_its_exit_after_its_last_messages(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:exits_hard", kind="process")
        got = [msg async for msg in w]             # posted just before os._exit
        return got, await w.wait()

    assert run(parent) == (["about to exit"], 3)


def test_a_process_killed_by_a_signal_exits_with_minus_the_signal(no_leaks):
    async def parent():
        w = workers.Worker("workers_support:dies_by_signal", kind="process")
        return await w.wait(), w.signal_code

    assert run(parent) == (-signal.SIGKILL, signal.SIGKILL)


@pytest.mark.parametrize("outer", KINDS)
@pytest.mark.parametrize("inner", KINDS)
def test_nested_workers_end_with_the_worker_that_started_them(outer, inner, no_leaks):
    async def parent():
        w = workers.Worker("workers_support:starts_nested", data=inner, kind=outer)
        info = await w.receive()
        await w.terminate()
        return info

    info = run(parent)
    assert info["reply"] == "ping"
    if inner == "process":
        # From a thread worker fork is unsafe: spawned. From a process worker's
        # single-threaded loop: forked.
        assert info["start_method"] == ("spawn" if outer == "thread" else "fork")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.kill(info["pid"], 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"the nested worker {info['pid']} outlived its parent worker")
        assert info["pid"] not in child_pids()
