"""phaseloop.errors: process-wide uncaughtException / unhandledRejection hooks.

Each scenario runs in a real child process (the hooks are process-wide and
strict mode exits), on phaseloop and on asyncio's loop; the test checks the
child's exit status, its stderr, and the lines it printed (handler calls,
shutdown steps).
"""
import subprocess
import sys
import textwrap

import pytest

RUNNERS = {
    "phaseloop": "phaseloop.run(main())",
    "asyncio": "asyncio.run(main())",
}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request):
    return RUNNERS[request.param]


def run_child(body, runner, timeout=20):
    code = textwrap.dedent("""\
        import asyncio, sys, threading, time
        import phaseloop
        from phaseloop import errors

        def out(*args):
            print(*args, flush=True)

        @errors.on_uncaught_exception
        def uncaught(exc, context):
            out("uncaught", type(exc).__name__, exc)

        @errors.on_unhandled_rejection
        def rejected(exc, context):
            out("rejected", type(exc).__name__, exc, type(context.get("task")).__name__)

        @errors.on_rejection_handled
        def handled(exc, context):
            out("handled", type(exc).__name__, exc)
        """) + textwrap.dedent(body) + "\n" + runner + "\nout('exited normally')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout.splitlines(), done.stderr


def test_log_mode_reports_a_callback_error_and_goes_on(runner):
    status, lines, err = run_child("""
        errors.install("log")
        async def main():
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: 1 / 0)
            await asyncio.sleep(0.05)
            out("still running")
        """, runner)
    assert status == 0, err
    assert lines == ["uncaught ZeroDivisionError division by zero", "still running",
                     "exited normally"]
    assert "ZeroDivisionError" in err          # asyncio's log line


def test_unhandled_rejection_is_reported_in_the_iteration_it_failed(runner):
    status, lines, err = run_child("""
        errors.install("log")

        async def fail():
            raise ValueError("nobody listens")

        async def main():
            task = asyncio.ensure_future(fail())    # kept alive: no GC-time report
            await asyncio.sleep(0.05)
            out("after sleep")
            del task
        """, runner)
    assert status == 0, err
    assert lines[:2] == ["rejected ValueError nobody listens Task", "after sleep"]
    assert lines.count("rejected ValueError nobody listens Task") == 1


def test_a_rejection_collected_before_the_sweep_is_reported_once(runner):
    """The loop stops in the iteration a task failed, before the hooks' sweep:
    the failed task, held weakly until then, is collected and reported at once
    (asyncio's "never retrieved"), and the late sweep adds no second report."""
    new_loop = "phaseloop" if runner.startswith("phaseloop") else "asyncio"
    status, lines, err = run_child(f"""
        errors.install("log")
        lp = {new_loop}.new_event_loop()

        async def fail():
            raise KeyError("dropped")

        async def once():
            lp.create_task(fail())
            await asyncio.sleep(0)

        lp.run_until_complete(once())
        out("stopped")
        lp.run_until_complete(asyncio.sleep(0.01))     # the sweep, if still queued
        lp.close()

        async def main():
            pass
        """, runner)
    assert status == 0, err
    # context["task"] from the sweep, context["future"] from asyncio's report
    assert lines[0].startswith("rejected KeyError 'dropped' "), lines
    assert lines[1:] == ["stopped", "exited normally"]


def test_awaited_failure_is_not_a_rejection(runner):
    status, lines, err = run_child("""
        errors.install("log")

        async def fail():
            raise ValueError("caught")

        async def main():
            try:
                await asyncio.ensure_future(fail())
            except ValueError:
                out("caught it")
            results = await asyncio.gather(fail(), return_exceptions=True)
            out("gathered", type(results[0]).__name__)
        """, runner)
    assert status == 0, err
    assert lines == ["caught it", "gathered ValueError", "exited normally"]


def test_a_later_retrieval_is_reported_as_handled(runner):
    status, lines, err = run_child("""
        errors.install("log")

        async def fail():
            raise ValueError("late")

        async def main():
            task = asyncio.ensure_future(fail())
            await asyncio.sleep(0.05)
            try:
                await task
            except ValueError:
                out("retrieved")
            await asyncio.sleep(0.25)
        """, runner)
    assert status == 0, err
    assert lines == ["rejected ValueError late Task", "retrieved", "handled ValueError late",
                     "exited normally"]


def test_strict_mode_exits_on_an_unhandled_rejection(runner):
    status, lines, err = run_child("""
        errors.install("strict")

        async def fail():
            raise RuntimeError("boom")

        async def main():
            task = asyncio.ensure_future(fail())
            try:
                await asyncio.sleep(5)
            finally:
                out("main finally")
        """, runner)
    assert status == 1, err
    assert lines == ["rejected RuntimeError boom Task", "main finally"]


def test_an_exception_in_a_thread(runner):
    status, lines, err = run_child("""
        errors.install("log")

        def work():
            raise OSError("thread failed")

        async def main():
            t = threading.Thread(target=work)
            t.start()
            t.join()
        """, runner)
    assert status == 0, err
    assert lines == ["uncaught OSError thread failed", "exited normally"]


THREAD_FAILURE = """
    def work():
        time.sleep(0.05)
        raise OSError("thread failed")

    async def main():
        threading.Thread(target=work).start()
        try:
            await asyncio.sleep(5)
        finally:
            out("main finally")
"""

SYS_EXIT_6 = """
    @errors.on_uncaught_exception
    def bail_out(exc, context):
        sys.exit(6)
"""


