"""The ways to get a phaseloop loop: new_event_loop, run, Policy, Runner, loop_factory."""
import asyncio
import subprocess
import sys

import pytest

import phaseloop


@pytest.fixture
def default_policy():
    """Leave the global event loop policy as it was found."""
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(None)
        asyncio.set_event_loop(None)


async def describe_running_loop():
    loop = asyncio.get_running_loop()
    await asyncio.sleep(0.001)
    return type(loop), loop.get_debug()


def test_new_event_loop_returns_a_phaseloop_loop():
    loop = phaseloop.new_event_loop()
    try:
        assert type(loop) is phaseloop.Loop
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert not loop.is_running() and not loop.is_closed()
        assert loop.run_until_complete(describe_running_loop())[0] is phaseloop.Loop
    finally:
        loop.close()
    assert loop.is_closed()


def test_new_event_loop_returns_a_fresh_loop_each_time():
    a, b = phaseloop.new_event_loop(), phaseloop.new_event_loop()
    try:
        assert a is not b
    finally:
        a.close()
        b.close()


def test_public_names():
    for name in ("Loop", "new_event_loop", "run", "Policy"):
        assert hasattr(phaseloop, name), name
    if hasattr(phaseloop, "__all__"):
        for name in phaseloop.__all__:
            assert hasattr(phaseloop, name), name


# ---- phaseloop.run -------------------------------------------------------------------


def test_run_returns_the_result_on_a_phaseloop_loop():
    loop_type, debug = phaseloop.run(describe_running_loop())
    assert loop_type is phaseloop.Loop
    assert debug is False


def test_run_with_debug():
    loop_type, debug = phaseloop.run(describe_running_loop(), debug=True)
    assert loop_type is phaseloop.Loop
    assert debug is True


def test_run_propagates_exceptions():
    async def fails():
        await asyncio.sleep(0)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        phaseloop.run(fails())


def test_run_closes_its_loop_and_finalizes():
    """Like asyncio.run: cancel leftover tasks, close async generators, close the loop."""
    seen = {}
    log = []

    async def gen():
        try:
            yield 1
            yield 2
        finally:
            log.append("agen closed")

    async def leftover():
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            log.append("task cancelled")
            raise

    async def main():
        seen["loop"] = asyncio.get_running_loop()
        seen["task"] = asyncio.get_running_loop().create_task(leftover())
        seen["gen"] = gen()
        await seen["gen"].__anext__()
        await asyncio.sleep(0)
        return "done"

    assert phaseloop.run(main()) == "done"
    assert seen["loop"].is_closed()
    assert seen["task"].cancelled()
    assert sorted(log) == ["agen closed", "task cancelled"]


def test_run_from_a_running_loop_raises_like_asyncio():
    async def nested(run):
        coro = asyncio.sleep(0)
        try:
            run(coro)
        except Exception as exc:  # noqa: BLE001 - the type is what we compare
            return type(exc)
        finally:
            coro.close()
        return None

    expected = asyncio.run(nested(asyncio.run))
    assert expected is RuntimeError
    assert phaseloop.run(nested(phaseloop.run)) is expected


def test_run_with_a_non_coroutine_raises_like_asyncio():
    def error_type(run):
        try:
            run(42)
        except Exception as exc:  # noqa: BLE001 - the type is what we compare
            return type(exc)
        return None

    expected = error_type(asyncio.run)
    assert expected is not None
    assert error_type(phaseloop.run) is expected


def test_run_leaves_no_current_loop(default_policy):
    phaseloop.run(asyncio.sleep(0))
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


# ---- Policy ---------------------------------------------------------------------------


def test_policy_with_asyncio_run(default_policy):
    asyncio.set_event_loop_policy(phaseloop.Policy())
    loop_type, _ = asyncio.run(describe_running_loop())
    assert loop_type is phaseloop.Loop


def test_policy_new_event_loop(default_policy):
    policy = phaseloop.Policy()
    assert isinstance(policy, asyncio.AbstractEventLoopPolicy)
    loop = policy.new_event_loop()
    try:
        assert type(loop) is phaseloop.Loop
    finally:
        loop.close()
    asyncio.set_event_loop_policy(policy)
    loop = asyncio.new_event_loop()
    try:
        assert type(loop) is phaseloop.Loop
    finally:
        loop.close()


def test_policy_get_and_set_event_loop(default_policy):
    policy = phaseloop.Policy()
    asyncio.set_event_loop_policy(policy)
    loop = policy.new_event_loop()
    try:
        policy.set_event_loop(loop)
        assert policy.get_event_loop() is loop
    finally:
        policy.set_event_loop(None)
        loop.close()


def test_policy_with_asyncio_runner(default_policy):
    asyncio.set_event_loop_policy(phaseloop.Policy())
    with asyncio.Runner() as runner:
        assert type(runner.get_loop()) is phaseloop.Loop
        assert runner.run(describe_running_loop())[0] is phaseloop.Loop


# ---- asyncio.Runner / asyncio.run(loop_factory=) ---------------------------------------


def test_runner_with_loop_factory():
    with asyncio.Runner(loop_factory=phaseloop.new_event_loop) as runner:
        loop = runner.get_loop()
        assert type(loop) is phaseloop.Loop
        assert runner.run(describe_running_loop())[0] is phaseloop.Loop
        # A second run reuses the same loop.
        assert runner.run(asyncio.sleep(0, result="again")) == "again"
        assert runner.get_loop() is loop
    assert loop.is_closed()


def test_runner_with_loop_factory_and_debug():
    with asyncio.Runner(loop_factory=phaseloop.new_event_loop, debug=True) as runner:
        assert runner.run(describe_running_loop()) == (phaseloop.Loop, True)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory():
    loop_type, _ = asyncio.run(describe_running_loop(), loop_factory=phaseloop.new_event_loop)
    assert loop_type is phaseloop.Loop


# ---- importing --------------------------------------------------------------------------


NO_WARNING_PROGRAMS = [
    "import phaseloop",
    "import phaseloop.errors, phaseloop.streams, phaseloop.middleware, phaseloop.metrics",
    "import phaseloop; phaseloop.new_event_loop().close()",
    "import asyncio, phaseloop; phaseloop.run(asyncio.sleep(0))",
    "import asyncio, phaseloop\n"
    "with asyncio.Runner(loop_factory=phaseloop.new_event_loop) as r: r.run(asyncio.sleep(0))",
    # A policy object works without a warning; from 3.14 asyncio itself warns
    # in set_event_loop_policy(), the caller's use of a deprecated API.
    "import phaseloop; p = phaseloop.Policy(); p.new_event_loop().close()",
]
if sys.version_info >= (3, 12):
    NO_WARNING_PROGRAMS.append("import asyncio, phaseloop\n"
                               "asyncio.run(asyncio.sleep(0), loop_factory=phaseloop.new_event_loop)")


@pytest.mark.parametrize("code", NO_WARNING_PROGRAMS)
def test_import_and_use_emit_no_warning(code):
    proc = subprocess.run([sys.executable, "-W", "error", "-X", "dev", "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == ""
