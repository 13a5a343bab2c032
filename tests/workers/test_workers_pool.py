"""workers.Pool: jobs over a fixed set of workers, a crashed worker replaced (its job
failed with the cause), close() that drains, terminate(), a pool that cannot start."""
from __future__ import annotations

import asyncio
import threading

import pytest

from phaseloop import workers
from workers_support import KINDS, no_leaks, run  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["workers_support:square", "workers_support:slow_square"])
def test_results_in_order_of_the_calls(kind, target, loop, no_leaks):
    async def parent():
        async with workers.Pool(2, target, kind=kind) as pool:
            assert pool.size == 2 and pool.kind == kind
            return await asyncio.gather(*(pool.run(i) for i in range(20)))

    assert run(parent, loop=loop) == [i * i for i in range(20)]


@pytest.mark.parametrize("kind", KINDS)
def test_a_job_that_raises_fails_alone(kind, no_leaks):
    async def parent():
        async with workers.Pool(2, "workers_support:fails_on_three", kind=kind) as pool:
            return await asyncio.gather(*(pool.run(i) for i in range(6)),
                                        return_exceptions=True)

    out = run(parent)
    assert out[:3] == [0, 1, 2] and out[4:] == [4, 5]
    assert type(out[3]) is KeyError and out[3].args == (3,)
    assert "Traceback in pool worker" in out[3].__notes__[-1]


def test_a_crashed_worker_is_replaced_and_its_job_fails_with_the_cause(no_leaks):
    async def parent():
        pool = workers.Pool(2, "workers_support:dies_on_three", kind="process")
        before = {w.pid for w in pool._workers}
        out = await asyncio.gather(*(pool.run(i) for i in range(8)), return_exceptions=True)
        after = {w.pid for w in pool._workers}
        again = await pool.run(10)
        await pool.close()
        return out, before, after, again

    out, before, after, again = run(parent)
    assert [x for i, x in enumerate(out) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    assert isinstance(out[3], workers.WorkerError)
    assert "exited with code 9" in str(out[3])
    assert len(after) == 2 and len(before & after) == 1      # one worker was replaced
    assert again == 10


def test_close_drains_the_queue_then_ends_the_workers(no_leaks):
    async def parent():
        pool = workers.Pool(2, "workers_support:slow_square", kind="thread")
        started = list(pool._workers)
        jobs = [asyncio.ensure_future(pool.run(i)) for i in range(10)]
        await asyncio.sleep(0)
        await pool.close()
        assert all(j.done() for j in jobs)
        with pytest.raises(RuntimeError, match="closed"):
            await pool.run(1)
        return [j.result() for j in jobs], [w.exit_code for w in started]

    results, codes = run(parent)
    assert results == [i * i for i in range(10)]
    assert codes == [0, 0]                      # each ended after its last job


def test_terminate_cancels_the_jobs(no_leaks):
    async def parent():
        pool = workers.Pool(2, "workers_support:slow_square", kind="process")
        jobs = [asyncio.ensure_future(pool.run(i)) for i in range(10)]
        await asyncio.sleep(0)
        await pool.terminate()
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        return outcomes

    outcomes = run(parent)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)


@pytest.mark.parametrize("kind", KINDS)
def test_a_pool_whose_target_does_not_import_is_broken_not_restarted(kind, no_leaks):
    async def parent():
        pool = workers.Pool(2, "workers_support:no_such_function", kind=kind)
        with pytest.raises(workers.WorkerError, match="cannot start") as first:
            await pool.run(1)
        with pytest.raises(workers.WorkerError, match="cannot start"):
            await pool.run(2)
        await pool.close()
        return first.value.__cause__

    cause = run(parent)
    assert isinstance(cause, AttributeError) and "no_such_function" in str(cause)


def test_arguments_and_results_that_do_not_pickle(no_leaks):
    async def parent():
        async with workers.Pool(1, "workers_support:returns_unpicklable", kind="process") as pool:
            with pytest.raises(workers.DataCloneError, match="lock"):
                await pool.run(threading.Lock())
            with pytest.raises(workers.DataCloneError, match="lock"):
                await pool.run(1)                   # the result cannot come back
            return pool.queued

    assert run(parent) == 0


def test_bad_arguments():
    async def parent():
        with pytest.raises(ValueError):
            workers.Pool(0, "workers_support:square")
        with pytest.raises(TypeError):
            workers.Pool(True, "workers_support:square")
        with pytest.raises(ValueError, match="kind"):
            workers.Pool(1, "workers_support:square", kind="green")
        with pytest.raises(ValueError, match="module:function"):
            workers.Pool(1, "square")
    run(parent)


def test_a_callable_target_and_a_cancelled_run(no_leaks):
    async def parent():
        async with workers.Pool(1, lambda x: x + 1, kind="thread") as pool:
            blocker = asyncio.ensure_future(pool.run(1))
            queued = asyncio.ensure_future(pool.run(2))
            await asyncio.sleep(0)
            queued.cancel()                      # still queued: never runs
            return await blocker, await pool.run(5)

    assert run(parent) == (2, 6)