@pytest.mark.parametrize("setup, status", [('errors.install("strict")', 1), (SYS_EXIT_6, 6)],
                         ids=["strict", "sys.exit in the handler"])
def test_a_thread_exception_stops_the_loop(runner, setup, status):
    exit_status, lines, err = run_child(textwrap.dedent(setup) + textwrap.dedent(THREAD_FAILURE),
                                        runner)
    assert exit_status == status, err
    assert lines == ["uncaught OSError thread failed", "main finally"]


def test_an_exception_escaping_the_main_program(runner):
    status, lines, err = run_child("""
        errors.install("log")

        async def main():
            raise LookupError("from main")
        """, runner)
    assert status == 1
    assert lines == ["uncaught LookupError from main"]
    assert "LookupError: from main" in err


def test_a_handler_that_raises_is_reported_and_does_not_loop(runner):
    status, lines, err = run_child("""
        errors.install("log")

        @errors.on_uncaught_exception
        def broken(exc, context):
            raise RuntimeError("handler bug")

        async def main():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(0.02)
        """, runner)
    assert status == 0, err
    assert lines == ["uncaught ZeroDivisionError division by zero", "exited normally"]
    assert "handler bug" in err


def test_on_returns_the_handler_and_off_unregisters(runner):
    status, lines, err = run_child("""
        assert callable(uncaught) and uncaught.__name__ == "uncaught"   # not a remover
        out("off", errors.off(uncaught), errors.off(uncaught))
        assert errors.on_uncaught_exception(print) is print
        errors.off(print)

        async def main():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(0.02)
        """, runner)
    assert status == 0, err
    assert lines == ["off True False", "exited normally"]


def test_registering_is_enough(runner):
    # No install(): the handlers registered at the top of the child run, in
    # "log" mode (Node: a registered handler keeps the process going).
    status, lines, err = run_child("""
        out("mode", errors.mode())

        async def fail():
            raise ValueError("nobody listens")

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: 1 / 0)
            task = asyncio.ensure_future(fail())
            await asyncio.sleep(0.05)
            out("still running")
        """, runner)
    assert status == 0, err
    assert lines == ["mode log", "uncaught ZeroDivisionError division by zero",
                     "rejected ValueError nobody listens Task", "still running",
                     "exited normally"]


def test_install_still_picks_strict_after_registering(runner):
    status, lines, err = run_child("""
        errors.install("strict")
        out("mode", errors.mode())

        async def main():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(1)
        """, runner)
    assert status == 1, err
    assert lines == ["mode strict", "uncaught ZeroDivisionError division by zero"]


# A program with something to shut down: a task, an async generator, a
# transport. {setup} picks the mode or handler, {failure} what goes wrong.
SHUTDOWN_PROGRAM = textwrap.dedent("""
    {setup}

    async def ticker():
        try:
            while True:
                yield 1
                await asyncio.sleep(0.01)
        finally:
            out("async generator closed")

    async def worker():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            out("worker cancelled")
            raise

    class Conn(asyncio.Protocol):
        def connection_lost(self, exc):
            out("transport closed")

    async def fail():
        raise ValueError("lost")

    async def main():
        import socket
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        await loop.create_connection(Conn, sock=a)
        gen = ticker()
        await gen.__anext__()
        asyncio.ensure_future(worker())
        {failure}
        try:
            await asyncio.sleep(10)
        finally:
            out("main finally")
    """)

EXIT_7 = """
@errors.on_uncaught_exception
@errors.on_unhandled_rejection
def bail_out(exc, context):
    out("exiting from the handler")
    sys.exit(7)
"""
TIMER_ERROR = "loop.call_later(0.02, lambda: {}['missing'])"
TASK_ERROR = "task = asyncio.ensure_future(fail())"


@pytest.mark.parametrize("setup, failure, status, first_lines", [
    ('errors.install("strict")', TIMER_ERROR, 1, ["uncaught KeyError 'missing'"]),
    # Node's process.exit(7) in a handler; here after the loop's shutdown.
    (EXIT_7, TIMER_ERROR, 7, ["uncaught KeyError 'missing'", "exiting from the handler"]),
    (EXIT_7, TASK_ERROR, 7, ["rejected ValueError lost Task", "exiting from the handler"]),
], ids=["strict", "sys.exit in an uncaught-exception handler",
        "sys.exit in an unhandled-rejection handler"])
def test_the_program_shuts_down_and_exits(runner, setup, failure, status, first_lines):
    status_, lines, err = run_child(SHUTDOWN_PROGRAM.format(setup=setup, failure=failure),
                                    runner)
    assert status_ == status, err
    assert lines[:len(first_lines)] == first_lines
    assert "worker cancelled" in lines and "async generator closed" in lines
    assert "main finally" in lines
    if "phaseloop" in runner:     # phaseloop also closes the loop's transports
        assert "transport closed" in lines
    assert "exited normally" not in lines
    if status == 1:
        assert "KeyError" in err                 # strict mode logs it too
    else:
        assert "Traceback" not in err            # the handler took it, as in Node


def test_sys_exit_in_a_handler_for_the_main_program(runner):
    status, lines, err = run_child("""
        @errors.on_uncaught_exception
        def bail_out(exc, context):
            sys.exit(5)

        async def main():
            raise LookupError("from main")
        """, runner)
    assert status == 5
    assert lines == ["uncaught LookupError from main"]


def test_install_rejects_an_unknown_mode():
    from phaseloop import errors
    with pytest.raises(ValueError, match="'log' or 'strict'"):
        errors.install("loud")
    with pytest.raises(TypeError):
        errors.on_uncaught_exception(42)
