"""Async generators: the loop's firstiter/finalizer hooks and shutdown_asyncgens."""
import asyncio
import gc
import sys

import pytest

WAIT = 5.0


def make_counter(log, name):
    async def counter():
        try:
            for i in range(100):
                yield i
                await asyncio.sleep(0)
        finally:
            await asyncio.sleep(0)  # finalization may await on the loop
            log.append(name)

    return counter()


def test_shutdown_asyncgens_finalizes_unfinished_generators(loop):
    log = []
    kept = []

    async def start(name):
        gen = make_counter(log, name)
        assert await gen.__anext__() == 0
        kept.append(gen)

    loop.run_until_complete(start("first"))
    loop.run_until_complete(start("second"))
    assert log == []
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), WAIT))
    assert sorted(log) == ["first", "second"]
    for gen in kept:
        assert gen.ag_frame is None  # closed


def test_shutdown_asyncgens_leaves_finished_generators_alone(loop):
    log = []

    async def exhaust():
        return [i async for i in make_counter(log, "done")]

    assert loop.run_until_complete(exhaust()) == list(range(100))
    assert log == ["done"]
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), WAIT))
    assert log == ["done"]


def test_shutdown_asyncgens_without_generators(loop):
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), WAIT))


def test_error_while_closing_generator_goes_to_handler(loop):
    contexts = []
    kept = []

    async def broken():
        try:
            yield 1
        finally:
            raise ZeroDivisionError("in finally")

    async def start():
        gen = broken()
        await gen.__anext__()
        kept.append(gen)

    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))
    loop.run_until_complete(start())
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), WAIT))
    assert len(contexts) == 1
    assert isinstance(contexts[0]["exception"], ZeroDivisionError)
    assert contexts[0]["asyncgen"] is kept[0]
    assert "message" in contexts[0]


def test_generator_started_after_shutdown_warns(loop):
    loop.run_until_complete(loop.shutdown_asyncgens())

    async def gen():
        yield 1

    async def use():
        g = gen()
        await g.__anext__()
        await g.aclose()

    with pytest.warns(ResourceWarning):
        loop.run_until_complete(use())


def test_abandoned_generator_is_finalized_on_the_loop(loop):
    """A generator garbage collected mid-iteration is closed by the loop."""
    log = []

    async def main():
        gen = make_counter(log, "abandoned")
        await gen.__anext__()
        del gen
        gc.collect()
        for _ in range(100):
            if log:
                break
            await asyncio.sleep(0)
        return log[:]

    assert loop.run_until_complete(asyncio.wait_for(main(), WAIT)) == ["abandoned"]


# ---- hooks --------------------------------------------------------------------------


@pytest.fixture
def outer_hooks():
    """Hooks installed by "someone else" before the loop runs."""
    saved = sys.get_asyncgen_hooks()
    calls = []

    def firstiter(agen):
        calls.append("firstiter")

    def finalizer(agen):
        calls.append("finalizer")

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
    try:
        yield firstiter, finalizer, calls
    finally:
        sys.set_asyncgen_hooks(*saved)


def test_hooks_installed_while_running_and_restored_after(loop, outer_hooks):
    firstiter, finalizer, calls = outer_hooks

    async def inside():
        return sys.get_asyncgen_hooks()

    hooks = loop.run_until_complete(inside())
    assert hooks.firstiter is not None and hooks.finalizer is not None
    assert hooks.firstiter is not firstiter
    assert hooks.finalizer is not finalizer
    after = sys.get_asyncgen_hooks()
    assert after.firstiter is firstiter
    assert after.finalizer is finalizer
    assert calls == []


def test_hooks_restored_after_run_forever(loop, outer_hooks):
    firstiter, finalizer, _ = outer_hooks
    seen = []
    loop.call_soon(lambda: seen.append(sys.get_asyncgen_hooks()))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen[0].firstiter is not firstiter
    assert sys.get_asyncgen_hooks() == (firstiter, finalizer)


def test_hooks_restored_after_exception(loop, outer_hooks):
    firstiter, finalizer, _ = outer_hooks

    async def fails():
        assert sys.get_asyncgen_hooks().firstiter is not firstiter
        raise LookupError("out of run_until_complete")

    with pytest.raises(LookupError):
        loop.run_until_complete(fails())
    assert sys.get_asyncgen_hooks() == (firstiter, finalizer)


def test_hooks_restored_after_base_exception(loop, outer_hooks):
    firstiter, finalizer, _ = outer_hooks

    def interrupt():
        raise KeyboardInterrupt

    loop.call_soon(interrupt)
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert sys.get_asyncgen_hooks() == (firstiter, finalizer)


def test_hooks_not_installed_when_idle(loop):
    saved = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(None, None)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert sys.get_asyncgen_hooks() == (None, None)
    finally:
        sys.set_asyncgen_hooks(*saved)


def test_generator_first_iterated_on_loop_is_tracked(loop, outer_hooks):
    """The loop's firstiter hook runs, so shutdown_asyncgens knows the generator."""
    _, _, calls = outer_hooks
    log = []
    kept = []

    async def start():
        gen = make_counter(log, "tracked")
        await gen.__anext__()
        kept.append(gen)

    loop.run_until_complete(start())
    loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), WAIT))
    assert log == ["tracked"]
    assert calls == []  # the outer hooks never saw a generator of the loop
